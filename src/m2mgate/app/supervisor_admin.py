"""The admin port of `run --workers N`, served by the supervisor.

`/metrics` merges the workers' metrics, scraped in the background about once a second
(server/worker_metrics.py, observability/metrics_merge.py), plus `m2mgate_workers` and
`m2mgate_worker_restarts_total`. `/readyz` is 200 only when every worker is ready (and the
supervisor is not stopping); `/healthz` is 200 while every worker process runs. Its only
network I/O is this port and loopback scrapes of the workers' own admin ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from m2mgate.app.worker_processes import Worker
from m2mgate.listen_address import ListenAddress
from m2mgate.server.binding import binding
from m2mgate.server.worker_metrics import WorkerMetrics

_SCRAPE_TIMEOUT_SECONDS = 5.0
# How often each worker's /metrics is read. A worker that crashes loses what it counted since
# its last scrape (worker_metrics.py): this is that bound.
METRICS_INTERVAL_SECONDS = 1.0


class SupervisorAdmin:
    def __init__(
        self,
        workers: Sequence[Worker],
        metrics: WorkerMetrics,
        is_stopping: Callable[[], bool],
    ) -> None:
        self.workers = workers
        self.metrics = metrics
        self._is_stopping = is_stopping
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def open_scrapes(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT_SECONDS)
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _scrape(self, worker: Worker, path: str) -> tuple[int, str] | None:
        admin = worker.admin if worker.running else None
        if admin is None or self._http is None:
            return None
        try:
            async with self._http.get(f"http://{admin}{path}") as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def scrape_metrics_forever(self, worker: Worker) -> None:
        while True:
            await asyncio.sleep(METRICS_INTERVAL_SECONDS)
            await self.scrape_metrics(worker)

    async def scrape_metrics(self, worker: Worker) -> None:
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
        state = "draining" if self._is_stopping() else ("ready" if ready else "not_ready")
        return web.json_response(
            {"status": state, "workers": workers}, status=200 if state == "ready" else 503
        )

    async def _healthz(self, _: web.Request) -> web.Response:
        alive = all(w.running for w in self.workers)
        return web.json_response(
            {"status": "ok" if alive else "degraded"}, status=200 if alive else 503
        )

    async def serve(self, address: ListenAddress) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            with binding("admin_listen", address):
                await web.TCPSite(runner, address.host, address.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
