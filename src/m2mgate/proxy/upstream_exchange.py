"""One request/response on one upstream connection, fed by llhttp's callbacks (via
`httptools`, the binding uvicorn uses), never by hand-written parsing.

Responses: llhttp frames them (Content-Length, chunked, read-until-close); 1xx interim
responses are skipped; a `101 Switching Protocols` is a protocol violation (the gateway never
asks to upgrade) and fails as 502; trailer fields are dropped, never merged into the headers
(RFC 9110 §6.5.1); HEAD, 204 and 304 have no body whatever their headers say; the body streams
with back-pressure (reading pauses while the reader is slower than the upstream).

Where the exchange is, is one `ExchangeState`; whether its connection may be reused is decided
from it when the response is released (httpcore's http11.py does the same).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Protocol, cast

import httptools

from m2mgate.errors import BadGateway, GatewayError, GatewayTimeout
from m2mgate.flow_control import wake, woken_in_time
from m2mgate.proxy.upstream import Headers

_PAUSE_ABOVE = 256 * 1024  # buffered response bytes before reading from the upstream pauses
# The most bytes of response head (interim 1xx heads included) read before the final head is
# complete; larger is a 502. Envoy's default (max_response_headers_kb) is 60 KiB.
MAX_RESPONSE_HEAD_BYTES = 64 * 1024


class StaleConnection(BadGateway):
    """The connection failed before any response byte: safe to retry when idempotent."""


class ExchangeState(enum.Enum):
    SENT = "sent"  # the request is out; no response byte yet (a close now: a stale connection)
    HEAD = "head"  # response head bytes are arriving
    INTERIM = "interim"  # inside a 1xx interim response, dropped (RFC 9110 §15.2)
    BODY = "body"  # the final head is in; its body is arriving
    COMPLETE = "complete"  # the response ended where its framing says
    FAILED = "failed"  # the exchange cannot complete; `error` says why


# Enum members read per request are bound to module names: on CPython 3.11 a member read
# through its class costs about four times a global (85 ns against 20, measured).
_EXCHANGE_BODY = ExchangeState.BODY
_EXCHANGE_COMPLETE = ExchangeState.COMPLETE
_EXCHANGE_FAILED = ExchangeState.FAILED
_EXCHANGE_HEAD = ExchangeState.HEAD
_EXCHANGE_INTERIM = ExchangeState.INTERIM
_EXCHANGE_SENT = ExchangeState.SENT


class ConnectionReading(Protocol):
    """What an exchange may do to the connection it is fed by."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


class _Unsolicited(Exception):
    pass


class _ProtocolViolation(Exception):
    """Raised in a parser callback: a response no HTTP/1.1 upstream may send to this request."""


class Exchange:
    """One request/response on one connection; fed by the connection's parser callbacks."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_error",
        "_framed",
        "_head_bytes",
        "_head_only",
        "_keep_when_done",
        "_length_left",
        "_parser",
        "_waiter",
        "content_length",
        "headers",
        "keep_alive",
        "no_reuse",
        "state",
        "status",
    )  # fmt: skip

    def __init__(self, conn: ConnectionReading, head_only: bool) -> None:
        self._conn = conn
        # The parser holds bound methods of this exchange, a reference cycle: detach() breaks
        # it when the exchange ends, so the exchange is freed by reference counting. Left to
        # the cyclic GC, these were nearly all of its work under load (and its pauses).
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self.state = _EXCHANGE_SENT
        self.status = 0  # of the final response, once its head is in
        self.headers: Headers = []
        self.content_length: int | None = None  # the final response's declared length
        self.keep_alive = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._error: GatewayError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head_bytes = 0  # received before the final head is complete (interim heads too)
        self._framed = False  # Content-Length or chunked: the end is not the connection's close
        # A final response framed by Content-Length: its body bytes still to come. llhttp has
        # parsed and checked the head; the rest of the body is counted, not parsed, so it is
        # handed on without llhttp's copy of every byte (bench/RESULTS.md: 1 MiB bodies).
        self._length_left: int | None = None
        self._keep_when_done = False
        self.no_reuse = False  # set when the exchange ended out of step (early response, ...)

    # --- parser callbacks (httptools calls these from feed_data) ---

    def on_message_begin(self) -> None:
        if self.status:
            # A second final response to one request: the connection is out of step. Raising
            # stops the parser; feed() drops the connection.
            raise _Unsolicited

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status:
            return  # a trailer field of the final response: dropped (RFC 9110 §6.5.1)
        lowered = name.lower()
        if lowered == b"content-length":
            self._framed = True
            # llhttp refuses anything but digits, and a second Content-Length, when it parses
            # the value; it hands the field over afterwards.
            self._length_left = int(value) if value.isdigit() else None
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            self._framed = True
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = cast(httptools.HttpResponseParser, self._parser)  # only called from feed()
        status = parser.get_status_code()
        if status == 101:
            # The gateway never forwards Upgrade, so no upstream may switch protocols: relaying
            # a 101 would hand the client a connection nobody authorised, speaking who knows
            # what (and llhttp stops framing after it).
            raise _ProtocolViolation("101 Switching Protocols to a request that did not upgrade")
        if 100 <= status < 200:
            # RFC 9110 §15.2: interim responses are dropped; the final response follows.
            self.state = _EXCHANGE_INTERIM
            self.headers = []
            self._framed = False
            self._length_left = None
            return
        self.status = status
        self.state = _EXCHANGE_BODY
        self.content_length = self._length_left
        if self._head_only or status in (204, 304):
            # RFC 9112 §6.3: no body, whatever Content-Length says. The parser would wait for
            # one; the exchange ends here and the parser is discarded with it. An upstream that
            # declared a body here may still send one (a HEAD handler writing its GET body):
            # those bytes would arrive as the next request's response, so such a connection is
            # not reused (#8 review R8). A declared length of 0 is harmless.
            self._finish(parser.should_keep_alive())
            if self._framed and self._length_left != 0:
                self.no_reuse = True
        elif self._length_left is not None:
            self._keep_when_done = parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.state is _EXCHANGE_COMPLETE:
            return
        if self._length_left is not None:
            self._length_left -= len(body)
        self._take(body)

    def _take(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _PAUSE_ABOVE:
            self._conn.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.state is _EXCHANGE_INTERIM:
            self.state = _EXCHANGE_HEAD
            return
        if self.state is not _EXCHANGE_COMPLETE:
            parser = cast(httptools.HttpResponseParser, self._parser)  # only called from feed()
            self._finish(parser.should_keep_alive())
            self._wake()

    # --- fed by the connection ---

    def feed(self, data: bytes) -> None:
        state = self.state
        if state is _EXCHANGE_SENT:
            state = self.state = _EXCHANGE_HEAD
        if not self.status:
            self._head_bytes += len(data)  # checked once the parser has read these bytes
        if state is _EXCHANGE_COMPLETE:
            # Bytes after a complete response: the connection is out of step; never reuse it.
            self.no_reuse = True
            self._conn.close()
            return
        left = self._length_left
        if left is not None and self.status:
            self._take_counted(data, left)
            return
        parser = self._parser
        if parser is None or state is _EXCHANGE_FAILED:
            return  # detached, or failed: the exchange is over
        try:
            parser.feed_data(data)
            if not self.status and self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
                # Threat (#8 review R9): a hostile upstream streaming an endless response
                # head grew it without bound in memory (llhttp keeps no limit of its own).
                raise _ProtocolViolation(f"response head over {MAX_RESPONSE_HEAD_BYTES} bytes")
        except _ProtocolViolation as violation:
            self._violated(str(violation))
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            # Includes a callback's _Unsolicited or _ProtocolViolation (httptools wraps them;
            # the original is the context). Never quote the upstream's bytes.
            cause = error.__context__
            self._violated(
                str(cause) if isinstance(cause, _ProtocolViolation) else type(error).__name__
            )

    def _violated(self, detail: str) -> None:
        """The response is not one HTTP/1.1 allows here: 502, and the connection goes."""
        self.no_reuse = True
        self._fail(BadGateway(f"invalid upstream response: {detail}"))
        self._conn.close()

    def _take_counted(self, data: bytes, left: int) -> None:
        """Body bytes of a Content-Length response, past what llhttp parsed with the head."""
        if len(data) > left:
            # More than the response declared: the connection is out of step (RFC 9112 §6.3).
            # The body ends at its length; the connection is never reused.
            data = data[:left]
            self.no_reuse = True
            self._conn.close()
        self._length_left = left - len(data)
        if data:
            self._take(data)
        if self._length_left == 0:
            self._finish(self._keep_when_done)
            self._wake()

    def detach(self) -> None:
        self._parser = None

    def lost(self, exc: BaseException | None) -> None:
        state = self.state
        if state is _EXCHANGE_COMPLETE:
            return
        if state is _EXCHANGE_BODY and not self._framed:
            self._finish(False)  # read-until-close framing: the close *is* the end (RFC 9112 §6.3)
        elif state is _EXCHANGE_SENT:
            self._fail(StaleConnection("upstream closed the connection before responding"))
        else:
            detail = type(exc).__name__ if exc is not None else "closed"
            self._fail(BadGateway(f"upstream connection lost mid-response: {detail}"))
        self._wake()

    def _finish(self, keep_alive: bool) -> None:
        self.state = _EXCHANGE_COMPLETE
        self.keep_alive = keep_alive

    def _fail(self, error: GatewayError) -> None:
        if self.state is not _EXCHANGE_COMPLETE and self.state is not _EXCHANGE_FAILED:
            self._error = error
            self.state = _EXCHANGE_FAILED
        self._wake()

    def _wake(self) -> None:
        wake(self._waiter)

    # --- read by the pool's response ---

    @property
    def is_reusable(self) -> bool:
        """Complete, read to the end, kept alive by both sides, and never out of step."""
        return (
            self.state is _EXCHANGE_COMPLETE
            and not self._chunks
            and self.keep_alive
            and not self.no_reuse
        )

    @property
    def complete_when_read(self) -> bool:
        return self.state is _EXCHANGE_COMPLETE

    def take_all(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    async def _wait(self, seconds: float, what: str) -> None:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            in_time = await woken_in_time(waiter, seconds)
        finally:
            self._waiter = None
        if not in_time:
            raise GatewayTimeout(f"upstream {what} took longer than {seconds:g}s")

    async def read_head(self, seconds: float) -> None:
        while not self.status:
            if self._error is not None:
                raise self._error
            await self._wait(seconds, "response head")

    async def read(self, seconds: float) -> bytes:
        """The next body bytes as they arrived (one chunk, never a joined copy); b"" at the
        end."""
        while not self._chunks:
            if self.state is _EXCHANGE_COMPLETE:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait(seconds, "response body read")
        data = self._chunks.popleft()
        paused = self._buffered > _PAUSE_ABOVE
        self._buffered -= len(data)
        if paused and self._buffered <= _PAUSE_ABOVE:
            self._conn.resume_reading()
        return data
