"""The upstream forwarder: the request path's only network I/O towards the API.

A keep-alive pool of lean HTTP/1.1 connections (http1_client.py) per upstream, behind the
upstream seam (upstream.py): `send(UpstreamRequest) -> UpstreamResponse`. Bodies stream both
ways; neither side is ever buffered whole. Failures arrive as the gateway's own errors:
connect failures -> BadGateway (502), timeouts -> GatewayTimeout (504). The forwarder knows
nothing about clients: the server's relay (server/relay.py) reads the client's body into the
request and writes the response out to the client.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from m2mgate.proxy.http1_client import Response, UpstreamPool
from m2mgate.proxy.settings import UpstreamSettings
from m2mgate.proxy.upstream import UpstreamRequest


class UpstreamForwarder:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        target = settings.target  # parsed once, when the config was read
        self._host, self._port, self._tls = target.host, target.port, target.tls
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

    def send(self, request: UpstreamRequest) -> Coroutine[Any, Any, Response]:
        """The response head from the upstream (see UpstreamPool.send). The pool's own
        coroutine, not one wrapping it: no extra frame per request."""
        if self._pool is None:
            raise RuntimeError("forwarder not started")
        return self._pool.send(request)
