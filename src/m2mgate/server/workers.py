"""`m2mgate run --workers N`: N gateway processes behind one proxy port and one admin port.

One Python process uses one core; a sidecar with more CPU runs N workers:
- **The port.** Every worker binds the proxy address with SO_REUSEPORT, and the kernel spreads
  new connections across them. A configured port 0 is resolved once, here, so all workers bind
  the same port.
- **Each worker is a whole gateway**: its own key caches (JWKS fetched per worker), its own
  token cache, pool and reload. Its admin listener is on a loopback port only this supervisor
  uses; the worker reports that port through an inherited pipe (worker_report.py), so
  `--workers` writes no file and runs on a read-only root filesystem.
- **The admin port** is served here. `/metrics` merges the workers' metrics, scraped in the
  background about once a second (worker_metrics.py, observability/metrics_merge.py); the
  counters of a worker that died are kept, so merged counters never go backwards. It adds
  `m2mgate_workers` and `m2mgate_worker_restarts_total`. `/readyz` is 200 only when every
  worker is ready.
  `/healthz` is 200 while every worker process runs.
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
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from m2mgate.config.compiling import Settings
from m2mgate.listen_address import ListenAddress
from m2mgate.observability.logging import build_logger
from m2mgate.server.binding import binding
from m2mgate.server.worker_metrics import WorkerMetrics
from m2mgate.server.worker_report import read_report, report_pipe

_READY_TIMEOUT_SECONDS = 60.0
_SCRAPE_TIMEOUT_SECONDS = 5.0
# How often each worker's /metrics is read. A worker that crashes loses what it counted since
# its last scrape (worker_metrics.py): this is that bound.
METRICS_INTERVAL_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 30.0


class WorkersFailed(Exception):
    """The workers could not start (each says why on stderr)."""


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    admin: str | None = None  # "127.0.0.1:port" once the worker has reported
    # The worker's report (worker_report.py): its admin address, or None if it exited first.
    reported: asyncio.Task[str | None] | None = field(default=None, repr=False)
    restarts: int = 0
    backoff: float = 1.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def resolve_listen(address: ListenAddress) -> tuple[ListenAddress, socket.socket]:
    """Bind (not listen) the proxy address with SO_REUSEPORT to learn a port-0 port. The
    socket is held until the workers have bound the same port, then closed."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, address.port))
    except OSError:
        sock.close()  # a port in use: the caller reports it, nothing is left open
        raise
    return ListenAddress(address.host, int(sock.getsockname()[1])), sock


class Supervisor:
    def __init__(self, settings: Settings, config_path: Path, workers: int, watch: bool) -> None:
        self.settings = settings
        self.config_path = config_path
        self.watch = watch
        self.log = build_logger(None, settings.log_level)
        self.workers = [Worker(i) for i in range(workers)]
        self._stopping = False
        self._listen: ListenAddress | None = None
        self._admin_runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.metrics = WorkerMetrics(workers)
        self._scrapers: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop_signal, stop)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        # Both addresses are bound before any worker starts: a port in use is then one
        # CannotListen and nothing else (no worker started, drained and stopped around it).
        with binding("listen", self.settings.listen):
            self._listen, holder = resolve_listen(self.settings.listen)
        try:
            await self._serve_admin()
        except BaseException:
            holder.close()
            raise
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT_SECONDS)
        )
        started = False
        try:
            for worker in self.workers:
                await self._spawn(worker)
            await self._wait_started()
            holder.close()  # every worker has bound the port now
            started = True
            # One scrape now, so /metrics has every worker from the first request on.
            await asyncio.gather(*(self._scrape_metrics(w) for w in self.workers))
            self._scrapers = [
                loop.create_task(self._scrape_metrics_forever(w)) for w in self.workers
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
                *command, pass_fds=(write_fd,), preexec_fn=_die_with_parent
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
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        if self._http is not None:
            await self._http.close()
        if log:
            self.log.info("stopped")

    # --- admin ----------------------------------------------------------------------------

    async def _scrape(self, worker: Worker, path: str) -> tuple[int, str] | None:
        admin = worker.admin if worker.running else None
        if admin is None or self._http is None:
            return None
        try:
            async with self._http.get(f"http://{admin}{path}") as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _scrape_metrics_forever(self, worker: Worker) -> None:
        while True:
            await asyncio.sleep(METRICS_INTERVAL_SECONDS)
            await self._scrape_metrics(worker)

    async def _scrape_metrics(self, worker: Worker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        found = await self._scrape(worker, "/metrics")
        if worker.process is not process or process.returncode is not None:
            # It exited meanwhile: it is retired (or about to be) with its earlier scrape,
            # and this one belongs to no running process.
            return
        self.metrics.scraped(worker.index, found[1] if found and found[0] == 200 else None)

    async def _metrics(self, _: web.Request) -> web.Response:
        # Served from the background scrapes, never from a scrape of its own: every counter
        # served is one the book holds, so a worker's death cannot take back what was shown.
        running = GaugeMetricFamily("m2mgate_workers", "Worker processes running now.")
        running.add_metric([], sum(1 for w in self.workers if w.running))
        restarts = CounterMetricFamily(
            "m2mgate_worker_restarts", "Workers started again after exiting unexpectedly."
        )
        restarts.add_metric([], sum(w.restarts for w in self.workers))
        response = web.Response(body=self.metrics.exposition(extra=(running, restarts)))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _readyz(self, _: web.Request) -> web.Response:
        scraped = await asyncio.gather(*(self._scrape(w, "/readyz") for w in self.workers))
        workers: list[dict[str, Any]] = []
        for worker, found in zip(self.workers, scraped, strict=True):
            detail: Any = None
            if found is not None:
                with contextlib.suppress(ValueError):
                    detail = json.loads(found[1])
            workers.append(
                {
                    "index": worker.index,
                    "pid": worker.process.pid if worker.process is not None else None,
                    "admin": worker.admin,
                    "ready": found is not None and found[0] == 200,
                    "restarts": worker.restarts,
                    "status": detail.get("status") if isinstance(detail, dict) else None,
                }
            )
        ready = all(w["ready"] for w in workers)
        state = "draining" if self._stopping else ("ready" if ready else "not_ready")
        return web.json_response(
            {"status": state, "workers": workers}, status=200 if state == "ready" else 503
        )

    async def _healthz(self, _: web.Request) -> web.Response:
        alive = all(w.running for w in self.workers)
        return web.json_response(
            {"status": "ok" if alive else "degraded"}, status=200 if alive else 503
        )

    async def _serve_admin(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        address = self.settings.admin_listen
        try:
            with binding("admin_listen", address):
                await web.TCPSite(runner, address.host, address.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._admin_runner = runner


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, even by SIGKILL, so no
    orphaned worker keeps serving (or holding the port) on its own. Linux only."""
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
