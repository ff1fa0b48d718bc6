"""Interop with a real OAuth 2.0 server nobody here wrote: panva's certified `oidc-provider`.

The test suite starts it on loopback (tests/interop/oidc_provider/server.mjs), configured for
the client-credentials grant with RFC 9068 JWT access tokens. m2mgate knows only its issuer URL
(discovery finds the keys); `m2mgate token` gets real tokens from it; the gateway allows and
denies them by scope.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import header_values

SERVER_DIR = Path(__file__).resolve().parents[1] / "interop" / "oidc_provider"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the oidc-provider interop test needs Node.js"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def oidc_provider() -> AsyncIterator[str]:
    assert NODE is not None
    if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run scripts/bootstrap (npm ci)")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        NODE, "server.mjs", str(port), cwd=SERVER_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            _, err = await process.communicate()
            pytest.fail(f"oidc-provider did not start: {err.decode()[-2000:]}")
        ready = json.loads(line)
        assert ready["event"] == "ready"
        yield str(ready["issuer"])
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


async def token(issuer: str, client: str, scope: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "token", "--issuer", issuer, "--client-id", client,
        "--client-secret", f"{client}-secret", "--scope", scope,
        "--resource", "https://api.example", "--decode",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode().strip(), err.decode()


async def test_real_tokens_from_oidc_provider_are_allowed_and_denied_by_scope(
    oidc_provider, make_gateway
):
    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {
                "name": "oidc-provider",
                "issuer": oidc_provider,  # no jwks_uri: OIDC discovery finds it
                "audiences": ["https://api.example"],
                "algorithms": ["ES256"],
                "preset": "rfc9068",
            }
        ]

    gw = await make_gateway(configure)
    code, reader, err = await token(oidc_provider, "reader", "read:data")
    assert code == 0, err
    decoded = json.loads(err)
    assert decoded["header"]["typ"] == "at+jwt"  # RFC 9068, from their implementation
    assert decoded["claims"]["iss"] == oidc_provider

    response = await gw.get("/api/user/orders", reader)
    assert response.status == 200
    seen = await response.json()
    assert header_values(seen, "X-Client-Id") == ["reader"]
    assert header_values(seen, "X-Scopes") == ["read:data"]
    response = await gw.get("/api/admin/stats", reader)
    assert response.status == 403
    assert 'scope="admin"' in response.headers["WWW-Authenticate"]

    code, admin, err = await token(oidc_provider, "admin", "read:data admin")
    assert code == 0, err
    assert (await gw.get("/api/admin/stats", admin)).status == 200

    # Their server's refusal comes back as a clean OAuth error, exit 1.
    code, out, err = await token(oidc_provider, "reader", "admin")
    assert (code, out) == (1, "")
    assert "invalid_scope" in err

    # Tampering with their token is caught by our verification.
    header, payload, signature = reader.split(".")
    assert (await gw.get("/api/user/orders", f"{header}.{payload}.{signature[::-1]}")).status == 401
