"""A lean HTTP/1.1 client for the one upstream: keep-alive pool over asyncio protocols.

Why not `aiohttp.ClientSession`: on the request path it cost about two thirds of every proxied
request (bench/RESULTS.md). This client does only what a reverse proxy needs and leaves HTTP
parsing to llhttp (via `httptools`, the binding uvicorn uses), never to hand-written code. It
is the transport behind the upstream seam (upstream.py): `send(UpstreamRequest)` returns an
`UpstreamResponse` once the response head has arrived. In pieces:

- request_head.py encodes the head; the framing is the transport's alone: a body streams with
  the `Content-Length` the caller declares (and must then be exactly that long, else the
  exchange fails and its connection is closed), or chunked when none is declared; a caller's
  own Content-Length or Transfer-Encoding fields are never written. The writer honours
  transport back-pressure (request_body.py);
- upstream_exchange.py reads the response (1xx skipped, 101 refused, trailers dropped, HEAD,
  204 and 304 bodyless, back-pressure) and holds where the exchange is as one state;
- the pool (here): LIFO idle connections (the freshest is the likeliest alive), at most
  `max_connections` in use; a connection returns to the pool only after a complete exchange
  that both sides agreed to keep alive, and with nothing unread. A connection whose framing is
  in doubt (a failed or cancelled exchange, a body that raised) is closed, never pooled;
- stale connections: an idle pooled connection the upstream closed at the same moment we reused
  it fails before any response byte. Such a request is retried once, on a new connection, only
  when that is safe: an idempotent method (RFC 9110 §9.2.2) with no request body. A
  non-idempotent request is never replayed: the upstream may have acted on it.

Every failure is raised as the gateway's own UpstreamFailure (BadGateway / GatewayTimeout),
except the request body's own exception, re-raised as it is; httptools' errors are translated
in upstream_exchange.py, the only module that imports it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

from m2mgate.errors import BadGateway, GatewayTimeout
from m2mgate.proxy.request_body import FramingMismatch, head_while_sending, ignore_result, send_body
from m2mgate.proxy.request_head import encode_request_head
from m2mgate.proxy.upstream import Headers, UpstreamRequest
from m2mgate.proxy.upstream_connection import UpstreamConnection
from m2mgate.proxy.upstream_exchange import Exchange, StaleConnection

__all__ = ["FramingMismatch", "Response", "UpstreamPool"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_IDLE_SECONDS = 30.0  # a pooled connection idle longer than this is closed, not reused


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
        self._idle: list[UpstreamConnection] = []
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

    async def send(self, request: UpstreamRequest) -> Response:
        """Send the request and return once the response head has arrived.

        A free connection is waited for at most `connect_timeout` (ConnectTimeout): with every
        pooled connection in use (slow clients, a slow upstream), requests fail fast with a
        504 instead of queueing without bound."""
        if request.body is None and request.content_length:
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
                exchange = await self._send(conn, request, request.body)
            except StaleConnection:
                if not (reused and request.body is None and request.method in _IDEMPOTENT):
                    raise
                conn, _ = await self._connection(fresh=True)
                exchange = await self._send(conn, request, None)
        except BaseException:
            self._slots.release()
            raise
        return Response(self, conn, exchange)

    async def _connection(self, fresh: bool = False) -> tuple[UpstreamConnection, bool]:
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
                loop.create_connection(UpstreamConnection, self.host, self.port, ssl=self._ssl),
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
        conn: UpstreamConnection,
        request: UpstreamRequest,
        body: AsyncIterator[bytes] | None,
    ) -> Exchange:
        try:
            return await self._exchange(conn, request, body)
        except BaseException:
            conn.close()  # failed or cancelled mid-exchange: never back to the pool
            conn.end_exchange()
            raise

    async def _exchange(
        self,
        conn: UpstreamConnection,
        request: UpstreamRequest,
        body: AsyncIterator[bytes] | None,
    ) -> Exchange:
        exchange = conn.exchange = Exchange(conn, head_only=request.is_head_only)
        content_length = request.content_length
        conn.write(
            encode_request_head(
                request.method,
                request.target,
                request.headers,
                self.host_header,
                content_length=content_length,
                chunked=body is not None and content_length is None,
            )
        )
        if request.on_head_sent is not None:
            request.on_head_sent()
        if body is None:
            await exchange.read_head(self.timeout)
            return exchange
        sender = asyncio.ensure_future(send_body(conn, body, content_length))
        try:
            await head_while_sending(sender, exchange, self.timeout)
        except BaseException:
            sender.cancel()
            raise
        if not sender.done():
            # The upstream answered before taking the whole body (an early 413, or nginx's
            # `return`): stop sending (RFC 9112 §9.3 lets a client abort) and retire the
            # connection. The sender must stop *reading* the body too: its owner discards the
            # rest itself once it is done, and two readers on one body would break the
            # client's keep-alive connection.
            exchange.no_reuse = True
            sender.cancel()
            await asyncio.wait((sender,))  # it has stopped reading before send() returns
            ignore_result(sender)
        elif sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]
        return exchange

    def _release(self, conn: UpstreamConnection, reusable: bool) -> None:
        conn.end_exchange()
        if reusable and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()


class Response:
    """The response head, and its body to stream (an UpstreamResponse); release() must be
    called once done."""

    __slots__ = ("_conn", "_exchange", "_pool", "_released", "headers", "status")

    def __init__(self, pool: UpstreamPool, conn: UpstreamConnection, exchange: Exchange) -> None:
        self._pool, self._conn, self._exchange = pool, conn, exchange
        self.status = exchange.status
        self.headers: Headers = exchange.headers
        self._released = False

    @property
    def content_length(self) -> int | None:
        return self._exchange.content_length

    async def read(self) -> bytes:
        return await self._exchange.read(self._pool.timeout)

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._exchange.read(self._pool.timeout)
        if not chunk:
            raise StopAsyncIteration
        return chunk

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
        self._pool._release(self._conn, self._exchange.is_reusable)
