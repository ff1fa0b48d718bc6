"""The proxy listener: a lean HTTP/1.1 server on asyncio protocols, parsing with llhttp.

Why not aiohttp's server here: on the request path its Request and StreamResponse machinery
cost more than everything the gateway itself does (bench/RESULTS.md: 18.7 µs per request for
aiohttp's low-level server alone, 6.3 µs for a protocol on httptools). The admin listener,
which is not on the request path, stays on aiohttp.

Parsing is llhttp's (through `httptools`, the binding uvicorn uses), in its strict default mode,
never hand-written code. llhttp refuses the request-smuggling shapes: Content-Length with
Transfer-Encoding, duplicate or list-valued Content-Length, obs-fold, bad chunk sizes, bare LF,
NUL and other control bytes in fields, whitespace before the colon. This module adds what a
gateway on the request path needs around it:

- **two Host fields, and a Transfer-Encoding that is not exactly `chunked`, are refused**
  (RFC 9112 §3.2: 400 for more than one Host; §6.1: a server may refuse codings it does not
  know, and a proxy must never guess where a body ends);
- **parse errors answer in JSON, never echoing the request.** A parser message quotes the
  offending bytes, possibly a credential. The status says what was wrong (400, 414 request line
  too long, 431 header fields too large) and the connection is closed (RFC 9112 §9.6: after a
  framing error the connection cannot be trusted);
- **size limits on the head**: the request line, each header field line, the number of fields,
  and the head as a whole (so no single field can grow without bound while it trickles in);
- **deadlines**: a request head must arrive within `head_timeout_seconds` of its first byte (or
  of connecting) however it trickles (slowloris); an idle keep-alive connection is closed after
  `keepalive_timeout_seconds`. One sweep per server checks every connection's deadline, rather
  than a timer armed and cancelled on every request;
- **a cap on concurrent connections**, so fds stay bounded whatever clients do;
- **one request at a time per connection**: pipelined requests are answered in order, and
  reading pauses while one waits;
- **graceful drain**: on shutdown the listener stops accepting, idle connections close, and
  requests in flight finish (bounded by the grace period) with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httptools

from m2mgate.proxy.headers import SERVER
from m2mgate.server.request_cycle import RequestCycle, http_date, status_line


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_seconds: float
    keepalive_timeout_seconds: float
    max_connections: int
    max_url_bytes: int  # the request line
    max_header_bytes: int  # one header field line
    max_headers: int


@dataclass(frozen=True, slots=True)
class ServerEvents:
    """What the listener reports: refused requests, slow clients, refused connections."""

    http_error: Callable[[int, str, str], None]  # status, error class name, request id
    slow_client: Callable[[], None]
    connection_refused: Callable[[], None]


Handler = Callable[[RequestCycle], Awaitable[None]]

_DESCRIPTIONS = {
    400: "The request is not valid HTTP.",
    414: "The request URI is too long.",
    431: "The request header fields are too large.",
}
_MAX_DISCARDED_BYTES = 1024 * 1024  # an unread request body drained to keep the connection
_WAITING, _HEAD, _BODY = 0, 1, 2  # what the connection is reading


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing with a precise status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HttpConnection(asyncio.Protocol):
    """One client connection: parser callbacks build RequestCycles; one is handled at a time."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._limits = server.limits
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.closed = False
        self.must_close = False  # the response being written ends the connection
        self.deadline: float | None = None
        self.deadline_is_head = True  # a head deadline counts as a slow client; idle does not
        self._reading = _WAITING
        self._parsing: RequestCycle | None = None  # the request whose bytes arrive now
        self._active: RequestCycle | None = None  # the request being answered
        self._task: asyncio.Task[None] | None = None  # its handler
        self._queue: collections.deque[RequestCycle] = collections.deque()
        self._discarding = 0  # bytes of an unread body dropped after its response
        self._body_left = 0  # of a Content-Length request body, bytes still to come
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # The head being parsed:
        self._url: list[bytes] = []
        self._url_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._max_head_bytes = self._limits.max_url_bytes + self._limits.max_headers * (
            self._limits.max_header_bytes + 2
        )
        self._read_here: list[tuple[bytes, str]] = []  # the fields in _READ_HERE, in order
        self._refusal: int | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        if not self._server.opened(self):
            transport.close()  # over the cap: close at once rather than hold one more fd
            self.closed = True
            return
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) else None
        self.deadline = self._server.now() + self._limits.head_timeout_seconds

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._body_left:
            self._count_body(data)
            return
        if self._reading != _BODY:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes:
                self._refuse(431, "HeadTooLarge")
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade request: upgrades are never proxied (Upgrade is a hop-by-hop header,
            # stripped). The request is answered as a plain one, then the connection closes:
            # whatever the client sends next is not HTTP/1.1 we can trust.
            self.must_close = True
            if self._parsing is not None:
                self._parsing.end_body()
                self._parsing = None
            self._pause_reading()
        except httptools.HttpParserError as error:
            self._refuse(self._refusal or 400, type(error).__name__)
            return
        if self._reading != _BODY:
            self._body_left = 0  # the body, if any, ended within this read

    def _count_body(self, data: bytes) -> None:
        """Body bytes of a Content-Length request, past what llhttp parsed with the head: they
        are counted, not parsed, so llhttp does not copy each one into a new object. llhttp
        checked the head and the length; the body is opaque bytes until it is complete."""
        left = self._body_left
        body, rest = (data, b"") if len(data) <= left else (data[:left], data[left:])
        self._body_left = left - len(body)
        self._deliver(body)
        if self._body_left == 0:
            # llhttp still waits for the body it never saw: the next request gets a new one.
            self._parser = httptools.HttpRequestParser(self)
            self.on_message_complete()
            if rest and not self.closed:
                self.data_received(rest)  # a pipelined request right behind the body

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._server.closed(self)
        for cycle in (self._active, self._parsing, *self._queue):
            if cycle is not None:
                cycle.connection_lost()
        self._release_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()

    # --- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self._url_bytes = 0
        self._headers = []
        self._read_here = []
        self._reading = _HEAD
        # The first byte of a head: its clock starts now, whatever the idle one said.
        self.deadline = self._server.now() + self._limits.head_timeout_seconds
        self.deadline_is_head = True

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._url_bytes += len(url)
        # The request line: method SP target SP HTTP/1.1
        if self._url_bytes + 10 + len(self._parser.get_method()) > self._limits.max_url_bytes:
            self._refusal = 414
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self._limits.max_header_bytes or (
            len(self._headers) >= self._limits.max_headers
        ):
            self._refusal = 431
            raise _Refused(431)
        text = value.decode("latin-1")
        self._headers.append((name.decode("latin-1"), text))
        lowered = name.lower()
        if lowered in _READ_HERE:
            self._read_here.append((lowered, text))

    def on_headers_complete(self) -> None:
        parser = self._parser
        cycle = RequestCycle(
            self,
            parser.get_method().decode("ascii"),
            b"".join(self._url).decode("latin-1"),
            parser.get_http_version(),
            self._headers,
            parser.should_keep_alive(),
        )
        if not _read_head_fields(cycle, self._read_here):
            self._refusal = 400
            raise _Refused(400)
        self._reading = _BODY
        self._body_left = cycle.content_length or 0  # on_body counts down what llhttp parses
        self._head_bytes = 0
        self.deadline = None  # from here on, the handler's own timeouts apply
        self._parsing = cycle
        if self._active is None:
            self._begin(cycle)
        else:
            self._queue.append(cycle)  # pipelined: answered in order
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        cycle = self._parsing
        if cycle is None:
            return
        if cycle.finished:
            self._discard(len(body))
        else:
            cycle.feed_body(body)

    def on_message_complete(self) -> None:
        cycle = self._parsing
        self._parsing = None
        self._reading = _WAITING
        self._discarding = 0
        if cycle is None:
            return
        cycle.end_body()
        if cycle.finished and self._active is None and not self.closed:
            # Its response went out before its body ended; the rest was dropped. Ready.
            self._idle()

    # --- requests ---------------------------------------------------------------------------

    def _begin(self, cycle: RequestCycle) -> None:
        self._active = cycle
        self._task = self._server.start(self, cycle)

    def cycle_done(self, cycle: RequestCycle) -> None:
        """The handler of `cycle` returned (its response written, or the connection cut)."""
        self._active = self._task = None
        if self.closed:
            return
        if not cycle.finished:
            cycle.abort()  # the handler never completed its response: nothing can be trusted
            return
        if not self.keeps(cycle):
            self.close()
            return
        # Whatever body the handler left unread is dropped; reading resumes if it had paused.
        dropped = cycle.discard_body()
        if not cycle.body_complete:
            if not cycle.body_expected:
                self.close()  # it waits for a 100 Continue: its body may or may not follow
                return
            # Read and drop the rest of the body (bounded), so the connection stays usable.
            if self._discard(dropped):
                return
        if self._queue:
            self._begin(self._queue.popleft())
            if not self._queue:
                self._resume_reading()
        elif cycle.body_complete:
            self._idle()

    def _idle(self) -> None:
        self.deadline = self._server.now() + self._limits.keepalive_timeout_seconds
        self.deadline_is_head = False
        if self._server.draining:
            self.close()

    def _discard(self, size: int) -> bool:
        """Count dropped body bytes; True when too many (the connection is closed)."""
        self._discarding += size
        if self._discarding > _MAX_DISCARDED_BYTES:
            self.close()
            return True
        self._resume_reading()
        if self.deadline is None:
            self.deadline = self._server.now() + self._limits.head_timeout_seconds
            self.deadline_is_head = False
        return False

    @property
    def is_busy(self) -> bool:
        return self._active is not None

    def keeps(self, cycle: RequestCycle) -> bool:
        """Does the connection stay open after this response? Not when the client still waits
        for a 100 Continue it will never get: whether its body follows is anyone's guess."""
        return (
            cycle.keep_alive
            and not self.must_close
            and not self._server.draining
            and (cycle.body_complete or cycle.body_expected)
        )

    # --- transport --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if not self.closed and self.transport is not None:
            self.transport.writelines(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the client closed the connection")
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            if self.closed:
                raise ConnectionResetError("the client closed the connection")

    def _release_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None

    def pause_reading(self) -> None:
        self._pause_reading()

    def resume_reading(self) -> None:
        if not self._queue:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.closed and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Close after what is written has been sent."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def expire(self) -> None:
        """The sweep found this connection past its deadline."""
        self.deadline = None
        if self.deadline_is_head and self._active is None:
            self._server.events.slow_client()
        self.close()

    def _refuse(self, status: int, error: str) -> None:
        """The request cannot be parsed: a fixed JSON answer (never the request's bytes), then
        close. RFC 9112 §9.6: after a framing error nothing more on the connection is trusted."""
        request_id = secrets.token_hex(16)
        self._server.events.http_error(status, error, request_id)
        active = self._active
        if active is None:
            self.write(_refusal(status, request_id))
        elif active is self._parsing and not active.head_sent:
            # The request being handled has a malformed body (a bad chunk): it must go no
            # further. Its handler is cancelled, which cuts any upstream exchange it started.
            active.refused(status)
            self.write(_refusal(status, request_id))
            if self._task is not None:
                self._task.cancel()
        elif active is self._parsing:
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


def _refusal(status: int, request_id: str) -> bytes:
    body = json.dumps(
        {
            "error": "invalid_request",
            "error_description": _DESCRIPTIONS.get(status, _DESCRIPTIONS[400]),
            "request_id": request_id,
        }
    ).encode()
    head = (
        f"{status_line('1.1', status)}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        f"X-Request-Id: {request_id}\r\nConnection: close\r\nServer: {SERVER}\r\n"
        f"Date: {http_date()}\r\n\r\n"
    )
    return head.encode("latin-1") + body


_READ_HERE = frozenset(
    {b"authorization", b"x-request-id", b"host", b"content-length", b"transfer-encoding", b"expect"}
)


def _read_head_fields(cycle: RequestCycle, fields: list[tuple[bytes, str]]) -> bool:
    """Fill in what the gateway reads itself; False when the head must be refused."""
    hosts = 0
    length: str | None = None
    codings: list[str] = []
    for lowered, value in fields:
        if lowered == b"authorization":
            cycle.authorization.append(value)
        elif lowered == b"host":
            hosts += 1
            cycle.host = value
        elif lowered == b"x-request-id":
            cycle.request_ids.append(value)
        elif lowered == b"content-length":
            length = value  # llhttp refused duplicates and anything but digits
        elif lowered == b"transfer-encoding":
            codings.extend(coding.strip().lower() for coding in value.split(","))
        elif lowered == b"expect":
            cycle.expect_continue = value.strip().lower() == "100-continue"
    if hosts > 1:
        return False  # RFC 9112 §3.2: a request with more than one Host is refused
    if length is not None:
        cycle.content_length = int(length)
        cycle.has_body = cycle.content_length > 0
    elif codings:
        if codings != ["chunked"]:
            return False  # RFC 9112 §6.1: a coding we would have to guess the end of
        cycle.has_body = True
    if cycle.version != "1.1":
        cycle.expect_continue = False  # RFC 9110 §10.1.1: ignored from HTTP/1.0 clients
    return True


class HttpServer:
    """The listening socket, its connections, their deadlines, and graceful drain."""

    def __init__(self, handler: Handler, limits: ConnectionLimits, events: ServerEvents) -> None:
        self._handler = handler
        self.limits = limits
        self.events = events
        self.draining = False
        self._connections: set[HttpConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep_seconds = max(
            0.05, min(1.0, limits.head_timeout_seconds / 5, limits.keepalive_timeout_seconds / 5)
        )

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        self._sweeper = loop.call_later(self._sweep_seconds, self._sweep)

    @property
    def address(self) -> tuple[str, int] | None:
        if self._server is None or not self._server.sockets:
            return None
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    @property
    def is_listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def requests_in_flight(self) -> int:
        return len(self._tasks)

    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    # --- called by connections ----------------------------------------------------------------

    def opened(self, conn: HttpConnection) -> bool:
        if len(self._connections) >= self.limits.max_connections or self.draining:
            self.events.connection_refused()
            return False
        self._connections.add(conn)
        return True

    def closed(self, conn: HttpConnection) -> None:
        self._connections.discard(conn)

    def start(self, conn: HttpConnection, cycle: RequestCycle) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(conn, cycle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, conn: HttpConnection, cycle: RequestCycle) -> None:
        try:
            await self._handler(cycle)
        finally:
            conn.cycle_done(cycle)

    def _sweep(self) -> None:
        now = self.now()
        for conn in [c for c in self._connections if c.deadline is not None and c.deadline < now]:
            conn.expire()
        if self._loop is not None:
            self._sweeper = self._loop.call_later(self._sweep_seconds, self._sweep)

    # --- shutdown -----------------------------------------------------------------------------

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting; close idle connections; let requests in flight finish within the
        grace period, then cut what is left."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if not conn.is_busy:
                conn.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        for conn in list(self._connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
