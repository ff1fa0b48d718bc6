"""`m2mgate run --workers 2`: the real CLI, two worker processes on one port, one admin port.

The JWKS server and the echo upstream run in this test's event loop; the gateway is the real
`python -m m2mgate run` process tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import base_config
from tests.integration.test_key_lifecycle import metric
from tests.integration.test_process import free_port

pytestmark = pytest.mark.timeout(120)


class Tree:
    def __init__(self, process: asyncio.subprocess.Process, port: int, admin: int) -> None:
        self.process, self.port, self.admin = process, port, admin

    async def readyz(self, http: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
        async with http.get(f"http://127.0.0.1:{self.admin}/readyz") as response:
            return response.status, await response.json()

    async def metrics(self, http: aiohttp.ClientSession, admin: str | None = None) -> str:
        async with http.get(f"http://{admin or f'127.0.0.1:{self.admin}'}/metrics") as response:
            assert response.status == 200
            return await response.text()

    async def wait_ready(self, http: aiohttp.ClientSession, pids: set[int] | None = None) -> dict:
        for _ in range(400):
            try:
                status, body = await self.readyz(http)
                current = {worker["pid"] for worker in body["workers"]}
                if status == 200 and (pids is None or current != pids):
                    return body
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("workers never became ready")


@pytest.fixture
async def tree(tmp_path, jwks, upstream) -> AsyncIterator[Tree]:
    config: dict[str, Any] = base_config(jwks, upstream)
    port, admin = free_port(), free_port()
    config["listen"] = f"127.0.0.1:{port}"
    config["admin_listen"] = f"127.0.0.1:{admin}"
    config["shutdown_grace_seconds"] = 5
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "run", "--config", str(path), "--workers", "2",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    running = Tree(process, port, admin)
    running.config_path = path  # type: ignore[attr-defined]
    running.config = config  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)  # the supervisor and its workers
            await process.wait()


async def fresh_connection_get(port: int, token: str) -> int:
    """One request on its own connection, so the kernel picks a worker for each."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.get(
            f"http://127.0.0.1:{port}/api/user/x", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status


async def test_two_workers_share_the_port_and_one_admin_port(tree, mint):
    async with aiohttp.ClientSession() as http:
        body = await tree.wait_ready(http)
        workers = body["workers"]
        assert len(workers) == 2 and len({w["pid"] for w in workers}) == 2
        token = mint()
        gate = asyncio.Semaphore(16)  # the upstream runs in this loop too: keep it responsive

        async def one() -> int:
            async with gate:
                return await fresh_connection_get(tree.port, token)

        statuses = await asyncio.gather(*(one() for _ in range(200)))
        assert set(statuses) == {200}
        per_worker = [
            metric(await tree.metrics(http, w["admin"]), "m2mgate_requests_total", route="user")
            for w in workers
        ]
        assert all(count > 0 for count in per_worker), per_worker  # both served (SO_REUSEPORT)
        merged = await tree.metrics(http)
        assert metric(merged, "m2mgate_requests_total", route="user") == 200 == sum(per_worker)
        assert metric(merged, "m2mgate_workers") == 2
        assert metric(merged, "m2mgate_jwks_ready", issuer="local") == 1
        assert metric(merged, "m2mgate_request_duration_seconds_count", route="user") == 200

        # SIGHUP reaches every worker: each reloads the (edited) config.
        config = tree.config
        config["routes"].insert(0, {"name": "extra", "path": "/extra/**", "public": True})
        tree.config_path.write_text(yaml.safe_dump(config))
        tree.process.send_signal(signal.SIGHUP)
        for _ in range(100):
            merged = await tree.metrics(http)
            if metric(merged, "m2mgate_config_reloads_total", result="ok") == 2:
                break
            await asyncio.sleep(0.05)
        assert metric(merged, "m2mgate_config_reloads_total", result="ok") == 2

        # A worker that dies is started again; the port keeps answering meanwhile.
        os.kill(workers[0]["pid"], signal.SIGKILL)
        assert await fresh_connection_get(tree.port, token) == 200
        body = await tree.wait_ready(http, pids={w["pid"] for w in workers})
        assert {w["restarts"] for w in body["workers"]} == {0, 1}
        assert metric(await tree.metrics(http), "m2mgate_worker_restarts_total") == 1

    tree.process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(tree.process.communicate(), 30)
    assert tree.process.returncode == 0
    events = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert names.count("started") == 3  # two workers, one restarted
    assert "workers_started" in names and "worker_exited" in names
    assert names.count("stopped") == 3  # both workers and the supervisor
    assert "unhandled_error" not in names
    served = {e.get("worker") for e in events if e["event"] == "request"}
    assert served == {0, 1}  # every worker line says which worker wrote it


def test_workers_must_be_a_small_positive_number():
    for bad in ("0", "65", "two"):
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "m2mgate", "run", "--config", "x.yaml", "--workers", bad],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2
        assert "--workers" in result.stderr
