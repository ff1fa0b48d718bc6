"""`m2mgate run --workers N`: N gateway processes behind one proxy port and one admin port.

One Python process uses one core; a sidecar with more CPU runs N workers:
- **The port.** Every worker binds the proxy address with SO_REUSEPORT, and the kernel spreads
  new connections across them. A configured port 0 is resolved once, here, so all workers bind
  the same port (worker_processes.py).
- **Each worker is a whole gateway**: its own key caches (JWKS fetched per worker), its own
  token cache, pool and reload. Its admin listener is on a loopback port only this supervisor
  uses; the worker reports that port through an inherited pipe (server/worker_report.py), so
  `--workers` writes no file and runs on a read-only root filesystem.
- **The admin port** is served here (supervisor_admin.py): merged metrics, `/readyz` 200 only
  when every worker is ready, `/healthz` 200 while every worker process runs.
- **Signals.** SIGHUP is passed to every worker (each reloads; `--watch` watches in each).
  SIGTERM/SIGINT: the admin port reports draining at once, every worker waits its
  `shutdown_delay_seconds` still serving, then drains (its own grace period), and the
  supervisor exits 0. A second SIGTERM/SIGINT is passed on: the workers skip the rest of
  the delay.
- **A worker that dies** is logged and started again (backoff 1 s, doubling up to 30 s).

The supervisor does no request work. Its only network I/O is the admin port and loopback
scrapes of its own workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from m2mgate.app.stop_signals import on_stop_signals
from m2mgate.app.supervisor_admin import SupervisorAdmin
from m2mgate.app.worker_processes import Worker, WorkersFailed, die_with_parent, resolve_listen
from m2mgate.config.compiling import Settings
from m2mgate.listen_address import ListenAddress
from m2mgate.observability.logging import build_logger
from m2mgate.server.binding import binding
from m2mgate.server.worker_metrics import WorkerMetrics
from m2mgate.server.worker_report import read_report, report_pipe

_READY_TIMEOUT_SECONDS = 60.0
_MAX_BACKOFF_SECONDS = 30.0

__all__ = ["Supervisor", "WorkersFailed"]


class Supervisor:
    def __init__(self, settings: Settings, config_path: Path, workers: int, watch: bool) -> None:
        self.settings = settings
        self.config_path = config_path
        self.watch = watch
        self.log = build_logger(None, settings.log_level)
        self.workers = [Worker(i) for i in range(workers)]
        self._stopping = False
        self._listen: ListenAddress | None = None
        self.metrics = WorkerMetrics(workers)
        self.admin = SupervisorAdmin(self.workers, self.metrics, lambda: self._stopping)
        self._scrapers: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        on_stop_signals(lambda: self._stop_signal(stop))
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        # Both addresses are bound before any worker starts: a port in use is then one
        # CannotListen and nothing else (no worker started, drained and stopped around it).
        with binding("listen", self.settings.listen):
            self._listen, holder = resolve_listen(self.settings.listen)
        try:
            await self.admin.serve(self.settings.admin_listen)
        except BaseException:
            holder.close()
            raise
        self.admin.open_scrapes()
        started = False
        try:
            for worker in self.workers:
                await self._spawn(worker)
            await self._wait_started()
            holder.close()  # every worker has bound the port now
            started = True
            # One scrape now, so /metrics has every worker from the first request on.
            await asyncio.gather(*(self.admin.scrape_metrics(w) for w in self.workers))
            self._scrapers = [
                loop.create_task(self.admin.scrape_metrics_forever(w)) for w in self.workers
            ]
            self.log.info(
                "workers_started",
                workers=len(self.workers),
                listen=str(self._listen),
                admin_listen=str(self.settings.admin_listen),
                pids=[w.process.pid for w in self.workers if w.process is not None],
            )
            await stop.wait()
        finally:
            holder.close()
            await self._stop(log=started)  # a start that failed says so once, in the CLI
        return 0

    # --- workers --------------------------------------------------------------------------

    async def _spawn(self, worker: Worker) -> None:
        worker.admin = None
        if self._listen is None:
            raise RuntimeError("the listen address is resolved before any worker starts")
        read_fd, write_fd = report_pipe()
        command = [
            sys.executable, "-m", "m2mgate", "run", "--config", str(self.config_path),
            "--worker-index", str(worker.index), "--worker-listen", str(self._listen),
            "--worker-report-fd", str(write_fd),
        ]  # fmt: skip
        if self.watch:
            command.append("--watch")
        try:
            # stdout/stderr are inherited: every worker's JSON log lines go where ours go.
            worker.process = await asyncio.create_subprocess_exec(
                *command, pass_fds=(write_fd,), preexec_fn=die_with_parent
            )
        except OSError as error:
            os.close(read_fd)
            raise WorkersFailed(f"cannot start worker {worker.index}: {error}") from error
        finally:
            os.close(write_fd)  # the worker holds its own copy: its exit closes the pipe
        loop = asyncio.get_running_loop()
        worker.reported = loop.create_task(self._receive_report(worker, worker.process, read_fd))
        worker.watcher = loop.create_task(self._watch(worker))

    async def _receive_report(
        self, worker: Worker, process: asyncio.subprocess.Process, read_fd: int
    ) -> str | None:
        report = await read_report(read_fd)
        admin = report.get("admin") if report is not None else None
        if not isinstance(admin, str) or worker.process is not process:
            return None
        worker.admin = admin
        return admin

    async def _watch(self, worker: Worker) -> None:
        """Start the worker again when it exits (unless the supervisor is stopping)."""
        process = worker.process
        if process is None:
            return
        code = await process.wait()
        if self._stopping:
            return
        # Before anything awaits: the dead worker's counters move to the retained baseline in
        # the same step that drops its last scrape, so no /metrics sees both, or neither.
        self.metrics.retire(worker.index)
        self.log.warning(
            "worker_exited",
            worker=worker.index,
            pid=process.pid,
            code=code,
            restart_in=worker.backoff,
        )
        while not self._stopping:
            await asyncio.sleep(worker.backoff)
            worker.backoff = min(worker.backoff * 2, _MAX_BACKOFF_SECONDS)
            if self._stopping:
                return
            try:
                await self._spawn(worker)  # the new process gets a watcher of its own
            except WorkersFailed as error:
                self.log.error(
                    "worker_start_failed",
                    worker=worker.index,
                    detail=str(error),
                    restart_in=worker.backoff,
                )
                continue
            worker.restarts += 1
            return

    async def _wait_started(self) -> None:
        """Every worker's report, or the reason there is none."""
        try:
            async with asyncio.timeout(_READY_TIMEOUT_SECONDS):
                for worker in self.workers:
                    if worker.reported is not None and await worker.reported is not None:
                        continue
                    code = await worker.process.wait() if worker.process is not None else None
                    raise WorkersFailed(f"worker {worker.index} exited with status {code} at start")
        except TimeoutError:
            raise WorkersFailed(
                f"workers did not start within {_READY_TIMEOUT_SECONDS:g}s"
            ) from None

    def _stop_signal(self, stop: asyncio.Event) -> None:
        if self._stopping:
            # A second SIGTERM/SIGINT: pass it on, so each worker skips the rest of its
            # shutdown delay and drains now.
            self._forward(signal.SIGTERM)
        else:
            self._stopping = True  # /readyz answers 503 from now on
            stop.set()

    def _forward(self, signum: int) -> None:
        for worker in self.workers:
            if worker.running and worker.process is not None:
                worker.process.send_signal(signum)

    async def _stop(self, *, log: bool = True) -> None:
        self._stopping = True
        self._forward(signal.SIGTERM)  # each worker: not ready, its delay, then its drain
        settings = self.settings
        grace = settings.shutdown_delay_seconds + settings.shutdown_grace_seconds + 5
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                await asyncio.wait_for(worker.process.wait(), grace)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
        tasks = [t for w in self.workers for t in (w.watcher, w.reported) if t is not None]
        tasks.extend(self._scrapers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.admin.close()
        if log:
            self.log.info("stopped")
