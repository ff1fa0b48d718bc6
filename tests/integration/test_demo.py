"""The demo, end to end over real sockets: in-process, and as a user runs it (CLI + curl)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys

import aiohttp
import pytest

from m2mgate.demo.runner import Demo, DemoPorts, demo_config_text, instructions
from m2mgate.observability.logging import build_logger
from m2mgate.token_client import ClientCredentials, get_token


@pytest.fixture
async def demo():
    running = Demo(DemoPorts(0, 0, 0, 0), log=build_logger(io.StringIO()), log_stream=io.StringIO())
    await running.start()
    assert await running.wait_ready()
    yield running
    await running.stop()


async def demo_token(demo: Demo, client: str) -> str:
    body = await get_token(
        f"http://127.0.0.1:{demo.ports.issuer}", None, ClientCredentials(client, f"{client}-secret")
    )
    return str(body["access_token"])


async def test_demo_flow_token_200_403_200(demo):
    gateway = f"http://127.0.0.1:{demo.ports.gateway}"
    reader = await demo_token(demo, "demo-reader")
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {reader}", "X-Client-Id": "spoofed"}
        async with http.get(gateway + "/api/user/profile?x=1", headers=headers) as response:
            assert response.status == 200
            echoed = await response.json()
        assert echoed["path"] == "/api/user/profile" and echoed["query"] == "x=1"
        assert echoed["headers"]["X-Client-Id"] == "demo-reader"
        assert echoed["headers"]["X-Scopes"] == "read:data"
        async with http.get(gateway + "/api/admin/stats", headers=headers) as response:
            assert response.status == 403
            assert (await response.json())["error"] == "insufficient_scope"
        admin = await demo_token(demo, "demo-admin")
        headers = {"Authorization": f"Bearer {admin}"}
        async with http.get(gateway + "/api/admin/stats", headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["headers"]["X-Scopes"] == "read:data admin"
        async with http.get(gateway + "/public/info") as response:
            assert response.status == 200
        async with http.get(gateway + "/api/user/profile") as response:
            assert response.status == 401


def test_demo_config_is_a_valid_config_with_the_contract_routes(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(demo_config_text(DemoPorts()))
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "m2mgate", "check", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    text = path.read_text()
    assert "listen: 127.0.0.1:8080" in text and "admin_listen: 127.0.0.1:9901" in text
    assert "http://127.0.0.1:8081" in text and "url: http://127.0.0.1:8082" in text
    assert "audiences: [https://api.example]" in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_printed_walkthrough_works_as_pasted(tmp_path):
    ports = DemoPorts(free_port(), free_port(), free_port(), free_port())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "demo", "--port", str(ports.gateway),
        "--admin-port", str(ports.admin), "--issuer-port", str(ports.issuer),
        "--upstream-port", str(ports.upstream),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = ""
        while "Stop with Ctrl-C." not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            assert line, "the demo exited before printing its instructions"
            banner += line.decode()
        assert banner.strip() == instructions(ports).strip()
        script = banner[banner.index("# 1.") : banner.index("Stop with Ctrl-C.")]
        # As pasted: no `set -e` (explain exits 1 on its deny, by design).
        (tmp_path / "walkthrough.sh").write_text(script)
        result = await asyncio.create_subprocess_exec(
            "bash", str(tmp_path / "walkthrough.sh"), cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
        )  # fmt: skip
        out, err = await asyncio.wait_for(result.communicate(), 60)
        assert result.returncode == 0, err.decode()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
    output = out.decode()
    assert output.count('"X-Client-Id": "demo-reader"') == 2  # steps 2 and 5 (spoof stripped)
    assert "someone-else" not in output
    assert (
        "HTTP/1.1 403 Forbidden" in output and 'error="insufficient_scope", scope="admin"' in output
    )
    assert '"X-Scopes": "read:data admin"' in output  # step 4
    assert "HTTP/1.1 401 Unauthorized" in output
    assert "DENY 403 insufficient_scope" in output  # explain
    assert '"typ": "at+jwt"' in err.decode()  # m2mgate token --decode
    assert process.returncode == 0


async def test_a_demo_port_in_use_is_one_line_not_a_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m2mgate", "demo", "--port", str(port),
            "--admin-port", str(free_port()), "--issuer-port", str(free_port()),
            "--upstream-port", str(free_port()),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and stdout == b""
    assert (
        f"m2mgate: cannot listen on 127.0.0.1:{port} (listen): address already in use"
        in stderr.decode().splitlines()
    )
    assert "Traceback" not in stderr.decode()
