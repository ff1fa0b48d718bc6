"""Composition root: compiled settings -> a running gateway (proxy listener, admin listener,
key caches with their background refreshers, the upstream pool), and its orderly shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from m2mgate.auth.verifier import TokenVerifier
from m2mgate.config.addresses import ListenAddress
from m2mgate.config.compiling import Settings
from m2mgate.decision import Gatekeeper
from m2mgate.jose import VerificationKey
from m2mgate.keys.cache import KeyCache, KeyCacheStatus
from m2mgate.keys.fetcher import new_session
from m2mgate.keys.source import FetchedKeys, KeySource
from m2mgate.observability.logging import build_logger
from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.proxy.forwarder import UpstreamForwarder
from m2mgate.server.admin import admin_app
from m2mgate.server.handler import ProxyHandler

# aiohttp server limits for the proxy listener (RFC 9112 leaves them to us). The token cap is
# separate (`limits.max_token_bytes`) and checked before any parsing.
_MAX_LINE_BYTES = 8190
_MAX_FIELD_BYTES = 16384
_MAX_HEADERS = 100
_KEEPALIVE_SECONDS = 75.0


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        log_stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.log = build_logger(log_stream, settings.log_level)
        self.metrics = GatewayMetrics(registry)
        self._jwks_session: aiohttp.ClientSession | None = None
        self.key_caches: dict[str, KeyCache] = {}
        for issuer in settings.issuers:
            source = KeySource(issuer.source, self._session, clock)
            self.key_caches[issuer.policy.name] = KeyCache(
                issuer.policy.name, source.fetch, issuer.cache, observer=self, clock=clock
            )
        verifier = TokenVerifier(
            {issuer.policy.issuer: issuer.policy for issuer in settings.issuers},
            self._keys_for,
            wall_clock,
        )
        self.gatekeeper = Gatekeeper(settings.routes, verifier, settings.max_token_bytes)
        self.forwarder = UpstreamForwarder(settings.upstream)
        self.metrics.watch_key_caches(self.key_statuses)
        self._ready = asyncio.Event()
        self._draining = False
        self._refreshers: list[asyncio.Task[None]] = []
        self._proxy_runner: web.ServerRunner | None = None
        self._admin_runner: web.AppRunner | None = None

    # --- wiring ---------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._jwks_session is None:
            raise RuntimeError("gateway not started")
        return self._jwks_session

    async def _keys_for(
        self, issuer_name: str, kid: str | None, algorithm: str
    ) -> tuple[VerificationKey, ...]:
        return await self.key_caches[issuer_name].keys_for(kid, algorithm)

    def key_statuses(self) -> list[KeyCacheStatus]:
        return [cache.status() for cache in self.key_caches.values()]

    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None:
        """KeyCache observer: one metric and one log event per fetch."""
        self.metrics.jwks_fetches.labels(issuer_name, result).inc()
        if fetched is not None:
            self.log.info(
                "jwks_fetched",
                issuer=issuer_name,
                jwks_uri=fetched.jwks_uri,
                keys=len(fetched.keyset.keys),
                key_ids=list(fetched.keyset.key_ids)[:20],
                skipped=list(fetched.keyset.skipped)[:20] or None,
                max_age=fetched.max_age,
            )
        else:
            self.log.warning("jwks_fetch_failed", issuer=issuer_name, result=result, detail=detail)
        if all(status.is_ready for status in self.key_statuses()):
            self._ready.set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._jwks_session = new_session()
        await self.forwarder.start()
        loop = asyncio.get_running_loop()
        self._refreshers = [loop.create_task(cache.run()) for cache in self.key_caches.values()]
        handler = ProxyHandler(
            self.gatekeeper, self.forwarder, self.settings.forward, self.metrics, self.log
        )
        server = web.Server(
            handler,
            access_log=None,  # one structured access event per request comes from the handler
            auto_decompress=False,  # a proxy passes request bodies through untouched
            max_line_size=_MAX_LINE_BYTES,
            max_field_size=_MAX_FIELD_BYTES,
            max_headers=_MAX_HEADERS,
            keepalive_timeout=_KEEPALIVE_SECONDS,
        )
        self._proxy_runner = web.ServerRunner(
            server, shutdown_timeout=self.settings.shutdown_grace_seconds
        )
        await self._proxy_runner.setup()
        await _serve(self._proxy_runner, self.settings.listen)
        self._admin_runner = web.AppRunner(
            admin_app(self.metrics.registry, self.key_statuses, lambda: self._draining),
            access_log=None,
        )
        await self._admin_runner.setup()
        await _serve(self._admin_runner, self.settings.admin_listen)
        self.log.info(
            "started",
            listen=_format(self.proxy_address),
            admin_listen=_format(self.admin_address),
            upstream=self.settings.upstream.url,
            issuers=list(self.key_caches),
            routes=[route.name for route in self.settings.routes.routes],
        )

    async def wait_ready(self, timeout_seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop accepting, drain in-flight requests (bounded by the grace period), close."""
        self._draining = True  # /readyz answers 503 from now on
        self.log.info("draining", grace_seconds=self.settings.shutdown_grace_seconds)
        if self._proxy_runner is not None:
            await self._proxy_runner.cleanup()
            self._proxy_runner = None
        for task in self._refreshers:
            task.cancel()
        await asyncio.gather(*self._refreshers, return_exceptions=True)
        self._refreshers = []
        await self.forwarder.close()
        if self._jwks_session is not None:
            await self._jwks_session.close()
            self._jwks_session = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        self.log.info("stopped")

    @property
    def proxy_address(self) -> tuple[str, int]:
        return _bound(self._proxy_runner)

    @property
    def admin_address(self) -> tuple[str, int]:
        return _bound(self._admin_runner)


async def _serve(runner: web.BaseRunner, address: ListenAddress) -> None:
    site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
    await site.start()


def _bound(runner: web.BaseRunner | None) -> tuple[str, int]:
    if runner is None or not runner.addresses:
        raise RuntimeError("not listening")
    address: Any = runner.addresses[0]
    return str(address[0]), int(address[1])


def _format(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
