"""Issue #8 item 26: every denial's access log `detail` says what failed, on a real gateway.

`detail` is for operators only (never sent to clients). It must make a denial actionable (the
claimed `iss`, the token's `aud` next to the configured audiences, how long ago it expired,
which scopes the token did hold) without logging a token, and a hostile value must not break
the one-JSON-line-per-request log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.support.raw_http import get, raw_request
from tests.support.tokens import SigningKey, b64url, claims_for, sign_raw

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def like(template: str, detail: str | None, **values: str) -> bool:
    """`template` literally, except `<time>` (ISO 8601 UTC) and `<any>`."""
    pattern = re.escape(template.format(**values))
    pattern = pattern.replace("<time>", TIME).replace("<any>", ".*?")
    return detail is not None and re.fullmatch(pattern, detail) is not None


def hs256(claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}))
    signing_input = f"{header}.{b64url(json.dumps(claims))}"
    mac = hmac.new(b"guess", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def duplicate_aud(signer: SigningKey, issuer: str) -> str:
    payload = json.dumps(claims_for(issuer))[:-1] + ', "aud": "https://other"}'
    return sign_raw(signer, json.dumps({"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"}), payload)


@pytest.fixture
async def strict_gw(make_gateway: GatewayFactory) -> RunningGateway:
    """The CONTRACT example plus a client allowlist (the default minted client is on it)."""
    return await make_gateway(lambda c: c["issuers"][0].update(client_ids=["svc-orders", "svc-a"]))


def now() -> int:
    return int(time.time())  # at request time: the table is built when the module is imported


# (reason, path, how to build the Authorization header from (mint, jwks, spare signer), the
# expected detail). Tokens are minted per test; `{iss}` is the test issuer.
CASES: list[tuple[str, str, Callable[..., list[str]], str]] = [
    ("missing_token", "/api/user/x", lambda m, j, s: [], "no Authorization header"),
    (
        "missing_token", "/api/user/x", lambda m, j, s: ["Basic dXNlcjpwYXNz"],
        "Authorization scheme is not Bearer (5 chars)",
    ),
    (
        "malformed", "/api/user/x", lambda m, j, s: [f"Bearer {m()}", f"Bearer {m()}"],
        "more than one Authorization header",
    ),
    (
        "token_too_large", "/api/user/x", lambda m, j, s: ["Bearer " + "A" * 9000],
        "Authorization header of 9007 bytes exceeds 8192",
    ),
    (
        "malformed_token", "/api/user/x", lambda m, j, s: ["Bearer not-a-jwt"],
        "expected 3 segments, got 1",
    ),
    (
        "malformed_token", "/api/user/x",
        lambda m, j, s: [f"Bearer {duplicate_aud(s, j.issuer)}"],
        "payload: duplicate JSON member 'aud'",
    ),
    (
        "unknown_issuer", "/api/user/x",
        lambda m, j, s: [f"Bearer {m(iss='https://elsewhere.example/')}"],
        "iss 'https://elsewhere.example/' is not a configured issuer (issuers: ['{iss}'])",
    ),
    (
        "unknown_issuer", "/api/user/x", lambda m, j, s: [f"Bearer {m(iss=None)}"],
        "no iss claim (issuers: ['{iss}'])",
    ),
    (
        "disallowed_alg", "/api/user/x",
        lambda m, j, s: [f"Bearer {hs256(claims_for(j.issuer))}"],
        "alg 'HS256' is not on the issuer's allowlist ['ES256', 'RS256']",
    ),
    (
        "wrong_token_type", "/api/user/x", lambda m, j, s: [f"Bearer {m(header={'typ': 'JWT'})}"],
        "header typ 'JWT', not an access token type ['application/at+jwt', 'at+jwt']",
    ),
    (
        "expired", "/api/user/x",
        lambda m, j, s: [f"Bearer {m(exp=now() - 3600, iat=now() - 7200)}"],
        "exp <time> was 1h00m ago (leeway 5s)",
    ),
    (
        "not_yet_valid", "/api/user/x", lambda m, j, s: [f"Bearer {m(nbf=now() + 3600)}"],
        "nbf <time> is <any> in the future (leeway 5s; is a clock off?)",
    ),
    (
        "invalid_claim", "/api/user/x", lambda m, j, s: [f"Bearer {m(scope=['read:data'])}"],
        "claim scope must be a space-delimited string",
    ),
    (
        "invalid_claim", "/api/user/x",
        lambda m, j, s: [f"Bearer {m(iat=now(), exp=now() + 10 * 86400)}"],
        "token lifetime exceeds max_token_lifetime_seconds 86400 (iat to exp 10d00h)",
    ),
    (
        "invalid_claim", "/api/user/x", lambda m, j, s: [f"Bearer {m(exp='tomorrow')}"],
        "claim exp is not a number (got a string)",
    ),
    (
        # 401 digits: Python parses it exactly, float() of it raised OverflowError (a 500).
        "invalid_claim", "/api/user/x", lambda m, j, s: [f"Bearer {m(exp=10**400)}"],
        "claim exp is out of range (huge; 0 to year 3000)",
    ),
    (
        "missing_claim", "/api/user/x", lambda m, j, s: [f"Bearer {m(client_id=None)}"],
        "no client identity claim (looked for client_id)",
    ),
    (
        "missing_claim", "/api/user/x", lambda m, j, s: [f"Bearer {m(aud=None)}"],
        "claim aud is required (audiences: ['https://api.example'])",
    ),
    (
        "wrong_audience", "/api/user/x",
        lambda m, j, s: [f"Bearer {m(aud=['https://other.example', 'account'])}"],
        "aud ['https://other.example', 'account'] is none of the audiences"
        " ['https://api.example']",
    ),
    (
        "client_not_allowed", "/api/user/x", lambda m, j, s: [f"Bearer {m(client_id='intruder')}"],
        "claimed client id 'intruder' (unverified) is not in client_ids",
    ),
    (
        "unknown_kid", "/api/user/x", lambda m, j, s: [f"Bearer {m(header={'kid': 'gone'})}"],
        "kid 'gone', alg 'RS256': no such key (<any>); key set kids ['rsa-1', 'ec-1']",
    ),
    (
        "bad_signature", "/api/user/x",
        lambda m, j, s: [f"Bearer {m(signer=s, header={'kid': 'rsa-1'})}"],
        "signature verification failed; keys tried: 'rsa-1' (RS256)",
    ),
    (
        "insufficient_scope", "/api/admin/x", lambda m, j, s: [f"Bearer {m(scope='read:data')}"],
        "requirement not met: scopes all of [admin]; token scopes ['read:data'], roles []",
    ),
    ("invalid_path", "/public/../api/admin", lambda m, j, s: [], "dot segment in path"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "path", "authorization", "expected"),
    CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(CASES)],
)
async def test_each_denial_logs_an_actionable_detail(
    strict_gw, mint, jwks, spare_rsa_signer, reason, path, authorization, expected
):
    headers = authorization(mint, jwks, spare_rsa_signer)
    if len(headers) > 1 or ".." in path:  # what aiohttp would not send as given
        lines = [f"Authorization: {value}" for value in headers]
        await raw_request(strict_gw.url, get(path, *lines))
    else:
        await strict_gw.get(path, headers={"Authorization": headers[0]} if headers else {})
    (event,) = strict_gw.access_events()
    assert event["decision"] == "deny"
    assert event["reason"] == reason
    assert like(expected, event["detail"], iss=jwks.issuer), event["detail"]
    log = strict_gw.log_stream.getvalue()
    for value in headers:  # never the token, nor any of its segments
        for part in value.removeprefix("Bearer ").split("."):
            assert len(part) < 12 or part not in log


async def test_keys_unavailable_says_why(make_gateway, jwks):
    gw = await make_gateway(
        lambda c: c["issuers"][0].update(jwks_uri="http://127.0.0.1:1/jwks.json"),
        wait_ready=False,
    )
    token = jwks.keys[0].sign(claims_for(jwks.issuer))
    assert (await gw.get("/api/user/x", token)).status == 503
    (event,) = gw.access_events()
    assert event["reason"] == "keys_unavailable"
    assert like("no usable keys for local (last fetch: <any>)", event["detail"]), event["detail"]


async def test_a_hostile_iss_gives_one_bounded_line_of_valid_json(make_gateway, rsa_signer):
    """Newlines, quotes, a fake JSON field, a bidi override and 10 KB in `iss`: the detail
    stays bounded and escaped, and the log stays one valid JSON object per line."""
    gw = await make_gateway(
        lambda c: c.setdefault("limits", {}).update(max_token_bytes=32768, max_header_bytes=40000)
    )
    hostile = (
        'x"\n{"event": "request", "decision": "allow"}\r\n", "reason": "ok", '
        "\u202e\x00\\" + "A" * 10240
    )
    token = rsa_signer.sign(claims_for(hostile))
    assert (await gw.get("/api/user/x", token)).status == 401
    lines = gw.log_stream.getvalue().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one valid JSON object
    (line,) = [line for line, event in zip(lines, events, strict=True) if "request" in line]
    event = json.loads(line)  # the request's line, and no other line mentions a request
    assert (event["decision"], event["reason"], event["issuer"]) == ("deny", "unknown_issuer", None)
    detail = event["detail"]
    assert len(detail) < 400  # 200 characters of the iss, escaped, and the configured issuer
    assert f"...({len(hostile)} chars)" in detail
    assert not any(character in detail for character in "\n\r\x00\u202e")  # all escaped
    assert detail.startswith("iss 'x\"\\n{")  # quoted with repr: readable, never raw
    assert "A" * 300 not in line
