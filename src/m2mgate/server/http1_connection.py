"""One client connection of the proxy listener, its parsing side: llhttp's callbacks build
Http1Requests and the connection's refusals are carried out here (see http1_server.py for the
defences and why). Where the byte stream is within a message is its framing state
(http1_framing.py); what a refusal does is decided in http1_refusal.py; the requests are
answered one at a time, in order, by the answering side this builds on (http1_answering.py)."""

from __future__ import annotations

import asyncio

import httptools

from m2mgate.server.exchange import PeerFacts
from m2mgate.server.http1_answering import RequestAnswering
from m2mgate.server.http1_framing import MessageFraming, Reading
from m2mgate.server.http1_head_reader import HeadReader
from m2mgate.server.http1_refusal import (
    Refusing,
    oversized_is_head,
    parse_error,
    refused_is_head,
    refusing,
    report,
)
from m2mgate.server.http1_request import Http1Request
from m2mgate.server.http1_response import Http1Response
from m2mgate.server.listener_context import Deadline, ListenerContext
from m2mgate.server.request_head import HeadRefusal, parse_head, refusal

# Enum members read per request are bound to module names: on CPython 3.11 a member read
# through its class costs about four times a global (85 ns against 20, measured).
_DEADLINE_HEAD = Deadline.HEAD
_READING_BODY = Reading.BODY

_NO_PEER = PeerFacts(None)


class HttpConnection(RequestAnswering):
    """One client connection: parser callbacks build Http1Requests; one is handled at a time."""

    def __init__(self, context: ListenerContext) -> None:
        super().__init__(context)
        self._parser = httptools.HttpRequestParser(self)
        self._peer = _NO_PEER  # who is connected: shared by every request's head
        self._framing = MessageFraming(self._limits)
        self._parsing: Http1Request | None = None  # the request whose bytes arrive now
        self._head = HeadReader(self._limits)  # the head being parsed

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        if not self._context.opened(self):
            transport.close()  # over the cap: close at once rather than hold one more fd
            self.closed = True
            return
        peer = transport.get_extra_info("peername")
        self._peer = PeerFacts(str(peer[0]) if isinstance(peer, tuple) else None)
        self.deadline = self._context.now() + self._limits.head_timeout_seconds

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        framing = self._framing
        if framing.body_left:
            self._count_body(data)
            return
        if framing.upgraded:
            return  # past an Upgrade request: another protocol, never parsed as HTTP/1.1
        if framing.reading is not _READING_BODY:
            framing.head_bytes += len(data)
            if framing.head_bytes > framing.max_head_bytes:
                # Refused before llhttp sees these bytes (its refusal has no body if it is HEAD).
                head = oversized_is_head(framing, self._head, self._parser, data)
                self._refuse(431, "HeadTooLarge", to_head=head)
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # An Upgrade (or CONNECT) request. Upgrades are never proxied (Upgrade is
            # hop-by-hop, stripped): RFC 9110 §7.8 lets a server ignore it, so the request is
            # answered as a plain one, then the connection closes, since the client may already
            # be speaking the new protocol.
            # Threat (request smuggling, #8): httptools makes llhttp treat an Upgrade request
            # as bodyless and stops at the end of its head. Forwarding its Content-Length
            # without those bytes let the upstream read the *next* request on the pooled
            # connection as this body. Here the body is read exactly as the head declared it,
            # by count (a chunked one was refused in on_headers_complete); what follows it is
            # never parsed.
            self.must_close = True
            framing.upgraded = True
            rest = data[upgrade.args[0] :]
            if framing.body_left and rest:
                self._count_body(rest)
            if not framing.body_left:
                self._pause_reading()
            return
        except httptools.HttpParserError as error:
            if framing.is_past_closing_request:
                # Bytes after a request that closes the connection. RFC 9112 §9.6: the server
                # answers that request, then closes, and SHOULD NOT process further requests.
                # They are neither parsed nor refused: a refusal here would be a response to a
                # request nobody read (and its framing would follow the stale one's method).
                self._pause_reading()
                return
            framing.method_read = not isinstance(error, httptools.HttpParserInvalidMethodError)
            self._refuse(*parse_error(error, self._head.refusal))
            return
        if framing.reading is not _READING_BODY:
            framing.body_left = 0  # the body, if any, ended within this read

    def _count_body(self, data: bytes) -> None:
        """Body bytes of a Content-Length request, past what llhttp parsed with the head: they
        are counted, not parsed, so llhttp does not copy each one into a new object. llhttp
        checked the head and the length; the body is opaque bytes until it is complete."""
        framing = self._framing
        body, rest = framing.count_body(data)
        self._deliver(body)
        if framing.body_left == 0:
            # llhttp still waits for the body it never saw: the next request gets a new one.
            keep_alive = self._parser.should_keep_alive()  # what the old one read in the head
            self._parser = httptools.HttpRequestParser(self)
            self._message_complete(keep_alive)
            if framing.upgraded:
                self._pause_reading()  # the Upgrade request's body is read; nothing more is
            elif rest and not self.closed:
                self.data_received(rest)  # a pipelined request right behind the body

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._context.closed(self)
        for cycle in (self._active, self._parsing, *self._queue):
            if cycle is not None:
                cycle.connection_lost()
        self.release_drain()

    # --- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._framing.begin()
        self._head.begin()
        # The first byte of a head: its clock starts now, whatever the idle one said.
        self.deadline = self._context.now() + self._limits.head_timeout_seconds
        self.deadline_kind = _DEADLINE_HEAD

    def on_url(self, url: bytes) -> None:
        self._head.add_url(url, self._parser.get_method())

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._framing.reading is _READING_BODY:
            self._head.add_trailer(name, value)
        else:
            self._head.add_header(name, value)

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        head = parse_head(
            parser.get_method().decode("ascii"),
            self._head.target,
            version,
            self._head.headers,
            self._head.read_here,
            upgrade=parser.should_upgrade(),
            peer=self._peer,
        )
        if isinstance(head, HeadRefusal):
            raise self._head.refuse(head.status, head.reason)
        response = Http1Response(self, head.method == "HEAD", version)
        cycle = Http1Request(self, head, response, parser.should_keep_alive())
        self._framing.head_complete(head.content_length)
        self.deadline = None  # from here on, the handler's own timeouts apply
        self._parsing = cycle
        if self._active is None:
            self._begin(cycle)
        else:
            self._queue.append(cycle)  # pipelined: answered in order
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        framing = self._framing
        if framing.body_left:
            framing.body_left -= len(body)
        self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        cycle = self._parsing
        if cycle is None:
            return
        if cycle.response.finished:
            self._discard(len(body))
        else:
            cycle.feed_body(body)

    def on_message_complete(self) -> None:
        if self._framing.body_left and self._parser.should_upgrade():
            # llhttp skipped an Upgrade request's body; data_received reads it by count and
            # completes the message when it has all of it.
            return
        self._message_complete(self._parser.should_keep_alive())

    def _message_complete(self, keep_alive: bool) -> None:
        """A request's message ended; `keep_alive` is llhttp's reading of whether more follow."""
        cycle = self._parsing
        self._parsing = None
        self._framing.complete(keep_alive)
        self._discarding = 0
        if cycle is None:
            return
        if not keep_alive:
            # llhttp reads nothing after this request, and the gateway agrees with it. That
            # includes a `Connection: close` in a chunked body's trailer section (llhttp acts
            # on it): the trailer itself is dropped (never forwarded, RFC 9110 §6.5.1), but the
            # connection ends after this request's response, as llhttp decided. Threat (#8):
            # the request behind it was refused with the 400 of a parse error, framed by the
            # stale HEAD method of the request before it, so it came without its body and
            # the client read the next bytes as garbage. (The framing state now records
            # that llhttp closed, so data_received neither parses nor refuses what follows.)
            cycle.keep_alive = False
        cycle.end_body()
        if cycle.response.finished and self._active is None and not self.closed:
            # Its response went out before its body ended; the rest was dropped.
            if cycle.keep_alive:
                self._idle()  # ready for the next request
            else:
                self.close()

    def _refuse(self, status: int, error: str, *, to_head: bool | None = None) -> None:
        """The request cannot be parsed: a fixed JSON answer (never the request's bytes), then
        close. RFC 9112 §9.6: after a framing error nothing more on the connection is trusted."""
        active = self._active
        action = refusing(active, self._parsing)
        if action is Refusing.CLOSE:
            report(self._context.events, status, error)
            self.close()  # its one response may still be buffered: close, do not abort
            return
        if action is Refusing.ANSWER:
            request_id = report(self._context.events, status, error)
            if to_head is None:
                to_head = refused_is_head(self._framing, self._head, self._parser)
            self.write(refusal(status, request_id, to_head=to_head))
        elif active is not None and action is Refusing.REFUSE_BODY:
            # The request being handled has a malformed body (a bad chunk): it must go no
            # further. Threat (#8): the body reader saw "end of body" and the upstream got a
            # terminating chunk, a complete POST the client was told was refused. Now the body
            # is refused (its reader raises BodyRefused, so the upstream exchange is cut, never
            # completed, and its connection closed) and the handler is cancelled. A handler
            # that has started logs the request itself, with this status.
            request_id = active.response.request_id or report(self._context.events, status, error)
            active.refuse(status, error)
            self.write(refusal(status, request_id, to_head=active.head.method == "HEAD"))
            if self._task is not None:
                self._task.cancel()
        elif action is Refusing.ABORT:
            self.abort()  # its response has started: only cutting it is honest
            return
        else:
            # A later, pipelined request is malformed: answer the current one, then close.
            self.must_close = True
            self._queue.clear()
            self._pause_reading()
            return
        self._pause_reading()
        self.close()
