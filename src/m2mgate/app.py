"""Composition root: compiled settings -> a running gateway (proxy listener, admin listener,
key caches with their background refreshers, the upstream pool), hot reload, and shutdown.

Reload (SIGHUP, or `--watch`): the file is re-read, validated and compiled; an invalid file is
refused with every problem logged and the old config keeps serving. A valid one is swapped in
atomically as a new `Runtime`; requests already running finish under the old one. Key caches of
issuers whose key source did not change are kept (no refetch storm), and so is the upstream pool
when the upstream did not change. Listen addresses, the drain grace and the log level take effect
on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from m2mgate.auth.token_cache import TokenCacheStats, VerifiedTokenCache
from m2mgate.config.addresses import ListenAddress
from m2mgate.config.compiling import IssuerSettings, Settings, load_settings
from m2mgate.config.gatekeeper import build_gatekeeper
from m2mgate.decision import Gatekeeper
from m2mgate.errors import ConfigError
from m2mgate.jose import VerificationKey
from m2mgate.keys.cache import KeyCache, KeyCacheStatus
from m2mgate.keys.fetcher import new_session
from m2mgate.keys.source import FetchedKeys, KeySource
from m2mgate.observability.logging import AccessLog, build_logger
from m2mgate.observability.metrics import NO_LABEL, GatewayMetrics
from m2mgate.proxy.forwarder import UpstreamForwarder
from m2mgate.server.admin import admin_app
from m2mgate.server.binding import binding
from m2mgate.server.handler import ProxyHandler
from m2mgate.server.http1_server import HttpServer, ServerEvents
from m2mgate.server.limits import ConnectionLimits
from m2mgate.server.runtime import Runtime

_WATCH_INTERVAL_SECONDS = 1.0
_ACCESS_LOG_BATCH = 64
_ACCESS_LOG_FLUSH_SECONDS = 0.1  # the most a request line waits before it is written
_RESTART_ONLY = (
    "listen", "admin_listen", "listener", "shutdown_grace_seconds", "shutdown_delay_seconds",
    "log_level",
)  # fmt: skip


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        log_stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        worker_listen: ListenAddress | None = None,
        worker_index: int | None = None,
    ) -> None:
        self.settings = settings  # as started: listeners and grace come from here
        # As one of `run --workers N`: share this (resolved) proxy address with the other
        # workers (SO_REUSEPORT), and serve admin on a loopback port only the supervisor reads.
        self._worker_listen = worker_listen
        self.config_path = config_path
        self.log = build_logger(log_stream, settings.log_level)
        # Batched: one write per 64 request lines or per flush interval, not a syscall each.
        self.access_log = AccessLog(log_stream, settings.log_level, batch_lines=_ACCESS_LOG_BATCH)
        if worker_index is not None:
            # N workers share one stdout: every line says which one wrote it.
            self.log = self.log.bind(worker=worker_index)
            self.access_log.tag(worker=worker_index)
        self.metrics = GatewayMetrics(registry)
        self._clock = clock
        self._wall_clock = wall_clock
        self._jwks_session: aiohttp.ClientSession | None = None
        self.key_caches: dict[str, KeyCache] = {}
        self._issuer_settings: dict[str, IssuerSettings] = {}
        self._refreshers: dict[str, asyncio.Task[None]] = {}
        self.token_cache_stats = TokenCacheStats()
        self._runtime = Runtime(settings, self._gatekeeper(settings), self._forwarder(settings))
        self._reconcile_key_caches(settings)
        self.metrics.watch_key_caches(self.key_statuses)
        self.metrics.watch_token_cache(
            self.token_cache_stats, self._token_cache_size, self._token_cache_bytes
        )
        self._ready = asyncio.Event()
        self._draining = False
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._proxy_server: HttpServer | None = None
        self._admin_runner: web.AppRunner | None = None

    # --- wiring ---------------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def gatekeeper(self) -> Gatekeeper:
        return self._runtime.gatekeeper

    def _forwarder(self, settings: Settings) -> UpstreamForwarder:
        return UpstreamForwarder(settings.upstream)

    def _session(self) -> aiohttp.ClientSession:
        if self._jwks_session is None:
            raise RuntimeError("gateway not started")
        return self._jwks_session

    def _gatekeeper(self, settings: Settings) -> Gatekeeper:
        """A fresh token cache with every config: entries built under an old issuer policy
        (audiences, allowlist, claim layout) must never answer for the new one."""
        cache = VerifiedTokenCache(
            settings.token_cache_entries,
            self._key_is_current,
            self.token_cache_stats,
            settings.token_cache_max_bytes,
        )
        return build_gatekeeper(settings, self._keys_for, self._wall_clock, cache)

    def _key_is_current(self, issuer_name: str, key: VerificationKey) -> bool:
        cache = self.key_caches.get(issuer_name)
        return cache is not None and cache.holds(key)

    def _token_cache_size(self) -> int:
        cache = self._runtime.gatekeeper.verifier.cache
        return len(cache) if cache is not None else 0

    def _token_cache_bytes(self) -> int:
        cache = self._runtime.gatekeeper.verifier.cache
        return cache.size_bytes if cache is not None else 0

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

    def _reconcile_key_caches(self, settings: Settings) -> None:
        """Keep the cache of every issuer whose key source and cache policy are unchanged;
        create caches for new or changed issuers, drop those of removed ones."""
        wanted = {issuer.policy.name: issuer for issuer in settings.issuers}
        for name in list(self.key_caches):
            old, new = self._issuer_settings[name], wanted.get(name)
            if new is None or (new.source, new.cache) != (old.source, old.cache):
                self._drop_cache(name)
        for name, issuer in wanted.items():
            self._issuer_settings[name] = issuer
            if name not in self.key_caches:
                source = KeySource(issuer.source, self._session, self._clock)
                self.key_caches[name] = KeyCache(
                    name, source.fetch, issuer.cache, observer=self, clock=self._clock
                )
                if self._jwks_session is not None:  # running: start its refresher now
                    self._start_refresher(name)

    def _drop_cache(self, name: str) -> None:
        self.key_caches.pop(name, None)
        self._issuer_settings.pop(name, None)
        task = self._refreshers.pop(name, None)
        if task is not None:
            task.cancel()

    def _start_refresher(self, name: str) -> None:
        self._refreshers[name] = asyncio.get_running_loop().create_task(self.key_caches[name].run())

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind both listeners, then start the background work (key refreshers, the access
        log flusher). A port in use fails before anything runs: #8 found a failed start that
        logged `draining` and `stopped`, and a key fetch dying on the closed session, before
        the real cause. A start that fails releases what it opened, silently, and raises
        (CannotListen for a listener)."""
        try:
            await self._bind()
        except BaseException:
            await self._release()
            raise
        for name in self.key_caches:
            self._start_refresher(name)
        self._spawn(self._flush_access_log())
        self.log.info(
            "started",
            listen=_format(self.proxy_address),
            admin_listen=_format(self.admin_address),
            upstream=self.settings.upstream.url,
            issuers=list(self.key_caches),
            routes=[route.name for route in self.settings.routes.routes],
            config=str(self.config_path) if self.config_path else None,
        )
        self._log_config_warnings(self.settings)

    async def _bind(self) -> None:
        # Neither the fetch session nor the pool does I/O until asked: opening them first
        # means a request accepted the moment the proxy port binds finds them ready.
        self._jwks_session = new_session()
        await self._runtime.forwarder.start()
        self._admin_runner = web.AppRunner(
            admin_app(self.metrics.registry, self.key_statuses, lambda: self._draining),
            access_log=None,
        )
        await self._admin_runner.setup()
        admin = ListenAddress("127.0.0.1", 0) if self._worker_listen else self.settings.admin_listen
        with binding("admin_listen", admin):
            await _serve(self._admin_runner, admin)
        server = self._proxy_server = self._new_proxy_server()
        self.metrics.watch_in_flight(lambda: server.requests_in_flight)
        listen = self._worker_listen or self.settings.listen
        with binding("listen", listen):
            await server.listen(
                listen.host, listen.port, reuse_port=self._worker_listen is not None
            )

    def _new_proxy_server(self) -> HttpServer:
        handler = ProxyHandler(lambda: self._runtime, self.metrics, self.log, self.access_log)
        limits = self.settings.listener
        return HttpServer(
            handler,
            ConnectionLimits(
                head_timeout_seconds=limits.head_timeout_seconds,
                keepalive_timeout_seconds=limits.keepalive_timeout_seconds,
                send_timeout_seconds=limits.send_timeout_seconds,
                max_connections=limits.max_connections,
                max_url_bytes=limits.max_url_bytes,
                max_header_bytes=limits.max_header_bytes,
                max_headers=limits.max_headers,
            ),
            ServerEvents(
                http_error=self._http_error,
                slow_client=lambda: self.metrics.client_errors.labels("slow_client").inc(),
                connection_refused=lambda: self.metrics.client_errors.labels("over_capacity").inc(),
            ),
        )

    def _http_error(self, status: int, error: str, request_id: str) -> None:
        """A request the HTTP parser refused (the handler never ran): count and log it once.
        The parser's message quotes request bytes, so only the error's class is logged."""
        self.metrics.requests.labels(NO_LABEL, "OTHER", str(status)).inc()
        self.metrics.client_errors.labels("bad_http").inc()
        self.log.info("http_error", request_id=request_id, status=status, error=error)

    @property
    def open_connections(self) -> int:
        return self._proxy_server.open_connections if self._proxy_server is not None else 0

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until every issuer has had a usable key set (the first time)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True

    async def shut_down(self, skip_delay: asyncio.Event) -> None:
        """SIGTERM: /readyz answers 503 at once, but the gateway goes on accepting and serving
        for `shutdown_delay_seconds`, then drains (stop). Why: load balancers take a while
        to see a pod leave (Kubernetes removes the endpoint, then kube-proxy and ingresses
        catch up); a listener closed at once refuses the clients still routed here during a
        rolling update. `skip_delay` set (a second signal) ends the delay early."""
        self._draining = True  # /readyz answers 503 from now on
        delay = self.settings.shutdown_delay_seconds
        if delay > 0 and not skip_delay.is_set():
            self.log.info("shutdown_delay", delay_seconds=delay)
            try:
                await asyncio.wait_for(skip_delay.wait(), delay)
            except TimeoutError:
                pass
            else:
                self.log.info("shutdown_delay_skipped")
        await self.stop()

    async def stop(self) -> None:
        """Stop accepting, drain in-flight requests (bounded by the grace period), close."""
        self._draining = True  # /readyz answers 503 from now on
        self.log.info("draining", grace_seconds=self.settings.shutdown_grace_seconds)
        if self._proxy_server is not None:
            await self._proxy_server.shutdown(self.settings.shutdown_grace_seconds)
        await self._release()
        self.access_log.flush()  # every request line is written before the process exits
        self.log.info("stopped")

    async def _release(self) -> None:
        """Close whatever is open (tasks, listeners, pool, fetch session); logs nothing.
        Background tasks go first, so none is left to fail on a closed session with an
        exception nobody retrieves."""
        tasks = [*self._refreshers.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshers.clear()
        for cache in self.key_caches.values():
            await cache.close()
        if self._proxy_server is not None and self._proxy_server.is_listening:
            await self._proxy_server.shutdown(0)  # a start cut short: nothing was served
        await self._runtime.forwarder.close()
        if self._jwks_session is not None:
            await self._jwks_session.close()
            self._jwks_session = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None

    # --- reload ---------------------------------------------------------------------------------

    async def reload(self, trigger: str = "signal") -> bool:
        """Re-read the config file and swap it in; False (old config kept) when it is invalid."""
        if self.config_path is None:
            raise RuntimeError("no config file to reload")
        async with self._reload_lock:
            try:
                settings = load_settings(self.config_path)
            except ConfigError as error:
                self.metrics.config_reloads.labels("invalid").inc()
                self.metrics.config_last_reload_successful.set(0)
                self.log.error(
                    "config_reload_failed",
                    trigger=trigger,
                    config=str(self.config_path),
                    problems=[f"{where}: {message}" for where, message in error.problems],
                )
                return False
            await self._apply(settings, trigger)
            return True

    async def _apply(self, settings: Settings, trigger: str) -> None:
        old = self._runtime
        if settings.upstream == old.settings.upstream:
            forwarder = old.forwarder
        else:
            forwarder = self._forwarder(settings)
            await forwarder.start()
        self._reconcile_key_caches(settings)
        self._runtime = Runtime(settings, self._gatekeeper(settings), forwarder)
        old.retire()
        if forwarder is not old.forwarder:
            self._spawn(self._close_when_drained(old))
        self.metrics.config_reloads.labels("ok").inc()
        self.metrics.config_last_reload_successful.set(1)
        self.metrics.config_last_reload_timestamp.set(self._wall_clock())
        restart_only = [
            name
            for name in _RESTART_ONLY
            if getattr(settings, name) != getattr(self.settings, name)
        ]
        self.log.info(
            "config_reloaded",
            trigger=trigger,
            issuers=list(self.key_caches),
            routes=[route.name for route in settings.routes.routes],
            upstream_pool="new" if forwarder is not old.forwarder else "kept",
            needs_restart=restart_only or None,
        )
        self._log_config_warnings(settings)

    def _log_config_warnings(self, settings: Settings) -> None:
        """Each warning of the config now in use, once (config/warnings.py)."""
        for where, message in settings.warnings:
            self.log.warning("config_warning", yaml_path=where, warning=message)

    async def _flush_access_log(self) -> None:
        while True:
            await asyncio.sleep(_ACCESS_LOG_FLUSH_SECONDS)
            self.access_log.flush()

    async def _close_when_drained(self, runtime: Runtime) -> None:
        # Requests still on the old pool past the grace period are cut, as on stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.drained.wait(), self.settings.shutdown_grace_seconds)
        await runtime.forwarder.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def watch_config(self, interval_seconds: float = _WATCH_INTERVAL_SECONDS) -> None:
        """Reload whenever the file's content changes (polling: works through the symlink
        swaps of Kubernetes ConfigMap volumes, needs no inotify)."""
        if self.config_path is None:
            raise RuntimeError("no config file to watch")
        seen = _digest(self.config_path)
        while True:
            await asyncio.sleep(interval_seconds)
            current = _digest(self.config_path)
            if current != seen:
                seen = current
                await self.reload(trigger="watch")

    # --- addresses ------------------------------------------------------------------------------

    @property
    def proxy_address(self) -> tuple[str, int]:
        address = self._proxy_server.address if self._proxy_server is not None else None
        if address is None:
            raise RuntimeError("not listening")
        return address

    @property
    def is_accepting(self) -> bool:
        return self._proxy_server is not None and self._proxy_server.is_listening

    @property
    def admin_address(self) -> tuple[str, int]:
        return _bound(self._admin_runner)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # mid-swap or removed: the next change (or a reload) reports it


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
