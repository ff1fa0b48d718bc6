"""The whole CONTRACT error table, through the real gateway, as one parametrized table.

Each row: how the gateway is set up, what the client sends, and the status, `error` and
`WWW-Authenticate` it must get back (plus the JSON body every error carries).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from multidict import CIMultiDict

from tests.support.raw_http import get, raw_request
from tests.support.tokens import claims_for

CHALLENGE = 'Bearer realm="m2mgate"'


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Row:
    path: str
    authorization: list[str] | str | None  # "VALID:<scope>" mints a token with that scope
    status: int
    error: str | None
    challenge: str | None
    setup: str = "default"
    extra_headers: dict[str, str] = field(default_factory=dict)


ROWS = {
    "allowed": Row("/api/user/x", "VALID:read:data", 200, None, None),
    "public needs no token": Row("/public/x", None, 200, None, None),
    "no credentials": Row("/api/user/x", None, 401, "unauthorized", CHALLENGE),
    "other scheme": Row("/api/user/x", ["Basic dXNlcjpwYXNz"], 401, "unauthorized", CHALLENGE),
    "malformed header": Row(
        "/api/user/x", ["Bearer"], 400, "invalid_request", CHALLENGE + ', error="invalid_request"'
    ),
    "two Authorization headers": Row(
        "/api/user/x",
        ["VALID:read:data", "VALID:read:data"],
        400,
        "invalid_request",
        CHALLENGE + ', error="invalid_request"',
    ),
    "bad token": Row(
        "/api/user/x",
        ["Bearer abc.def.ghi"],
        401,
        "invalid_token",
        CHALLENGE + ', error="invalid_token"',
    ),
    "expired token": Row(
        "/api/user/x", "EXPIRED", 401, "invalid_token", CHALLENGE + ', error="invalid_token"'
    ),
    "unknown issuer": Row(
        "/api/user/x", "FOREIGN", 401, "invalid_token", CHALLENGE + ', error="invalid_token"'
    ),
    "wrong audience": Row(
        "/api/user/x", "WRONG_AUD", 401, "invalid_token", CHALLENGE + ', error="invalid_token"'
    ),
    "lacks scope": Row(
        "/api/admin/x",
        "VALID:read:data",
        403,
        "insufficient_scope",
        CHALLENGE + ', error="insufficient_scope", scope="admin"',
    ),
    "no route": Row("/nowhere", "VALID:admin", 404, "not_found", None),
    "no route without token": Row("/nowhere", None, 404, "not_found", None),
    "method not routed": Row("/api/admin/x", "VALID:admin", 200, None, None),
    "keys never loaded": Row(
        "/api/user/x", "VALID:read:data", 503, "temporarily_unavailable", None, setup="jwks_down"
    ),
    "upstream unreachable": Row(
        "/api/user/x", "VALID:read:data", 502, "bad_gateway", None, setup="upstream_down"
    ),
    "upstream timed out": Row(
        "/api/user/x?behaviour=hang",
        "VALID:read:data",
        504,
        "gateway_timeout",
        None,
        setup="upstream_slow",
    ),
}


async def test_path_confusion_is_refused_before_routing(gw, mint) -> None:
    """`/public/../api/admin` must not pass as public (sent raw: clients normalise it)."""
    request = get("/public/../api/admin", f"Authorization: Bearer {mint(scope='read:data')}")
    response = await raw_request(gw.url, request)
    assert response.status == 400
    assert response.json()["error"] == "invalid_request"
    assert response.header("WWW-Authenticate") is None


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
async def test_contract_error_table(row: Row, make_gateway, jwks, upstream, rsa_signer) -> None:
    def configure(config: dict[str, Any]) -> None:
        if row.setup == "upstream_down":
            config["upstream"]["url"] = f"http://127.0.0.1:{closed_port()}"
        if row.setup == "upstream_slow":
            config["upstream"]["timeout_seconds"] = 0.3

    if row.setup == "jwks_down":
        jwks.behaviour.mode = "status500"
    gw = await make_gateway(configure, wait_ready=row.setup != "jwks_down")

    def token(kind: str) -> str:
        if kind.startswith("VALID:"):
            return rsa_signer.sign(claims_for(jwks.issuer, scope=kind.removeprefix("VALID:")))
        overrides = {
            "EXPIRED": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
            "FOREIGN": {"iss": "https://not-configured.example"},
            "WRONG_AUD": {"aud": "https://other.example"},
        }[kind]
        return rsa_signer.sign(claims_for(jwks.issuer, **overrides))

    headers: CIMultiDict[str] = CIMultiDict(row.extra_headers)
    values = [row.authorization] if isinstance(row.authorization, str) else row.authorization or []
    for value in values:
        headers.add(
            "Authorization",
            value if value.startswith(("Bearer", "Basic")) else f"Bearer {token(value)}",
        )
    method = "PUT" if row is ROWS["method not routed"] else "GET"
    async with gw.http.request(method, gw.url + row.path, headers=headers) as response:
        body = await response.json(content_type=None)
        assert response.status == row.status, body
        assert response.headers.get("WWW-Authenticate") == row.challenge
        request_id = response.headers["X-Request-Id"]
    if row.error is None:
        return
    assert response.content_type == "application/json"
    assert set(body) == {"error", "error_description", "request_id"}
    assert body["error"] == row.error
    assert body["request_id"] == request_id
    assert "eyJ" not in body["error_description"]
    if row.status == 503:
        assert int(response.headers["Retry-After"]) >= 1
