"""`m2mgate token` against the embedded issuer, over real sockets, via the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from m2mgate.auth.token_parsing import parse_token
from m2mgate.token_client import basic_authorization
from tests.integration.test_issuer import CLIENTS, issuer  # noqa: F401 - fixture


async def token_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "token", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_discovery_and_basic_auth(issuer):  # noqa: F811
    code, out, err = await token_cli(
        "--issuer", issuer.issuer, "--client-id", "reader", "--client-secret", "reader-secret"
    )
    assert code == 0, err
    token = out.strip()
    assert "\n" not in token  # stdout is exactly the token: `TOKEN=$(m2mgate token ...)`
    assert parse_token(token).claims["client_id"] == "reader"


async def test_secret_with_special_characters_round_trips(issuer, tmp_path):  # noqa: F811
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENTS["admin"][0] + "\n")
    code, _, err = await token_cli(
        "--issuer", issuer.issuer, "--client-id", "admin", "--client-secret-file", str(secret_file),
        "--scope", "admin read:data", "--audience", "https://reports.example", "--decode",
    )  # fmt: skip
    assert code == 0, err
    decoded = json.loads(err)
    assert decoded["claims"]["scope"] == "admin read:data"
    assert decoded["claims"]["aud"] == "https://reports.example"
    assert decoded["header"]["typ"] == "at+jwt"


async def test_secret_from_environment_and_post_method(issuer):  # noqa: F811
    code, _, err = await token_cli(
        "--token-endpoint", issuer.token_endpoint, "--client-id", "reader",
        "--auth-method", "client_secret_post", env={"M2MGATE_CLIENT_SECRET": "reader-secret"},
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--client-id", "reader", "--client-secret", "wrong"],
            "invalid_client: client authentication failed (HTTP 401)",
        ),
        (
            ["--client-id", "reader", "--client-secret", "reader-secret", "--scope", "admin"],
            "invalid_scope",
        ),
        (["--client-id", "retired", "--client-secret", "retired-secret"], "invalid_grant"),
    ],
)
async def test_oauth_errors_go_to_stderr_with_exit_1(issuer, args, message):  # noqa: F811
    code, out, err = await token_cli("--issuer", issuer.issuer, *args)
    assert (code, out) == (1, "")
    assert message in err
    assert "wrong" not in err and "reader-secret" not in err  # never echo a secret


async def test_refuses_to_send_secrets_over_plain_http():
    code, _, err = await token_cli(
        "--token-endpoint",
        "http://idp.example.com/token",
        "--client-id",
        "a",
        "--client-secret",
        "b",
    )
    assert code == 1 and "refusing to send a client secret" in err


async def test_usage_errors():
    assert (await token_cli("--client-id", "a", "--client-secret", "b"))[0] == 2  # no issuer
    code, _, err = await token_cli("--issuer", "http://127.0.0.1:9", "--client-id", "a")
    assert code == 2 and "no client secret" in err  # not a terminal, no env, no file


async def test_help_names_every_exit_status():
    code, out, _ = await token_cli("--help")
    text = " ".join(out.split())  # argparse wraps the description
    assert code == 0
    assert "0 ok" in text and "1 the server refused" in text and "2 usage" in text


async def test_discovery_failure_is_reported(issuer):  # noqa: F811
    code, _, err = await token_cli(
        "--issuer", issuer.issuer + "/nope", "--client-id", "reader", "--client-secret", "x"
    )
    assert code == 1 and "discovery failed" in err


def test_basic_authorization_encoding():
    # RFC 6749 §2.3.1: form-urlencode each part, then base64 of "id:secret".
    header = basic_authorization("client id", "p:ss%+")
    import base64

    assert base64.b64decode(header.removeprefix("Basic ")).decode() == "client+id:p%3Ass%25%2B"


async def test_hash_secret_and_standalone_issuer(tmp_path):
    """The whole issuer path a user takes: hash a secret, write issuer.yaml, run, get a token."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "hash-secret", "--iterations", "1000",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate(b"my-secret\n")
    secret_hash = out.decode().strip()
    assert process.returncode == 0 and secret_hash.startswith("pbkdf2_sha256$1000$")
    assert "my-secret" not in secret_hash
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "issuer.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        "default_audience: https://api.example\n"
        "clients:\n"
        "  - client_id: svc\n"
        f"    client_secret_hash: {secret_hash}\n"
        "    scopes: [read:data]\n"
    )
    issuer_process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "issuer", "--config", str(config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert issuer_process.stdout is not None
        line = await asyncio.wait_for(issuer_process.stdout.readline(), 20)
        assert json.loads(line)["event"] == "issuer_started"
        code, token, err = await token_cli(
            "--issuer", f"http://127.0.0.1:{port}",
            "--client-id", "svc", "--client-secret", "my-secret",
        )  # fmt: skip
        assert code == 0, err
        assert parse_token(token.strip()).claims["scope"] == "read:data"
    finally:
        issuer_process.terminate()
        await asyncio.wait_for(issuer_process.wait(), 15)
    assert issuer_process.returncode == 0
