"""Hot reload: atomic swap, refusal of bad files, caches kept, in-flight requests undisturbed."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from m2mgate.app import Gateway
from m2mgate.config.compiling import load_settings
from tests.conftest import base_config
from tests.support.servers import EchoUpstream
from tests.support.waiting import eventually


class FileGateway:
    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self.log = io.StringIO()
        self.gateway = Gateway(load_settings(path), config_path=path, log_stream=self.log)
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        host, port = self.gateway.proxy_address
        return f"http://{host}:{port}"

    def rewrite(self, change: Callable[[dict[str, Any]], None]) -> None:
        change(self.config)
        self.path.write_text(yaml.safe_dump(self.config))

    async def status(self, path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.get(self.url + path, headers=headers) as response:
            await response.read()
            return response.status

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log.getvalue().splitlines()
        return [event for event in map(json.loads, lines) if event["event"] == name]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.gateway.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def fgw(tmp_path, jwks, upstream) -> AsyncIterator[FileGateway]:
    config = base_config(jwks, upstream)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    running = FileGateway(path, copy.deepcopy(config))
    await running.gateway.start()
    assert await running.gateway.wait_ready(10)
    yield running
    await running.http.close()
    await running.gateway.stop()


async def test_valid_swap_under_load_has_zero_failed_requests(fgw, mint, aiohttp_server):
    other = EchoUpstream()
    server = await aiohttp_server(other.app())
    other_url = str(server.make_url("")).rstrip("/")
    token = mint()
    statuses: list[int] = []

    async def load() -> None:
        for _ in range(40):
            statuses.append(await fgw.status("/api/user/x", token))

    changes: list[Callable[[dict[str, Any]], None]] = [
        lambda c: c.update(forward={"claims": {"X-Jti": "jti"}}),
        lambda c: c["upstream"].update(url=other_url),  # a new upstream pool
        lambda c: c["routes"].insert(0, {"name": "extra", "path": "/extra/**", "public": True}),
        lambda c: c["issuers"][0].update(leeway_seconds=10),
        lambda c: c["upstream"].update(timeout_seconds=7),  # and another pool
    ]

    async def reloads() -> None:
        for change in changes:
            await asyncio.sleep(0.02)
            fgw.rewrite(change)
            assert await fgw.gateway.reload()

    await asyncio.gather(*(load() for _ in range(8)), reloads())
    assert len(statuses) == 320
    assert set(statuses) == {200}
    assert fgw.sample("m2mgate_config_reloads_total", result="ok") == 5
    assert await fgw.status("/extra/x", None) == 200  # the last config is the one in force
    assert other.requests  # traffic moved to the new upstream


async def test_invalid_file_is_refused_and_old_config_keeps_serving(fgw, mint):
    fgw.path.write_text("routes:\n  - name: broken\n    path: nope\nupstream: {url: ftp://x}\n")
    assert not await fgw.gateway.reload()
    assert await fgw.status("/api/user/x", mint()) == 200
    assert await fgw.status("/api/admin/x", mint()) == 403
    (event,) = fgw.events("config_reload_failed")
    assert "upstream.url: expected an http:// or https:// URL" in event["problems"]
    assert any(problem.startswith("routes[0].path:") for problem in event["problems"])
    assert fgw.sample("m2mgate_config_reloads_total", result="invalid") == 1
    assert fgw.sample("m2mgate_config_last_reload_successful") == 0
    fgw.rewrite(lambda c: None)  # the good file again
    assert await fgw.gateway.reload()
    assert fgw.sample("m2mgate_config_last_reload_successful") == 1


async def test_unchanged_issuers_keep_their_key_cache(fgw, jwks, mint):
    cache = fgw.gateway.key_caches["local"]
    fgw.rewrite(lambda c: c["routes"].append({"name": "more", "path": "/more/**", "require": {}}))
    fgw.rewrite(lambda c: c["issuers"][0].update(audiences=["https://api.example", "x"]))
    assert await fgw.gateway.reload()
    assert fgw.gateway.key_caches["local"] is cache
    assert jwks.fetches == 1  # no refetch storm
    assert await fgw.status("/more/x", mint()) == 200
    fgw.rewrite(lambda c: c["issuers"][0].update(jwks={"refetch_cooldown_seconds": 60}))
    assert await fgw.gateway.reload()
    assert fgw.gateway.key_caches["local"] is not cache  # a changed key policy: a fresh cache
    await jwks.wait_for_fetches(2)


async def test_in_flight_requests_finish_under_the_old_config(fgw, mint, upstream):
    token = mint()
    in_flight = asyncio.create_task(fgw.status("/api/user/x?behaviour=hang", token))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    fgw.rewrite(lambda c: c.update(routes=[r for r in c["routes"] if r["name"] != "user"]))
    assert await fgw.gateway.reload()
    assert await fgw.status("/api/user/x", token) == 200  # now matched by `api`
    fgw.rewrite(lambda c: c.update(routes=[r for r in c["routes"] if r["name"] != "api"]))
    assert await fgw.gateway.reload()
    assert await fgw.status("/api/user/x", token) == 404
    upstream.release.set()
    assert await asyncio.wait_for(in_flight, 5) == 200


async def test_a_replaced_upstream_pool_closes_after_its_requests(
    fgw, mint, upstream, aiohttp_server
):
    other = EchoUpstream()
    server = await aiohttp_server(other.app())
    old_runtime = fgw.gateway.runtime
    in_flight = asyncio.create_task(fgw.status("/api/user/x?behaviour=hang", mint()))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    fgw.rewrite(lambda c: c["upstream"].update(url=str(server.make_url("")).rstrip("/")))
    assert await fgw.gateway.reload()
    assert old_runtime.is_retired and not old_runtime.drained.is_set()
    upstream.release.set()
    assert await asyncio.wait_for(in_flight, 5) == 200
    await asyncio.wait_for(old_runtime.drained.wait(), 5)
    await eventually(lambda: old_runtime.forwarder.is_closed)


async def test_a_pool_kept_by_one_reload_closes_only_after_every_config_using_it_drained(
    fgw, mint, upstream, aiohttp_server
):
    """A -> B keeps A's pool (same upstream); B -> C replaces it. A request still in flight
    under A uses that pool: it must finish, not be cut when B (idle) drains."""
    other = EchoUpstream()
    server = await aiohttp_server(other.app())
    first = fgw.gateway.runtime
    in_flight = asyncio.create_task(fgw.status("/api/user/x?behaviour=hang", mint()))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    fgw.rewrite(
        lambda c: c["routes"].insert(0, {"name": "extra", "path": "/extra/**", "public": True})
    )
    assert await fgw.gateway.reload()
    second = fgw.gateway.runtime
    assert second.forwarder is first.forwarder
    fgw.rewrite(lambda c: c["upstream"].update(url=str(server.make_url("")).rstrip("/")))
    assert await fgw.gateway.reload()
    await asyncio.wait_for(second.drained.wait(), 5)
    await asyncio.sleep(0.2)  # what closed the pool when B drained would have done so by now
    assert not first.forwarder.is_closed
    upstream.release.set()
    assert await asyncio.wait_for(in_flight, 5) == 200
    await eventually(lambda: first.forwarder.is_closed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("trigger", ["sighup", "watch"])
async def test_cli_reload_by_signal_and_by_watching(tmp_path, jwks, upstream, mint, trigger):
    config = base_config(jwks, upstream)
    port, admin = free_port(), free_port()
    config.update(listen=f"127.0.0.1:{port}", admin_listen=f"127.0.0.1:{admin}")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["run", "--config", str(path)] + (["--watch"] if trigger == "watch" else [])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", *args,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def status(route: str) -> int | None:
                try:
                    async with http.get(
                        url + route, headers={"Authorization": f"Bearer {mint()}"}
                    ) as r:
                        return r.status
                except aiohttp.ClientError:
                    return None

            for _ in range(200):
                if await status("/api/user/x") == 200:
                    break
                await asyncio.sleep(0.05)
            assert await status("/new/x") == 404
            config["routes"].insert(0, {"name": "new", "path": "/new/**", "public": True})
            path.write_text(yaml.safe_dump(config))
            if trigger == "sighup":
                process.send_signal(signal.SIGHUP)
            for _ in range(100):
                if await status("/new/x") == 200:
                    break
                await asyncio.sleep(0.05)
            assert await status("/new/x") == 200
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0
