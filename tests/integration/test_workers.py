"""`m2mgate run --workers 2`: the real CLI, two worker processes on one port, one admin port.

The JWKS server and the echo upstream run in this test's event loop; the gateway is the real
`python -m m2mgate run` process tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import base_config
from tests.integration.test_key_lifecycle import metric
from tests.integration.test_process import free_port
from tests.support.pythonpath import absolute_pythonpath
from tests.support.read_only_root import REFUSAL_MARK, read_only_env

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

    async def merged_metrics_once(
        self,
        http: aiohttp.ClientSession,
        condition: Callable[[str], bool],
        seen: list[str] | None = None,
    ) -> str:
        """The merged /metrics, polled until `condition` holds (each text appended to
        `seen`); the supervisor serves background scrapes, about a second apart."""
        for _ in range(200):
            text = await self.metrics(http)
            if seen is not None:
                seen.append(text)
            if condition(text):
                return text
            await asyncio.sleep(0.05)
        raise AssertionError("the merged metrics never met the condition")

    async def wait_ready(self, http: aiohttp.ClientSession, pids: set[int] | None = None) -> dict:
        for _ in range(400):
            if self.process.returncode is not None:
                raise AssertionError(f"the supervisor exited with {self.process.returncode}")
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
        assert sum(per_worker) == 200
        merged = await tree.merged_metrics_once(
            http, lambda text: metric(text, "m2mgate_requests_total", route="user") == 200
        )  # served from the background scrapes: up to a scrape interval behind
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


async def test_merged_counters_never_go_backwards_when_a_worker_dies(tree, mint):
    """#8: SIGKILL one of two workers and m2mgate_requests_total went 20 -> 11, which
    Prometheus reads as a counter reset (rate() lies). The dead worker's counters are kept."""
    total = 40
    async with aiohttp.ClientSession() as http:
        body = await tree.wait_ready(http)
        token = mint()
        assert {await fresh_connection_get(tree.port, token) for _ in range(total)} == {200}
        served = {
            w["pid"]: metric(await tree.metrics(http, w["admin"]), "m2mgate_requests_total")
            for w in body["workers"]
        }
        victim = max(served, key=lambda pid: served[pid])
        assert 0 < served[victim] < total  # both served some (SO_REUSEPORT), this one too

        def requests(text: str) -> float:
            return metric(text, "m2mgate_requests_total", route="user")

        # Once the merged /metrics shows them all, a background scrape has seen them.
        await tree.merged_metrics_once(http, lambda text: requests(text) == total)
        os.kill(victim, signal.SIGKILL)
        values = [float(total)]
        for _ in range(200):  # through the death, the backoff (1 s) and the restart
            after = await tree.metrics(http)
            values.append(requests(after))
            assert values == sorted(values), f"m2mgate_requests_total went backwards: {values}"
            # Each worker fetched the JWKS once. 3 counted = the dead worker's (kept), the
            # survivor's, and the restarted worker's, whose metrics are in the merge now.
            if (
                metric(after, "m2mgate_jwks_fetches_total", result="ok") == 3
                and metric(after, "m2mgate_workers") == 2
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the restarted worker's metrics never joined the merge")
    assert requests(after) == total
    assert metric(after, "m2mgate_request_duration_seconds_count", route="user") == total
    assert metric(after, "m2mgate_request_duration_seconds_bucket", route="user", le="+Inf") == (
        total
    )
    assert metric(after, "m2mgate_worker_restarts_total") == 1
    assert metric(after, "m2mgate_requests_in_flight") == 0  # gauges: the running workers'


def test_workers_must_be_a_small_positive_number():
    for bad in ("0", "65", "two"):
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "m2mgate", "run", "--config", "x.yaml", "--workers", bad],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2
        assert "--workers" in result.stderr


def workers_config(tmp_path, jwks, upstream) -> tuple[dict[str, Any], Any]:
    config: dict[str, Any] = base_config(jwks, upstream)
    config["listen"] = f"127.0.0.1:{free_port()}"
    config["admin_listen"] = f"127.0.0.1:{free_port()}"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return config, path


async def start_serve_and_stop(
    tmp_path, jwks, upstream, mint, prefix: list[str], env: dict[str, str]
) -> str:
    """`run --workers 2` (behind `prefix`): ready, one request served, SIGTERM, exit 0."""
    config, path = workers_config(tmp_path, jwks, upstream)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", "m2mgate", "run", "--config", str(path), "--workers", "2",
        cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    port = int(config["listen"].rsplit(":", 1)[1])
    running = Tree(process, port, int(config["admin_listen"].rsplit(":", 1)[1]))
    try:
        async with aiohttp.ClientSession() as http:
            body = await running.wait_ready(http)
            assert len({w["pid"] for w in body["workers"]}) == 2
            assert await fresh_connection_get(port, mint()) == 200
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    assert process.returncode == 0, output.decode()
    assert list(cwd.iterdir()) == []
    return output.decode()


async def test_workers_start_and_serve_on_a_read_only_root(tmp_path, jwks, upstream, mint):
    """#8: the shipped manifests set readOnlyRootFilesystem, and `--workers` did not start
    there (the supervisor made a temp directory for the workers' reports, and the error said
    "cannot listen"). Workers now report through an inherited pipe: nothing is written."""
    output = await start_serve_and_stop(tmp_path, jwks, upstream, mint, [], read_only_env(tmp_path))
    assert REFUSAL_MARK not in output  # not one write was even tried


# The same on a real read-only filesystem: / (and /tmp, if it is its own mount) remounted
# read-only in a private mount namespace. Needs root (or user namespaces) and util-linux.
_READ_ONLY_ROOT = (
    "mount -o remount,bind,ro / && { ! mountpoint -q /tmp || mount -o remount,bind,ro /tmp; }"
)


def _can_make_a_read_only_root() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(  # noqa: S603 - fixed tools and arguments
        ["unshare", "-m", "--propagation", "private", "sh", "-c",  # noqa: S607
         _READ_ONLY_ROOT + " && ! touch /tmp/.m2mgate-probe 2>/dev/null"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _can_make_a_read_only_root(), reason="cannot remount / read-only here")
async def test_workers_start_and_serve_on_a_really_read_only_root(tmp_path, jwks, upstream, mint):
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              _READ_ONLY_ROOT + ' && exec "$@"', "sh"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": absolute_pythonpath()}
    await start_serve_and_stop(tmp_path, jwks, upstream, mint, prefix, env)


async def test_on_a_read_only_root_a_failure_names_its_real_cause(tmp_path, jwks, upstream):
    config, path = workers_config(tmp_path, jwks, upstream)

    async def run(env: dict[str, str]) -> tuple[int | None, str, list[str]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m2mgate", "run", "--config", str(path), "--workers", "2",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 30)
        return process.returncode, out.decode(), err.decode().splitlines()

    with socket.socket() as taken:  # the admin port in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config["admin_listen"] = f"127.0.0.1:{taken.getsockname()[1]}"
        path.write_text(yaml.safe_dump(config))
        code, out, err = await run(read_only_env(tmp_path / "a"))
    assert (code, out) == (1, "")
    assert err == [
        f"m2mgate run: cannot listen on {config['admin_listen']} (admin_listen): "
        "address already in use"
    ]

    config["admin_listen"] = f"127.0.0.1:{free_port()}"
    path.write_text(yaml.safe_dump(config))
    code, out, err = await run(read_only_env(tmp_path / "b", refuse_spawn=True))
    assert (code, out) == (1, "")
    assert err[-1] == (
        f"m2mgate run: cannot start worker 0: [Errno 13] Permission denied: '{sys.executable}'"
    )
    assert not any("cannot listen" in line for line in err)
