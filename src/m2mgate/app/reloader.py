"""Hot reload: SIGHUP (`reload`) or `--watch` (`watch`).

The file is re-read, validated and compiled; an invalid file is refused with every problem
logged and the old config keeps serving. A valid one is swapped in atomically as a new
`Runtime`; requests already running finish under the old one. Key caches of issuers whose key
source did not change are kept (no refetch storm), and so is the upstream pool when the
upstream did not change. Listen addresses, the drain grace and the log level take effect on
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from m2mgate.app.runtimes import Runtime, Runtimes
from m2mgate.config.compiling import Settings, load_settings
from m2mgate.errors import ConfigError
from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.reporters import log_config_warnings

WATCH_INTERVAL_SECONDS = 1.0
RESTART_ONLY = (
    "listen", "admin_listen", "listener", "shutdown_grace_seconds", "shutdown_delay_seconds",
    "log_level",
)  # fmt: skip


class ConfigReloader:
    def __init__(
        self,
        config_path: Path | None,
        started: Settings,
        runtimes: Runtimes,
        metrics: GatewayMetrics,
        log: Any,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path = config_path
        self._started = started  # as started: listeners and grace come from here
        self._runtimes = runtimes
        self._metrics = metrics
        self._log = log
        self._spawn = spawn
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()

    async def reload(self, trigger: str = "signal") -> bool:
        """Re-read the config file and swap it in; False (old config kept) when it is invalid."""
        if self.config_path is None:
            raise RuntimeError("no config file to reload")
        async with self._lock:
            try:
                settings = load_settings(self.config_path)
            except ConfigError as error:
                self._metrics.config_reloads.labels("invalid").inc()
                self._metrics.config_last_reload_successful.set(0)
                self._log.error(
                    "config_reload_failed",
                    trigger=trigger,
                    config=str(self.config_path),
                    problems=[f"{where}: {message}" for where, message in error.problems],
                )
                return False
            await self._apply(settings, trigger)
            return True

    async def _apply(self, settings: Settings, trigger: str) -> None:
        old = await self._runtimes.swap(settings)
        new = self._runtimes.current
        if new.forwarder is not old.forwarder:
            self._spawn(self._close_when_drained(old))
        self._metrics.config_reloads.labels("ok").inc()
        self._metrics.config_last_reload_successful.set(1)
        self._metrics.config_last_reload_timestamp.set(self._wall_clock())
        restart_only = [
            name for name in RESTART_ONLY if getattr(settings, name) != getattr(self._started, name)
        ]
        self._log.info(
            "config_reloaded",
            trigger=trigger,
            issuers=list(new.keys),
            routes=[route.name for route in settings.routes.routes],
            upstream_pool="new" if new.forwarder is not old.forwarder else "kept",
            needs_restart=restart_only or None,
        )
        log_config_warnings(self._log, settings.warnings)

    async def _close_when_drained(self, runtime: Runtime) -> None:
        # Every retired runtime on this pool, not only the last: an older one may share it.
        sharing = self._runtimes.sharing(runtime.forwarder)
        # Requests still on the old pool past the grace period are cut, as on stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(shared.drained.wait() for shared in sharing)),
                self._started.shutdown_grace_seconds,
            )
        await runtime.forwarder.close()

    async def watch(self, interval_seconds: float = WATCH_INTERVAL_SECONDS) -> None:
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


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # mid-swap or removed: the next change (or a reload) reports it
