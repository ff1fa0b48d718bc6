"""The upstream forwarder: the request path's only network I/O towards the API.

A keep-alive pool of lean HTTP/1.1 connections (http1_client.py) per upstream. Bodies stream
both ways; neither side is ever buffered whole. Failures arrive as the gateway's own errors:
connect failures -> BadGateway (502), timeouts -> GatewayTimeout (504). Once the response head
has been sent to the client, a failure can no longer become a JSON error: the client connection
is aborted instead, so a truncated body can never pass for a complete one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from yarl import URL

from m2mgate.errors import (
    BodyRefused,
    ClientClosedRequest,
    ClientTimeout,
    GatewayError,
    RequestTooLarge,
    UpstreamFailure,
)
from m2mgate.proxy.headers import Headers, downstream_response_headers
from m2mgate.proxy.http1_client import Response, UpstreamPool
from m2mgate.proxy.settings import UpstreamSettings
from m2mgate.server.limits import BodyLimits
from m2mgate.server.request_cycle import RequestCycle, http_date


@dataclass(slots=True)
class ForwardTiming:
    """Filled while forwarding, read by the access log and metrics even when forwarding fails."""

    upstream_seconds: float | None = None
    # Request body bytes handed to the upstream (None: no body was sent). The access log's
    # `body_bytes`: the differential tests compare it with what the upstream received.
    body_bytes: int | None = None
    # The `kind` label of m2mgate_upstream_errors_total: unavailable | timeout | aborted.
    failure: str | None = None
    failure_detail: str | None = None
    client_gone: bool = False  # the client left mid-response (not the upstream's fault)
    client_stalled: bool = False  # ... by reading nothing for limits.send_timeout_seconds
    body_error: GatewayError | None = None  # the client's body broke a limit mid-stream


class UpstreamForwarder:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        url = URL(settings.url)
        if url.host is None or url.port is None:
            raise ValueError(f"upstream url {settings.url!r} has no host or port")
        self._host, self._port, self._tls = url.host, url.port, url.scheme == "https"
        self._pool: UpstreamPool | None = None

    async def start(self) -> None:
        self._pool = UpstreamPool(
            self._host,
            self._port,
            connect_timeout=self.settings.connect_timeout_seconds,
            # Bounds the wait for the response head and every later body read.
            timeout=self.settings.timeout_seconds,
            max_connections=self.settings.max_connections,
            tls=self._tls,
        )

    @property
    def pool(self) -> UpstreamPool | None:
        return self._pool

    @property
    def is_closed(self) -> bool:
        return self._pool is None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def forward(
        self,
        request: RequestCycle,
        headers: Headers,
        request_id: str,
        timing: ForwardTiming,
        limits: BodyLimits,
    ) -> None:
        """Forward the request and relay the response to the client (RequestCycle writes)."""
        if self._pool is None:
            raise RuntimeError("forwarder not started")
        declared = request.content_length
        if limits.max_bytes is not None and declared is not None and declared > limits.max_bytes:
            raise RequestTooLarge(f"Content-Length {declared} > {limits.max_bytes}")
        started = time.perf_counter()
        body = None
        if request.has_body:
            request.send_continue()  # only now: the request is authorized
            body = _limited_body(request, limits, timing)
        # target: the exact bytes the client sent, path and query (never re-quoted).
        # Framing: the pool writes it from what the listener read, never from the client's
        # fields (the header rules strip Content-Length and Transfer-Encoding): a declared
        # length is the exact count the listener delivers, else the body goes chunked.
        sent = False

        def mark_sent() -> None:
            nonlocal sent
            sent = True

        try:
            upstream = await self._pool.request(
                request.method,
                request.target,
                headers,
                body,
                content_length=declared,
                on_sent=mark_sent,
            )
        except BaseException as error:
            # Whatever ends it (a broken answer, the client's refused body, a cancellation),
            # a request whose head went out may have been acted on: it is logged as forwarded.
            if sent:
                timing.upstream_seconds = time.perf_counter() - started
            if isinstance(error, ClientTimeout) and timing.body_error is None:
                timing.body_error = error  # the body was late, however the pool noticed it
            raise
        try:
            await self._relay(request, upstream, request_id, timing)
        finally:
            timing.upstream_seconds = time.perf_counter() - started
            upstream.release()

    async def _relay(
        self,
        request: RequestCycle,
        upstream: Response,
        request_id: str,
        timing: ForwardTiming,
    ) -> None:
        headers, content_length = downstream_response_headers(
            upstream.headers, request_id, http_date()
        )
        whole = upstream.whole_body() if request.method != "HEAD" else None
        if whole is not None:
            # The whole body is here already (the common small response): head and body in
            # one write. Its length is the body's.
            request.respond(upstream.status, headers, whole, add_date=False)
            return
        request.start(upstream.status, headers, content_length)
        try:
            while True:
                try:
                    chunk = await upstream.read()
                except UpstreamFailure as error:
                    # The upstream failed mid-body. The status line is already out, so the only
                    # honest signal left is to cut the client connection: a truncated body must
                    # never look complete (a chunked terminator or a short-but-closed
                    # Content-Length would).
                    timing.failure = "aborted"
                    timing.failure_detail = error.detail
                    request.abort()
                    return
                if not chunk:
                    break
                request.write(chunk)
                await request.drain()
            request.finish()
        except ConnectionError:
            # The client left. release() closes the upstream side if its body was left unread.
            timing.client_gone = True
            request.abort()
        except TimeoutError:
            # The client stopped reading (limits.send_timeout_seconds): cut it, so the upstream
            # connection it held goes back (closed, its body unread) for everyone else.
            timing.client_gone = timing.client_stalled = True
            request.abort()


async def _limited_body(
    request: RequestCycle, limits: BodyLimits, timing: ForwardTiming
) -> AsyncIterator[bytes]:
    """The request body, streamed, within the size limit and the idle timeout.

    Threats: an endless chunked upload (no Content-Length to check up front), and a client that
    trickles its body to hold an upstream connection open.
    """
    received = timing.body_bytes = 0
    while True:
        chunk = await _next_chunk(request, limits, timing)
        if not chunk:
            return
        received += len(chunk)
        if limits.max_bytes is not None and received > limits.max_bytes:
            timing.body_error = RequestTooLarge(f"body over {limits.max_bytes} bytes")
            raise timing.body_error
        timing.body_bytes = received
        yield chunk


async def _next_chunk(request: RequestCycle, limits: BodyLimits, timing: ForwardTiming) -> bytes:
    """The next body bytes; a stalled, abandoned or refused body raises the gateway's error
    (recorded for the access log), so the upstream exchange carrying it is cut."""
    failure: GatewayError
    try:
        return await request.read_body(limits.idle_timeout_seconds)
    except TimeoutError:
        failure = ClientTimeout("the request body stalled")
    except ConnectionError as error:
        timing.client_gone = True
        failure = ClientClosedRequest(type(error).__name__)
    except BodyRefused as error:
        failure = error  # the listener has answered 400 for it
    timing.body_error = failure
    raise failure from None
