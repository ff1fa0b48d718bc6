"""The process around the gateway: admin endpoints, graceful drain, the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import base_config
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_healthz_and_metrics(gw):
    async with gw.http.get(gw.admin_url + "/healthz") as response:
        assert response.status == 200
    async with gw.http.get(gw.admin_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    for name in (
        "m2mgate_requests_total",
        "m2mgate_auth_decisions_total",
        "m2mgate_request_duration_seconds",
        "m2mgate_upstream_duration_seconds",
        "m2mgate_jwks_fetches_total",
        "m2mgate_jwks_keys",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_admin_is_not_on_the_proxy_port(gw):
    assert (await gw.get("/metrics")).status == 404  # default deny, no admin leak


async def test_graceful_drain_finishes_in_flight_requests(gw, mint, upstream):
    token = mint()
    in_flight = asyncio.create_task(gw.get("/api/user/x?behaviour=hang", token))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    stopping = asyncio.create_task(gw.gateway.stop())
    await eventually(lambda: not gw.gateway.is_accepting)
    host, port = gw.url.removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        await asyncio.open_connection(host, int(port))
    assert not stopping.done()  # waiting for the in-flight request
    upstream.release.set()
    response = await asyncio.wait_for(in_flight, 5)
    assert response.status == 200
    await asyncio.wait_for(stopping, 5)


async def test_drain_is_bounded_by_the_grace_period(make_gateway, mint, upstream):
    gw = await make_gateway(lambda c: c.update(shutdown_grace_seconds=0.2))
    in_flight = asyncio.create_task(gw.get("/api/user/x?behaviour=hang", mint()))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    await asyncio.wait_for(gw.gateway.stop(), 3)  # does not wait for the hanging upstream
    with pytest.raises(aiohttp.ClientError):
        await in_flight


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cli_run_serves_then_exits_zero_on_sigterm(tmp_path, jwks, upstream, mint):
    config: dict[str, Any] = base_config(jwks, upstream)
    port, admin_port = free_port(), free_port()
    config["listen"] = f"127.0.0.1:{port}"
    config["admin_listen"] = f"127.0.0.1:{admin_port}"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "run", "--config", str(path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            headers = {"Authorization": f"Bearer {mint()}"}
            async with http.get(f"http://127.0.0.1:{port}/api/user/x", headers=headers) as answer:
                assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0
    events = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [e["event"] for e in events if e["event"] in ("started", "draining", "stopped")] == [
        "started", "draining", "stopped",
    ]  # fmt: skip
    assert any(e["event"] == "request" and e["status"] == 200 for e in events)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "m2mgate", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_check_valid_and_invalid(tmp_path):
    ok = run_cli("check", "--config", str(ROOT / "config" / "example.yaml"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "upstream: {url: ftp://x}\nissuers: []\nroutes: [{name: a, path: /a}]\nextra: 1\n"
    )
    result = run_cli("check", "--config", str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "upstream.url: expected an http:// or https:// URL" in lines
    assert "issuers: needs at least 1 item(s)" in lines
    required = "routes[0].require: required unless `public: true` (write `require: {}` to"
    assert any(line.startswith(required) for line in lines)
    assert any(line.startswith("extra: unknown key (allowed: listen,") for line in lines)


def test_cli_config_from_environment():
    result = run_cli("check", env={"M2MGATE_CONFIG": str(ROOT / "config" / "example.yaml")})
    assert result.returncode == 0


def test_cli_usage_errors():
    assert run_cli("check", env={"M2MGATE_CONFIG": ""}).returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_cli_schema_is_json_schema():
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"upstream", "issuers", "routes"}


async def test_sigterm_lets_a_two_second_request_finish_and_refuses_new_ones(
    tmp_path, jwks, upstream, mint
):
    config: dict[str, Any] = base_config(jwks, upstream)
    port, admin_port = free_port(), free_port()
    config.update(listen=f"127.0.0.1:{port}", admin_listen=f"127.0.0.1:{admin_port}")
    config["shutdown_grace_seconds"] = 6
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "run", "--config", str(path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {mint()}"}
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{admin_port}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

            async def slow() -> tuple[int, float]:
                started = time.monotonic()
                async with http.get(
                    url + "/api/user/x?behaviour=sleep&seconds=2", headers=headers
                ) as r:
                    await r.read()
                    return r.status, time.monotonic() - started

            in_flight = asyncio.create_task(slow())
            await asyncio.sleep(0.3)  # the request is in the gateway, waiting on the upstream
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            with pytest.raises(ConnectionRefusedError):  # no new connections while draining
                await asyncio.open_connection("127.0.0.1", port)
            status, elapsed = await asyncio.wait_for(in_flight, 10)
            assert status == 200 and elapsed >= 2
        await asyncio.wait_for(process.wait(), 10)
        exited_after = time.monotonic() - signalled
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0
    assert exited_after < config["shutdown_grace_seconds"]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("taken_key", ["listen", "admin_listen"])
async def test_a_port_in_use_is_one_clear_line_and_nothing_else(
    tmp_path, jwks, upstream, workers, taken_key
):
    """#8: the port in use was reported after `draining`, `stopped` and a traceback of a key
    fetch that died on the closed session. Now the listeners are bound before anything else
    starts, and a failed start says one thing: which address, and why."""
    config: dict[str, Any] = base_config(jwks, upstream)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config["listen"] = f"127.0.0.1:{free_port()}"
        config["admin_listen"] = f"127.0.0.1:{free_port()}"
        config[taken_key] = address
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m2mgate", "run", "--config", str(path), "--workers", workers,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert stdout.decode() == ""
    assert stderr.decode().splitlines() == [
        f"m2mgate run: cannot listen on {address} ({taken_key}): address already in use"
    ]
    assert jwks.fetches == 0  # nothing started: no key fetch to die on a closed session


class Run:
    """`m2mgate run` as a process, its output read as it comes (a full pipe would block
    the gateway's log writes)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._output = asyncio.ensure_future(process.stdout.read())

    async def events(self, within_seconds: float = 30) -> list[dict[str, Any]]:
        """Wait for the exit; every JSON line it wrote."""
        output = await asyncio.wait_for(self._output, within_seconds)
        await asyncio.wait_for(self.process.wait(), within_seconds)
        return [json.loads(line) for line in output.decode().splitlines()]

    async def kill(self) -> None:
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # a supervisor and its workers
            await self.process.wait()
        self._output.cancel()


async def start_run(tmp_path, config: dict[str, Any], *args: str) -> Run:
    """`m2mgate run` (plus `args`) on `config`, returned once /readyz says 200."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "run", "--config", str(path), *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    run = Run(process)
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            assert process.returncode is None, "the gateway exited at start"
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://{config['admin_listen']}/readyz") as ready:
                    if ready.status == 200:
                        return run
            await asyncio.sleep(0.05)
    await run.kill()
    raise AssertionError("the gateway never became ready")


async def readyz_status(config: dict[str, Any]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{config['admin_listen']}/readyz") as response,
    ):
        return response.status, (await response.json())["status"]


async def readyz_turns_503(config: dict[str, Any], within_seconds: float = 1.0) -> None:
    """/readyz answers 503 draining within `within_seconds` (the signal is asynchronous)."""
    deadline = time.monotonic() + within_seconds
    while await readyz_status(config) != (503, "draining"):
        assert time.monotonic() < deadline, "/readyz did not turn 503 at once"
        await asyncio.sleep(0.01)


async def get_on_a_new_connection(config: dict[str, Any], token: str) -> int:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.get(
            f"http://{config['listen']}/api/user/x", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status


def delayed_config(jwks, upstream, delay: float) -> dict[str, Any]:
    config: dict[str, Any] = base_config(jwks, upstream)
    config.update(listen=f"127.0.0.1:{free_port()}", admin_listen=f"127.0.0.1:{free_port()}")
    config.update(shutdown_delay_seconds=delay, shutdown_grace_seconds=5)
    return config


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_shutdown_delay_serves_new_connections_while_readyz_says_503(
    tmp_path, jwks, upstream, mint, workers
):
    """#8: SIGTERM closed the listener the moment /readyz turned 503, so clients still routed
    to the pod during a rolling update were refused. With `shutdown_delay_seconds`, /readyz
    is 503 at once and the gateway goes on accepting and serving for that long, then drains."""
    delay = 2.0
    config = delayed_config(jwks, upstream, delay)
    run = await start_run(tmp_path, config, "--workers", workers)
    token = mint()
    try:
        signalled = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        await readyz_turns_503(config)  # at once, not after the delay
        served = []
        for _ in range(100):  # new connections, until near the end of the delay
            if time.monotonic() - signalled > delay - 0.5:
                break
            served.append(await get_on_a_new_connection(config, token))
        assert served and set(served) == {200}
        assert await readyz_status(config) == (503, "draining")
        events = await run.events()
        exited_after = time.monotonic() - signalled
    finally:
        await run.kill()
    assert run.process.returncode == 0
    assert delay <= exited_after < delay + config["shutdown_grace_seconds"]
    for worker in [None] if workers == "1" else [0, 1]:  # every worker waits its own delay
        steps = [
            e["event"]
            for e in events
            if e.get("worker") == worker and e["event"] in ("shutdown_delay", "draining", "stopped")
        ]
        assert steps == ["shutdown_delay", "draining", "stopped"], worker
    assert "unhandled_error" not in [e["event"] for e in events]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_second_signal_skips_the_rest_of_the_delay(tmp_path, jwks, upstream, workers):
    config = delayed_config(jwks, upstream, 120)
    run = await start_run(tmp_path, config, "--workers", workers)
    try:
        run.process.send_signal(signal.SIGTERM)
        await readyz_turns_503(config)
        second = time.monotonic()
        run.process.send_signal(signal.SIGINT)
        events = [event["event"] for event in await run.events()]
        exited_after = time.monotonic() - second
    finally:
        await run.kill()
    assert run.process.returncode == 0
    assert exited_after < 10  # not the 120 s delay
    assert events.count("shutdown_delay_skipped") == int(workers)
