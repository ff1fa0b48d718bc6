"""`m2mgate explain`: the gateway's own decision, step by step, via the real CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import base_config
from tests.support.tokens import claims_for

STEP_ORDER = [
    "path", "route", "credentials", "parse", "issuer", "algorithm", "token_type", "times",
    "audience", "client", "principal", "key", "signature", "policy",
]  # fmt: skip


@pytest.fixture
def config_file(tmp_path, jwks, upstream) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config(jwks, upstream)))
    return path


async def cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", *args,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def explain_json(
    config: Path, path: str, *extra: str, method: str = "GET"
) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli(
        "explain", "--config", str(config), "--method", method, "--path", path, "--json", *extra
    )
    assert code in (0, 1), err
    return code, json.loads(out)


async def test_allow_lists_every_step_in_order(config_file, mint, jwks):
    code, result = await explain_json(
        config_file, "/api/user/x?debug=1", "--token", mint(client_id="svc-a")
    )
    assert code == 0
    assert set(result) == {"request", "route", "steps", "principal", "requirements", "decision"}
    assert [step["step"] for step in result["steps"]] == STEP_ORDER
    assert all(step["ok"] for step in result["steps"])
    assert result["route"] == {
        "name": "user",
        "path": "/api/user/**",
        "methods": None,
        "public": False,
        "deny": False,
    }
    assert result["principal"]["client_id"] == "svc-a"
    assert result["principal"]["scopes"] == ["read:data"]
    assert result["requirements"] == [
        {"condition": "any_scopes one of [admin, read:data]", "ok": True}
    ]
    assert result["decision"] == {
        "allow": True,
        "status": None,
        "error": None,
        "reason": "ok",
        "detail": None,
    }
    assert jwks.fetches == 1  # online: the issuer's JWKS, fetched once


async def test_insufficient_scope_shows_each_requirement(config_file, mint):
    code, result = await explain_json(
        config_file, "/api/admin/x", "--token", mint(scope="read:data")
    )
    assert code == 1
    assert result["requirements"] == [{"condition": "scopes all of [admin]", "ok": False}]
    assert result["decision"]["status"] == 403
    assert result["decision"]["error"] == "insufficient_scope"
    assert result["steps"][-1] == {
        "step": "policy", "ok": False,
        "detail": "insufficient_scope: requirement not met: scopes all of [admin];"
        " token scopes ['read:data'], roles []",
    }  # fmt: skip


def _expired() -> dict[str, Any]:
    return {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}


@pytest.mark.parametrize(
    ("claims", "header", "failed_step", "reason", "status"),
    [
        (_expired(), None, "times", "expired", 401),
        ({"aud": "https://other"}, None, "audience", "wrong_audience", 401),
        ({"iss": "https://elsewhere"}, None, "issuer", "unknown_issuer", 401),
        ({}, {"kid": "unknown"}, "key", "unknown_kid", 401),
        ({}, {"typ": "JWT"}, "token_type", "wrong_token_type", 401),
        ({"client_id": None}, None, "client", "missing_claim", 401),
    ],
)
async def test_each_deny_reason(
    config_file, jwks, rsa_signer, claims, header, failed_step, reason, status
):
    token = rsa_signer.sign(claims_for(jwks.issuer, **claims), header=header)
    code, result = await explain_json(config_file, "/api/user/x", "--token", token)
    assert code == 1
    assert result["steps"][-1]["step"] == failed_step and not result["steps"][-1]["ok"]
    assert result["decision"]["reason"] == reason and result["decision"]["status"] == status
    assert result["principal"] is None and result["requirements"] is None


async def test_a_claim_the_layout_cannot_read_fails_its_own_step(config_file, mint):
    """Issue #8 item 23: `scope` as a JSON array under rfc9068 (a space-delimited string is
    expected). Every step used to say ok and the decision DENY: reading the principal's
    claims was not a step."""
    token = mint(scope=["read:data"])
    code, result = await explain_json(config_file, "/api/user/x", "--token", token)
    assert code == 1
    assert [step for step in result["steps"] if not step["ok"]] == [
        {
            "step": "principal", "ok": False,
            "detail": "invalid_claim: claim scope must be a space-delimited string",
        }
    ]  # fmt: skip
    assert result["steps"][-1]["step"] == "principal"  # before any key is looked up
    assert result["decision"]["reason"] == "invalid_claim"
    code, out, _ = await cli(
        "explain", "--config", str(config_file), "--path", "/api/user/x", "--token", token
    )
    assert code == 1
    assert "  FAIL principal    invalid_claim: claim scope must be a space-delimited string" in out
    assert "decision     DENY 401 invalid_token (reason invalid_claim)" in out


async def test_bad_signature(config_file, mint):
    token = mint()
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    code, result = await explain_json(config_file, "/api/user/x", "--token", forged)
    assert code == 1
    assert result["decision"]["reason"] in ("bad_signature", "malformed_token")


async def test_no_route_and_invalid_path(config_file, mint):
    code, result = await explain_json(config_file, "/elsewhere", "--token", mint())
    assert code == 1
    assert result["route"] is None
    assert result["decision"] == {
        "allow": False, "status": 404, "error": "not_found", "reason": "no_route",
        "detail": "No route matches this request.",
    }  # fmt: skip
    code, result = await explain_json(config_file, "/public/../api/admin", "--token", mint())
    assert (code, result["decision"]["status"], result["decision"]["reason"]) == (
        1,
        400,
        "invalid_path",
    )
    # `admin` only covers GET and POST: a DELETE falls through to `api` (any valid token).
    # This is what the config says; explain makes it visible.
    code, result = await explain_json(
        config_file, "/api/admin/x", "--token", mint(), method="DELETE"
    )
    assert (code, result["route"]["name"], result["decision"]["allow"]) == (0, "api", True)


async def test_public_and_missing_token(config_file):
    code, result = await explain_json(config_file, "/public/x", "--no-token")
    assert code == 0 and result["decision"]["reason"] == "public"
    code, result = await explain_json(config_file, "/api/user/x", "--no-token")
    assert code == 1
    assert (result["decision"]["status"], result["decision"]["error"]) == (401, "unauthorized")


async def test_offline_jwks_file_and_token_from_stdin(tmp_path, config_file, jwks, mint):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(jwks.document()))
    token = mint()
    code, out, _ = await cli(
        "explain", "--config", str(config_file), "--path", "/api/user/x", "--jwks", f"local={keys}",
        stdin=f"Bearer {token}\n",
    )  # fmt: skip
    assert code == 0, out
    assert jwks.fetches == 0  # offline: the JWKS server was never asked
    assert "decision     ALLOW (ok)" in out
    assert token not in out  # the human output never prints the token


async def test_offline_missing_keys_explain_the_503(tmp_path, config_file, mint):
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    code, result = await explain_json(
        config_file, "/api/user/x", "--token", mint(), "--jwks", str(empty)
    )
    assert code == 1
    assert result["decision"]["status"] == 503
    assert "no_usable_keys" in result["steps"][-1]["detail"]


async def test_token_file(tmp_path, config_file, mint, jwks):
    token_file = tmp_path / "token"
    token_file.write_text(mint() + "\n")
    code, out, _ = await cli(
        "explain",
        "--config",
        str(config_file),
        "--path",
        "/api/user/x",
        "--token-file",
        str(token_file),
    )
    assert code == 0
    assert "ok   signature" in out


async def test_usage_and_config_errors_exit_2(tmp_path, config_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: 1\n")
    assert (await cli("explain", "--config", str(bad), "--path", "/x", "--no-token"))[0] == 2
    code, _, err = await cli(
        "explain", "--config", str(config_file), "--path", "/x", "--jwks", "nope.json", "--no-token"
    )
    assert code == 2 and "no such file" in err
    assert (await cli("explain", "--path", "/x", "--no-token"))[0] == 2  # no config
    assert (await cli("explain", "--config", str(config_file), "--path", "/x", stdin=" "))[0] == 2
