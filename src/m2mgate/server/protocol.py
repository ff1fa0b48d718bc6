"""The proxy listener's HTTP/1.1 connection handling, on top of aiohttp's server protocol.

aiohttp's parser (llhttp) already refuses request smuggling: Content-Length with
Transfer-Encoding, duplicated Content-Length, obs-fold, bad chunking, bare LF. This module adds
what a gateway on the request path needs around it:

- **Parse errors answer in JSON, never echoing the request.** aiohttp's default 400 body quotes
  the offending bytes (`Invalid header token: b'Authorization : Bearer ...'`): a credential sent
  back in a response, and possibly cached or logged by something in between. Here the status
  says what was wrong (400, 414 URI too long, 431 header fields too large) and the body is the
  usual fixed JSON.
- **A deadline on every request head** (slowloris): a client that connects and sends nothing, or
  trickles its headers, is cut off `head_timeout_seconds` after its first byte (or after
  connecting). aiohttp's own keep-alive timeout only covers idle gaps between requests.
- **A cap on concurrent connections**, so fds stay bounded whatever clients do.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from m2mgate.proxy.headers import SERVER


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_seconds: float
    max_connections: int
    max_url_bytes: int


_DESCRIPTIONS = {
    400: "The request is not valid HTTP.",
    414: "The request URI is too long.",
    431: "The request header fields are too large.",
    500: "The gateway failed to handle the request.",
}


def parse_error_status(exc: BaseException | None, max_url_bytes: int) -> int:
    """400, or the more precise 414 / 431 for the size limits (RFC 9110 §15.5.15, RFC 6585)."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        return 414 if str(limit) == str(max_url_bytes) else 431
    if exc is not None and "Too many headers" in str(exc):
        return 431
    return 400


class GatewayRequestHandler(RequestHandler):
    def __init__(self, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gateway_server = manager
        self._head_deadline: asyncio.TimerHandle | None = None
        self._heads_when_armed = 0

    # --- slow clients -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()  # the first request head must arrive in time

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        super().data_received(data)
        if self._request_count > heads_before:
            self._disarm_head_deadline()  # a whole head arrived
        elif self._head_deadline is None and not self._request_in_progress:
            self._arm_head_deadline()  # the first bytes of a new head: start its clock

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._heads_when_armed = self._request_count
        loop = asyncio.get_running_loop()
        self._head_deadline = loop.call_later(
            self._gateway_server.limits.head_timeout_seconds, self._head_deadline_passed
        )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self._request_count == self._heads_when_armed and not self._request_in_progress:
            self._gateway_server.on_slow_client()
            if self.transport is not None:
                self.transport.close()

    # --- parse errors -----------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for an error response
            raise ConnectionError("response already started")
        if status == 400:
            status = parse_error_status(exc, self._gateway_server.limits.max_url_bytes)
        request_id = secrets.token_hex(16)
        self._gateway_server.on_http_error(status, exc, request_id)
        code = "server_error" if status >= 500 else "invalid_request"
        body = {
            "error": code,
            "error_description": _DESCRIPTIONS.get(status, _DESCRIPTIONS[400]),
            "request_id": request_id,
        }
        response = web.Response(
            status=status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            # RFC 9112 §9.6: after a framing error the connection cannot be trusted; say so.
            headers={
                "Cache-Control": "no-store",
                "X-Request-Id": request_id,
                "Connection": "close",
                "Server": SERVER,
            },
        )
        response.force_close()
        return response


class GatewayServer(web.Server):
    """aiohttp's low-level server, making our protocol and counting connections."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnectionLimits,
        on_http_error: Callable[[int, BaseException | None, str], None],
        on_slow_client: Callable[[], None],
        on_connection_refused: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.on_http_error = on_http_error
        self.on_slow_client = on_slow_client
        self._on_connection_refused = on_connection_refused
        self._open = 0

    def __call__(self) -> GatewayRequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open += 1
        if self._open > self.limits.max_connections:
            # Over the cap: close at once rather than let one more client hold an fd.
            self._on_connection_refused()
            transport.close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open -= 1
        super().connection_lost(handler, exc)

    @property
    def open_connections(self) -> int:
        return self._open
