"""`m2mgate run`: the process lifecycle of one gateway (or one worker of `--workers N`).

Start (a failed start has released what it opened, and logged nothing), freeze the start-up
objects out of the GC's way, report to the supervisor when a worker, then serve until
SIGTERM/SIGINT: the first drains (after `shutdown_delay_seconds`), a second skips the rest
of the delay. SIGHUP reloads the config; `--watch` also reloads when the file changes.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

import uvloop

from m2mgate.app.gateway import Gateway
from m2mgate.app.stop_signals import StopRequest
from m2mgate.app.supervisor import Supervisor
from m2mgate.config.compiling import Settings
from m2mgate.gc_tuning import freeze_startup_objects
from m2mgate.listen_address import ListenAddress
from m2mgate.server.worker_report import send_report


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """How the supervisor of `--workers N` started this process."""

    index: int
    listen: ListenAddress  # the proxy address every worker shares (SO_REUSEPORT)
    report_fd: int  # where to report the admin address (server/worker_report.py)


def run(
    settings: Settings, path: Path, *, watch: bool, workers: int, role: WorkerRole | None
) -> int:
    """Serve until stopped; the exit status. Raises CannotListen, WorkersFailed or OSError
    when it cannot start."""
    if workers > 1 and role is None:
        return asyncio.run(Supervisor(settings, path, workers, watch).run())
    # The gateway (one process, or one worker) runs on uvloop, a C event loop: 6-8% more
    # requests per second and 7% less CPU per request than asyncio's, in alternating runs
    # (bench/RESULTS.md). The test suite's in-process gateways use asyncio's loop; the
    # subprocess tests (run, --workers, demo) run this one.
    uvloop.run(serve(settings, path, watch, role))
    return 0


async def serve(
    settings: Settings, path: Path, watch: bool, role: WorkerRole | None = None
) -> None:
    gateway = Gateway(
        settings,
        config_path=path,
        worker_listen=role.listen if role is not None else None,
        worker_index=role.index if role is not None else None,
    )
    loop = asyncio.get_running_loop()
    stop = StopRequest().install()
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(gateway.reload("signal"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await gateway.start()  # a failed start has released what it opened, and logged nothing
    freeze_startup_objects()
    if role is not None:
        host, port = gateway.admin_address
        send_report(role.report_fd, role.index, f"{host}:{port}")
    watcher = loop.create_task(gateway.watch_config()) if watch else None
    try:
        await stop.requested.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        # A second SIGTERM/SIGINT (`repeated`) skips the shutdown delay.
        await gateway.shut_down(skip_delay=stop.repeated)
