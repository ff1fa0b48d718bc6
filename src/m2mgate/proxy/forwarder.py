"""The upstream forwarder: the request path's only network I/O towards the API.

One pooled `aiohttp.ClientSession` per upstream with keep-alive. Bodies stream both ways in
chunks; neither side is ever buffered whole. aiohttp client errors are translated here, once:
connect failures -> BadGateway (502), timeouts -> GatewayTimeout (504). Once the response head
has been sent to the client, a failure can no longer become a JSON error: the client connection
is aborted instead, so a truncated body can never pass for a complete one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from m2mgate.errors import (
    BadGateway,
    ClientTimeout,
    GatewayError,
    GatewayTimeout,
    RequestTooLarge,
)
from m2mgate.proxy.headers import Headers, downstream_response_headers

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    url: str
    connect_timeout_seconds: float
    timeout_seconds: float
    max_connections: int


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_bytes: int | None  # None: no limit
    idle_timeout_seconds: float


@dataclass(slots=True)
class ForwardTiming:
    """Filled while forwarding, read by the access log and metrics even when forwarding fails."""

    upstream_seconds: float | None = None
    # The `kind` label of m2mgate_upstream_errors_total: unavailable | timeout | aborted.
    failure: str | None = None
    failure_detail: str | None = None
    client_gone: bool = False  # the client left mid-response (not the upstream's fault)
    body_error: GatewayError | None = None  # the client's body broke a limit mid-stream


class UpstreamForwarder:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._base = settings.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.settings.max_connections, limit_per_host=0, ttl_dns_cache=10
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.settings.connect_timeout_seconds,
                # Bounds the wait for the response head and every later body read.
                sock_read=self.settings.timeout_seconds,
            ),
            auto_decompress=False,  # pass bodies through byte for byte
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep upstream cookies across clients
            trust_env=False,
            # aiohttp would otherwise add headers the client never sent.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    @property
    def is_closed(self) -> bool:
        return self._session is None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(
        self,
        request: web.BaseRequest,
        headers: Headers,
        request_id: str,
        timing: ForwardTiming,
        limits: BodyLimits,
    ) -> web.StreamResponse:
        if self._session is None:
            raise RuntimeError("forwarder not started")
        declared = request.content_length
        if limits.max_bytes is not None and declared is not None and declared > limits.max_bytes:
            raise RequestTooLarge(f"Content-Length {declared} > {limits.max_bytes}")
        started = time.perf_counter()
        await _send_continue_if_expected(request)
        body = _limited_body(request, limits, timing) if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                # raw_path: the exact bytes the client sent, path and query (never re-quoted).
                URL(self._base + request.raw_path, encoded=True),
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
            )
        except TimeoutError:
            raise timing.body_error or GatewayTimeout("upstream did not answer in time") from None
        except (aiohttp.ClientError, OSError) as error:
            # A body limit breaks the upstream request from inside; report that, not a 502.
            raise timing.body_error or BadGateway(f"{type(error).__name__}: {error}") from None
        try:
            return await self._relay(request, upstream, request_id, timing)
        finally:
            timing.upstream_seconds = time.perf_counter() - started
            upstream.release()

    async def _relay(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        request_id: str,
        timing: ForwardTiming,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in downstream_response_headers(list(upstream.headers.items()), request_id):
            response.headers.add(name, value)
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                try:
                    await response.write(chunk)
                except (ConnectionError, OSError):
                    timing.client_gone = True
                    upstream.close()  # mid-body: this upstream connection cannot be reused
                    return response
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            # The upstream failed mid-body. The status line is already out, so the only honest
            # signal left is to cut the client connection: a truncated body must never look
            # complete (a chunked terminator or a short-but-closed Content-Length would).
            timing.failure = "aborted"
            upstream.close()
            timing.failure_detail = type(error).__name__
            _abort(request)
            return response
        await response.write_eof()
        return response


async def _limited_body(
    request: web.BaseRequest, limits: BodyLimits, timing: ForwardTiming
) -> AsyncIterator[bytes]:
    """The request body, streamed, within the size limit and the idle timeout.

    Threats: an endless chunked upload (no Content-Length to check up front), and a client that
    trickles its body to hold an upstream connection open.
    """
    received = 0
    while True:
        try:
            chunk = await asyncio.wait_for(request.content.readany(), limits.idle_timeout_seconds)
        except TimeoutError:
            timing.body_error = ClientTimeout("the request body stalled")
            raise timing.body_error from None
        if not chunk:
            return
        received += len(chunk)
        if limits.max_bytes is not None and received > limits.max_bytes:
            timing.body_error = RequestTooLarge(f"body over {limits.max_bytes} bytes")
            raise timing.body_error
        yield chunk


async def _send_continue_if_expected(request: web.BaseRequest) -> None:
    """RFC 9110 §10.1.1: answer `Expect: 100-continue` ourselves, only once the request is
    authorized (this runs after the decision), so an unauthorized client never uploads."""
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own expect handler: the body starts later


def _abort(request: web.BaseRequest) -> None:
    # aiohttp's final write_eof() then meets a closed transport and ends the exchange quietly.
    transport = request.transport
    if transport is not None:
        transport.abort()
