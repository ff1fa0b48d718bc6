"""A lean HTTP/1.1 client for the one upstream: keep-alive pool over asyncio protocols.

Why not `aiohttp.ClientSession`: on the request path it cost about two thirds of every proxied
request (bench/RESULTS.md). This client does only what a reverse proxy needs and leaves HTTP
parsing to llhttp (via `httptools`, the binding uvicorn uses), never to hand-written code:

- requests: the head is written in one call; the framing is this module's alone: a body
  streams with the `Content-Length` the caller declares (and must then be exactly that long,
  else the exchange fails and its connection is closed), or chunked when none is declared; a
  caller's own Content-Length or Transfer-Encoding fields are never written. Threat (#8): a
  forwarded Content-Length that did not match the bytes sent let the upstream read the next
  request on a pooled connection as this body. The writer honours transport back-pressure;
- responses: llhttp frames them (Content-Length, chunked, read-until-close); 1xx interim
  responses are skipped; a `101 Switching Protocols` is a protocol violation (the gateway never
  asks to upgrade) and fails as 502; trailer fields are dropped, never merged into the headers
  (RFC 9110 §6.5.1); HEAD, 204 and 304 have no body whatever their headers say; the body
  streams with back-pressure (reading pauses while the client is slower than the upstream);
- the pool: LIFO idle connections (the freshest is the likeliest alive), at most
  `max_connections` in use; a connection returns to the pool only after a complete exchange
  that both sides agreed to keep alive, and with nothing unread;
- stale connections: an idle pooled connection the upstream closed at the same moment we reused
  it fails before any response byte. Such a request is retried once, on a new connection, only
  when that is safe: an idempotent method (RFC 9110 §9.2.2) with no request body. A
  non-idempotent request is never replayed: the upstream may have acted on it.

Every failure is raised as the gateway's own UpstreamFailure (BadGateway / GatewayTimeout);
httptools' errors are translated here, the only module that imports it.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import httptools

from m2mgate.errors import BadGateway, ClientTimeout, GatewayError, GatewayTimeout
from m2mgate.flow_control import WriteFlow, wake, woken_in_time

Headers = list[tuple[str, str]]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_PAUSE_ABOVE = 256 * 1024  # buffered response bytes before reading from the upstream pauses
_IDLE_SECONDS = 30.0  # a pooled connection idle longer than this is closed, not reused
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # written by this module only
# The most bytes of response head (interim 1xx heads included) read before the final head is
# complete; larger is a 502. Envoy's default (max_response_headers_kb) is 60 KiB.
MAX_RESPONSE_HEAD_BYTES = 64 * 1024


class StaleConnection(BadGateway):
    """The connection failed before any response byte: safe to retry when idempotent."""


class Exchange:
    """One request/response on one connection; fed by the connection's parser callbacks."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_framed",
        "_head",
        "_head_bytes",
        "_head_only",
        "_interim",
        "_keep_when_done",
        "_length_left",
        "_parser",
        "_received",
        "_waiter",
        "headers",
        "keep_alive",
        "no_reuse",
        "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection, head_only: bool) -> None:
        self._conn = conn
        # The parser holds bound methods of this exchange, a reference cycle: detach() breaks
        # it when the exchange ends, so the exchange is freed by reference counting. Left to
        # the cyclic GC, these were nearly all of its work under load (and its pauses).
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self.status = 0
        self.headers: Headers = []
        self.keep_alive = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: GatewayError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head = False
        self._head_bytes = 0  # received before the final head is complete (interim heads too)
        self._interim = False
        self._framed = False  # Content-Length or chunked: the end is not the connection's close
        # A final response framed by Content-Length: its body bytes still to come. llhttp has
        # parsed and checked the head; the rest of the body is counted, not parsed, so it is
        # handed on without llhttp's copy of every byte (bench/RESULTS.md: 1 MiB bodies).
        self._length_left: int | None = None
        self._keep_when_done = False
        self._received = False
        self.no_reuse = False  # set when the exchange ended out of step (early response, ...)

    # --- parser callbacks (httptools calls these from feed_data) ---

    def on_message_begin(self) -> None:
        if self._head and not self._interim:
            # A second final response to one request: the connection is out of step. Raising
            # stops the parser; feed() drops the connection.
            raise _Unsolicited

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head:
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
            self._interim = True
            self.headers = []
            self._framed = False
            self._length_left = None
            return
        self.status = status
        self._head = True
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
        if self._done:
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
        if self._interim:
            self._interim = False
            return
        if not self._done:
            parser = cast(httptools.HttpResponseParser, self._parser)  # only called from feed()
            self._finish(parser.should_keep_alive())
            self._wake()

    # --- fed by the connection ---

    def feed(self, data: bytes) -> None:
        self._received = True
        if not self._head:
            self._head_bytes += len(data)  # checked once the parser has read these bytes
        if self._done:
            # Bytes after a complete response: the connection is out of step; never reuse it.
            self.no_reuse = True
            self._conn.close()
            return
        left = self._length_left
        if left is not None and self._head:
            self._take_counted(data, left)
            return
        parser = self._parser
        if parser is None:
            return  # detached: the exchange is over
        try:
            parser.feed_data(data)
            if not self._head and self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
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
        if self._done:
            return
        if self._head and not self._framed:
            self._finish(False)  # read-until-close framing: the close *is* the end (RFC 9112 §6.3)
        elif not self._received:
            self._fail(StaleConnection("upstream closed the connection before responding"))
        else:
            detail = type(exc).__name__ if exc is not None else "closed"
            self._fail(BadGateway(f"upstream connection lost mid-response: {detail}"))
        self._wake()

    def _finish(self, keep_alive: bool) -> None:
        self._done = True
        self.keep_alive = keep_alive

    def _fail(self, error: GatewayError) -> None:
        if self._error is None and not self._done:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        wake(self._waiter)

    # --- read by the forwarder ---

    @property
    def complete(self) -> bool:
        return self._done and not self._chunks

    @property
    def complete_when_read(self) -> bool:
        return self._done and self._error is None

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
        while not self._head:
            if self._error is not None:
                raise self._error
            await self._wait(seconds, "response head")

    async def read(self, seconds: float) -> bytes:
        """The next body bytes as they arrived (one chunk, never a joined copy); b"" at the
        end."""
        while not self._chunks:
            if self._done:
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


class _Unsolicited(Exception):
    pass


class _ProtocolViolation(Exception):
    """Raised in a parser callback: a response no HTTP/1.1 upstream may send to this request."""


class _Connection(WriteFlow):
    __slots__ = ("exchange", "idle_since", "transport")

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0

    def closed_error(self) -> Exception:
        return BadGateway("upstream connection closed while sending the request")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            self.close()  # bytes nobody asked for: the connection can no longer be trusted
            return
        self.exchange.feed(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)
        self.release_drain()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise self.closed_error()
        self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if self.transport is None or self.closed:
            raise self.closed_error()
        self.transport.writelines(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to one `host:port`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        timeout: float,
        max_connections: int,
        tls: bool = False,
    ) -> None:
        self.host, self.port = host, port
        # https upstreams: the system trust store and hostname checks, as any client.
        self._ssl = ssl.create_default_context() if tls else None
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        self.host_header = name if port == (443 if tls else 80) else f"{name}:{port}"
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self.max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False
        self.opened = 0  # connections ever opened (tests assert reuse and no leaks)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | None,
        *,
        content_length: int | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        """Send the request and return once the response head has arrived.

        A free connection is waited for at most `connect_timeout` (ConnectTimeout): with every
        pooled connection in use (slow clients, a slow upstream), requests fail fast with a
        504 instead of queueing without bound.

        `content_length`: the exact length of `body` (sent as Content-Length; 0 for an empty
        one), or None to send `body` chunked. `headers` carry no framing fields (any are
        dropped: the framing is this module's). `on_sent` is called once the request head has
        been written: from then on the upstream may act on it, whatever fails after."""
        if body is None and content_length:
            raise ValueError("a Content-Length above 0 needs a body")
        try:
            await asyncio.wait_for(self._slots.acquire(), self.connect_timeout)
        except TimeoutError:
            raise GatewayTimeout(
                f"no free upstream connection within {self.connect_timeout:g}s "
                f"(upstream.max_connections {self.max_connections})"
            ) from None
        try:
            conn, reused = await self._connection()
            try:
                exchange = await self._send(
                    conn, method, target, headers, body, content_length, on_sent
                )
            except StaleConnection:
                if not (reused and body is None and method in _IDEMPOTENT):
                    raise
                conn, _ = await self._connection(fresh=True)
                exchange = await self._send(
                    conn, method, target, headers, None, content_length, on_sent
                )
        except BaseException:
            self._slots.release()
            raise
        return Response(self, conn, exchange)

    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        if self._closed:
            raise BadGateway("upstream pool closed")
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_SECONDS:
                return conn, True
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=self._ssl),
                self.connect_timeout,
            )
        except TimeoutError:
            raise GatewayTimeout(
                f"connecting to the upstream took longer than {self.connect_timeout:g}s"
            ) from None
        except OSError as error:
            raise BadGateway(f"cannot connect to the upstream: {type(error).__name__}") from None
        self.opened += 1
        return conn, False

    async def _send(
        self,
        conn: _Connection,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        on_sent: Callable[[], None] | None,
    ) -> Exchange:
        try:
            return await self._exchange(
                conn, method, target, headers, body, content_length, on_sent
            )
        except BaseException:
            conn.close()  # failed or cancelled mid-exchange: never back to the pool
            if conn.exchange is not None:
                conn.exchange.detach()
                conn.exchange = None
            raise

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        on_sent: Callable[[], None] | None,
    ) -> Exchange:
        exchange = conn.exchange = Exchange(conn, head_only=method == "HEAD")
        has_host = False
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        for name, value in headers:
            lowered = name.lower()
            if lowered in _FRAMING:
                continue  # the framing below is the only one: it describes the bytes we send
            if lowered == "host":
                has_host = True
            lines.append(f"{name}: {value}\r\n")
        if not has_host:
            lines.append(f"Host: {self.host_header}\r\n")
        chunked = body is not None and content_length is None
        if chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        elif content_length is not None:
            lines.append(f"Content-Length: {content_length}\r\n")
        lines.append("\r\n")
        # The listener decoded the client's bytes as latin-1: the same encoding gives them back
        # exactly (identity values are ASCII, percent-encoded by the header rules).
        conn.write("".join(lines).encode("latin-1"))
        if on_sent is not None:
            on_sent()
        if body is None:
            await exchange.read_head(self.timeout)
            return exchange
        sender = asyncio.ensure_future(_send_body(conn, body, content_length))
        try:
            await _first_of(sender, exchange, self.timeout)
        except BaseException:
            sender.cancel()
            raise
        if not sender.done():
            # The upstream answered before taking the whole body (an early 413, or nginx's
            # `return`): stop sending (RFC 9112 §9.3 lets a client abort) and retire the
            # connection. The sender must stop *reading* the client's body too: the listener
            # discards the rest itself once the handler returns, and two readers on one body
            # would break the client's keep-alive connection.
            exchange.no_reuse = True
            sender.cancel()
            await asyncio.wait((sender,))  # it has stopped reading before the handler returns
            _ignore_result(sender)
        elif sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]
        return exchange

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if conn.exchange is not None:
            conn.exchange.detach()
        conn.exchange = None
        if reusable and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()


class FramingMismatch(Exception):
    """A body of another length than its declared Content-Length: a bug upstream of the pool
    (the listener delivers exactly the declared count, or fails). Not a gateway answer: the
    exchange fails as a 500 and its connection is closed, never reused."""


async def _send_body(
    conn: _Connection, body: AsyncIterator[bytes], content_length: int | None
) -> None:
    """Stream the body. Chunked (`content_length` None): the terminating chunk is written only
    when the body ended normally; a body that fails raises before it, and the caller closes the
    connection, so a refused or cut body never reaches the upstream as a complete one."""
    sent = 0
    async for chunk in body:
        if conn.closed:
            return  # the exchange ended (early response, failure): nobody reads the rest
        if not chunk:
            continue
        sent += len(chunk)
        if content_length is None:
            conn.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))  # no copy of the chunk
        elif sent > content_length:
            raise FramingMismatch(f"body longer than its Content-Length {content_length}")
        else:
            conn.write(chunk)
        await conn.drain()
    if content_length is None:
        conn.write(b"0\r\n\r\n")
    elif sent != content_length and not conn.closed:
        raise FramingMismatch(f"body of {sent} bytes, Content-Length {content_length}")


async def _first_of(sender: asyncio.Future[None], exchange: Exchange, seconds: float) -> None:
    """Wait for the response head; a failing body sender ends the wait with its error. When
    the time runs out while the request body is still being sent, it is the client's body
    that is late (408), not the upstream's answer (504): an upstream reads a body before it
    answers, and blaming it would count the client's stall in its error metrics."""
    head = asyncio.ensure_future(exchange.read_head(seconds))
    try:
        await asyncio.wait((sender, head), return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]  # the client's body failed first
        if not head.done():
            await asyncio.wait((head,))  # the body is sent: wait for the head as usual
        if isinstance(head.exception(), GatewayTimeout) and not sender.done():
            raise ClientTimeout(f"the request body was not complete within {seconds:g}s")
        head.result()
    finally:
        if not head.done():
            head.cancel()
        else:
            _ignore_result(head)  # its error, if any, was raised above or superseded


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Response:
    """The response head, and its body to stream; release() must be called once done."""

    __slots__ = ("_conn", "_exchange", "_pool", "_released", "headers", "status")

    def __init__(self, pool: UpstreamPool, conn: _Connection, exchange: Exchange) -> None:
        self._pool, self._conn, self._exchange = pool, conn, exchange
        self.status = exchange.status
        self.headers = exchange.headers
        self._released = False

    async def read(self) -> bytes:
        return await self._exchange.read(self._pool.timeout)

    def whole_body(self) -> bytes | None:
        """The entire body if it has already arrived (small responses usually come with the
        head), else None: then stream it with read()."""
        exchange = self._exchange
        if not exchange.complete_when_read:
            return None
        return exchange.take_all()

    def release(self) -> None:
        """Back to the pool if the exchange completed cleanly and may be kept alive; closed
        otherwise (a body left unread, an error, `Connection: close`)."""
        if self._released:
            return
        self._released = True
        exchange = self._exchange
        reusable = exchange.complete and exchange.keep_alive and not exchange.no_reuse
        self._pool._release(self._conn, reusable)
