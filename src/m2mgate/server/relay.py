"""The relay: one authorized request's trip through the upstream seam and back to the client.

It adapts the client's body stream to the UpstreamRequest body iterator (within the size limit
and the idle timeout, after `100 Continue`), and streams the UpstreamResponse to the client's
response sink. Once the response head has been sent to the client, a failure can no longer
become a JSON error: the client connection is aborted instead, so a truncated body can never
pass for a complete one. The relay keeps what happened (its own result) for the access log
and metrics, which read it even when forwarding fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from m2mgate.errors import (
    BodyRefused,
    ClientClosedRequest,
    ClientTimeout,
    GatewayError,
    RequestTooLarge,
    UpstreamFailure,
)
from m2mgate.proxy.response_headers import Headers, downstream_response_headers
from m2mgate.proxy.upstream import (
    RequestBodyUnfinished,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
)
from m2mgate.server.exchange import RequestBody, RequestHead, ResponseSink
from m2mgate.server.limits import BodyLimits
from m2mgate.server.response_head import http_date


class Relay:
    """Forwards one request and relays its response; what happened stays on it."""

    __slots__ = (
        "_head_sent",
        "body_bytes",
        "body_error",
        "client_gone",
        "client_stalled",
        "failure",
        "failure_detail",
        "upstream_seconds",
    )  # fmt: skip

    def __init__(self) -> None:
        self.upstream_seconds: float | None = None  # set once the request head went upstream
        # Request body bytes handed to the upstream (None: no body was sent). The access log's
        # `body_bytes`: the differential tests compare it with what the upstream received.
        self.body_bytes: int | None = None
        # The `kind` label of m2mgate_upstream_errors_total: unavailable | timeout | aborted.
        self.failure: str | None = None
        self.failure_detail: str | None = None
        self.client_gone = False  # the client left mid-response (not the upstream's fault)
        self.client_stalled = False  # ... by reading nothing for limits.send_timeout_seconds
        self.body_error: GatewayError | None = None  # the client's body broke a limit mid-stream
        self._head_sent = False

    def _mark_head_sent(self) -> None:
        self._head_sent = True

    async def forward(
        self,
        head: RequestHead,
        request: RequestBody,
        response: ResponseSink,
        upstream: Upstream,
        headers: Headers,
        request_id: str,
        limits: BodyLimits,
    ) -> None:
        """Forward the request, then relay the response to the client."""
        declared = head.content_length
        if limits.max_bytes is not None and declared is not None and declared > limits.max_bytes:
            raise RequestTooLarge(f"Content-Length {declared} > {limits.max_bytes}")
        started = time.perf_counter()
        body = None
        if head.has_body:
            request.send_continue()  # only now: the request is authorized
            body = self._limited_body(request, limits)
        # target: the exact bytes the client sent, path and query (never re-quoted).
        # Framing: the pool writes it from what the listener read, never from the client's
        # fields (the header rules strip Content-Length and Transfer-Encoding): a declared
        # length is the exact count the listener delivers, else the body goes chunked.
        outgoing = UpstreamRequest(
            head.method, head.target, headers, body, declared, self._mark_head_sent
        )
        try:
            answer = await upstream.send(outgoing)
        except BaseException as error:
            # Whatever ends it (a broken answer, the client's refused body, a cancellation),
            # a request whose head went out may have been acted on: it is logged as forwarded.
            if self._head_sent:
                self.upstream_seconds = time.perf_counter() - started
            if isinstance(error, RequestBodyUnfinished):
                # The body was still being sent when the time ran out: the client's 408.
                late = ClientTimeout(error.detail)
                if self.body_error is None:
                    self.body_error = late
                raise late from None
            if isinstance(error, ClientTimeout) and self.body_error is None:
                self.body_error = error  # the body was late, however the pool noticed it
            raise
        try:
            await self._relay(head.method == "HEAD", response, answer, request_id)
        finally:
            self.upstream_seconds = time.perf_counter() - started
            answer.release()

    async def _relay(
        self, is_head: bool, response: ResponseSink, upstream: UpstreamResponse, request_id: str
    ) -> None:
        headers, content_length = downstream_response_headers(
            upstream.headers, request_id, http_date()
        )
        whole = upstream.whole_body() if not is_head else None
        if whole is not None:
            # The whole body is here already (the common small response): head and body in
            # one write. Its length is the body's.
            response.respond(upstream.status, headers, whole, add_date=False)
            return
        response.start(upstream.status, headers, content_length)
        try:
            while True:
                try:
                    chunk = await upstream.read()
                except UpstreamFailure as error:
                    # The upstream failed mid-body. The status line is already out, so the only
                    # honest signal left is to cut the client connection: a truncated body must
                    # never look complete (a chunked terminator or a short-but-closed
                    # Content-Length would).
                    self.failure = "aborted"
                    self.failure_detail = error.detail
                    response.abort()
                    return
                if not chunk:
                    break
                response.write(chunk)
                await response.drain()
            response.finish()
        except ConnectionError:
            # The client left. release() closes the upstream side if its body was left unread.
            self.client_gone = True
            response.abort()
        except TimeoutError:
            # The client stopped reading (limits.send_timeout_seconds): cut it, so the upstream
            # connection it held goes back (closed, its body unread) for everyone else.
            self.client_gone = self.client_stalled = True
            response.abort()

    async def _limited_body(self, request: RequestBody, limits: BodyLimits) -> AsyncIterator[bytes]:
        """The request body, streamed, within the size limit and the idle timeout.

        Threats: an endless chunked upload (no Content-Length to check up front), and a client
        that trickles its body to hold an upstream connection open.
        """
        received = self.body_bytes = 0
        while True:
            chunk = await self._next_chunk(request, limits)
            if not chunk:
                return
            received += len(chunk)
            if limits.max_bytes is not None and received > limits.max_bytes:
                self.body_error = RequestTooLarge(f"body over {limits.max_bytes} bytes")
                raise self.body_error
            self.body_bytes = received
            yield chunk

    async def _next_chunk(self, request: RequestBody, limits: BodyLimits) -> bytes:
        """The next body bytes; a stalled, abandoned or refused body raises the gateway's error
        (recorded for the access log), so the upstream exchange carrying it is cut."""
        failure: GatewayError
        try:
            return await request.read_body(limits.idle_timeout_seconds)
        except TimeoutError:
            failure = ClientTimeout("the request body stalled")
        except ConnectionError as error:
            self.client_gone = True
            failure = ClientClosedRequest(type(error).__name__)
        except BodyRefused as error:
            failure = error  # the listener has answered 400 for it
        self.body_error = failure
        raise failure from None
