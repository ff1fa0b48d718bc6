"""Composition root: compiled settings -> a running gateway (proxy listener, admin listener,
key caches with their background refreshers, the upstream pool), hot reload, and shutdown.

The parts, each in its own module: `KeyRegistry` (keys/registry.py) owns the key caches,
`Runtimes` (runtimes.py) the config version requests pin, `ConfigReloader` (reloader.py) swaps
in a new one, `Listeners` (listeners.py) binds the ports, and the reporters
(observability/reporters.py) turn what the parts report into metrics and log events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from m2mgate.app.listeners import Listeners, format_address, proxy_server
from m2mgate.app.reloader import WATCH_INTERVAL_SECONDS, ConfigReloader
from m2mgate.app.runtimes import Runtime, Runtimes
from m2mgate.auth.token_cache import TokenCacheStats
from m2mgate.config.compiling import Settings
from m2mgate.decision import Gatekeeper
from m2mgate.keys.cache import KeyCache, KeyCacheStatus
from m2mgate.keys.registry import KeyRegistry
from m2mgate.listen_address import ListenAddress
from m2mgate.observability.logging import AccessLog, build_logger
from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.reporters import (
    KeyFetchReporter,
    ListenerEventReporter,
    flush_access_log,
    log_config_warnings,
)
from m2mgate.server.admin import admin_app
from m2mgate.server.handler import ProxyHandler
from m2mgate.server.http1_server import ServerEvents

_ACCESS_LOG_BATCH = 64
_ACCESS_LOG_FLUSH_SECONDS = 0.1  # the most a request line waits before it is written


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
        self.log = build_logger(log_stream, settings.log_level)
        # Batched: one write per 64 request lines or per flush interval, not a syscall each.
        self.access_log = AccessLog(log_stream, settings.log_level, batch_lines=_ACCESS_LOG_BATCH)
        if worker_index is not None:
            # N workers share one stdout: every line says which one wrote it.
            self.log = self.log.bind(worker=worker_index)
            self.access_log.tag(worker=worker_index)
        self.metrics = GatewayMetrics(registry)
        self.key_registry = KeyRegistry(KeyFetchReporter(self.metrics, self.log), clock)
        self.runtimes = Runtimes(settings, self.key_registry, wall_clock)
        self.metrics.watch_key_caches(self.key_registry.statuses)
        self.metrics.watch_token_cache(
            self.runtimes.token_cache_stats,
            self.runtimes.token_cache_size,
            self.runtimes.token_cache_bytes,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.reloader = ConfigReloader(
            config_path, settings, self.runtimes, self.metrics, self.log, self._spawn, wall_clock
        )
        self._draining = False
        self._listeners = Listeners()

    # --- what tests and the CLI look at ---------------------------------------------------------

    @property
    def config_path(self) -> Path | None:
        return self.reloader.config_path

    @property
    def runtime(self) -> Runtime:
        return self.runtimes.current

    @property
    def gatekeeper(self) -> Gatekeeper:
        return self.runtimes.current.gatekeeper

    @property
    def key_caches(self) -> Mapping[str, KeyCache]:
        return self.key_registry.caches

    @property
    def token_cache_stats(self) -> TokenCacheStats:
        return self.runtimes.token_cache_stats

    def key_statuses(self) -> list[KeyCacheStatus]:
        return self.key_registry.statuses()

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
        self.key_registry.start_refreshing()
        self._spawn(flush_access_log(self.access_log, _ACCESS_LOG_FLUSH_SECONDS))
        self.log.info(
            "started",
            listen=format_address(self.proxy_address),
            admin_listen=format_address(self.admin_address),
            upstream=self.settings.upstream.url,
            issuers=list(self.key_caches),
            routes=[route.name for route in self.settings.routes.routes],
            config=str(self.config_path) if self.config_path else None,
        )
        log_config_warnings(self.log, self.settings.warnings)

    async def _bind(self) -> None:
        # Neither the fetch session nor the pool does I/O until asked: opening them first
        # means a request accepted the moment the proxy port binds finds them ready.
        self.key_registry.open()
        await self.runtime.forwarder.start()
        admin = ListenAddress("127.0.0.1", 0) if self._worker_listen else self.settings.admin_listen
        await self._listeners.bind_admin(
            admin_app(self.metrics.registry, self.key_statuses, lambda: self._draining), admin
        )
        events = ListenerEventReporter(self.metrics, self.log)
        server = proxy_server(
            ProxyHandler(lambda: self.runtimes.current, self.metrics, self.log, self.access_log),
            self.settings.listener,
            ServerEvents(
                http_error=events.http_error,
                slow_client=events.slow_client,
                connection_refused=events.connection_refused,
            ),
        )
        self.metrics.watch_in_flight(lambda: server.requests_in_flight)
        listen = self._worker_listen or self.settings.listen
        await self._listeners.bind_proxy(server, listen, reuse_port=self._worker_listen is not None)

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until every issuer has had a usable key set (the first time)."""
        return await self.key_registry.wait_ready(timeout_seconds)

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
        if self._listeners.proxy is not None:
            await self._listeners.proxy.shutdown(self.settings.shutdown_grace_seconds)
        await self._release()
        self.access_log.flush()  # every request line is written before the process exits
        self.log.info("stopped")

    async def _release(self) -> None:
        """Close whatever is open (tasks, key caches and their session, listeners, pool); logs
        nothing. Background tasks go first, so none is left to fail on a closed session with
        an exception nobody retrieves."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.key_registry.close()
        await self._listeners.close()
        await self.runtime.forwarder.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- reload ---------------------------------------------------------------------------------

    async def reload(self, trigger: str = "signal") -> bool:
        """Re-read the config file and swap it in; False (old config kept) when it is invalid."""
        return await self.reloader.reload(trigger)

    async def watch_config(self, interval_seconds: float = WATCH_INTERVAL_SECONDS) -> None:
        await self.reloader.watch(interval_seconds)

    # --- addresses ------------------------------------------------------------------------------

    @property
    def proxy_address(self) -> tuple[str, int]:
        return self._listeners.proxy_address

    @property
    def admin_address(self) -> tuple[str, int]:
        return self._listeners.admin_address

    @property
    def is_accepting(self) -> bool:
        return self._listeners.is_accepting

    @property
    def open_connections(self) -> int:
        return self._listeners.open_connections
