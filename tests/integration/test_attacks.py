"""Forged and abusive tokens through the real gateway. Each case names its threat."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from aiohttp import web

from tests.support.tokens import b64url, claims_for, ec_key, rsa_key, sign_raw

DENIED = {401, 400}


@pytest.fixture
async def attacker(aiohttp_server: Any):
    """The attacker's own key server: any request to it is a failure of the gateway."""
    state: dict[str, Any] = {"requests": 0, "key": rsa_key("attacker")}

    async def serve(request: web.Request) -> web.Response:
        state["requests"] += 1
        return web.json_response({"keys": [state["key"].jwk()]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("/jwks"))
    return state


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"sig") -> str:
    return f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}.{b64url(signature)}"


async def assert_denied(gw, token: str, path: str = "/api/user/x") -> None:
    response = await gw.get(path, token)
    assert response.status in DENIED, response.status
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="m2mgate"')


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_any_casing(gw, jwks, alg):
    """Threat: an unsigned token accepted because the header says it needs no signature."""
    claims = claims_for(jwks.issuer, scope="admin")
    await assert_denied(gw, forge({"alg": alg, "typ": "at+jwt"}, claims, b""), "/api/admin/x")
    await assert_denied(
        gw, forge({"alg": alg, "typ": "at+jwt", "kid": "rsa-1"}, claims), "/api/admin/x"
    )


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
async def test_hmac_keyed_with_the_public_key(gw, jwks, rsa_signer, encoding):
    """Threat: HS256 verified with the RSA public key bytes as the HMAC secret."""
    from cryptography.hazmat.primitives import serialization

    secret = {
        "pem": rsa_signer.public_pem(),
        "der": rsa_signer.public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(rsa_signer.jwk()).encode(),
    }[encoding]
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}))
    body = b64url(json.dumps(claims_for(jwks.issuer, scope="admin")))
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    await assert_denied(gw, f"{header}.{body}.{b64url(mac)}", "/api/admin/x")


async def test_algorithm_key_mismatch(gw, jwks, ec_signer, rsa_signer):
    """Threat: a token claiming PS256 (or ES256) for the RS256 key."""
    token = type(rsa_signer)("rsa-1", "PS256", rsa_signer.private).sign(claims_for(jwks.issuer))
    await assert_denied(gw, token)
    mixed = type(ec_signer)("rsa-1", "ES256", ec_signer.private).sign(claims_for(jwks.issuer))
    await assert_denied(gw, mixed)


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
async def test_embedded_or_remote_keys_are_never_used(gw, jwks, attacker, member):
    """Threat: the token names its own key (inline or by URL) and signs with it."""
    key = attacker["key"]
    value: Any = {
        "jwk": key.jwk(),
        "jku": attacker["url"],
        "x5u": attacker["url"],
        "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    }[member]
    for kid in ("attacker", "rsa-1", None):
        token = key.sign(claims_for(jwks.issuer, scope="admin"), header={member: value, "kid": kid})
        await assert_denied(gw, token, "/api/admin/x")
    assert attacker["requests"] == 0


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../dev/null",
        "' OR '1'='1",
        "rsa-1\x00",
        "rsa-1 ",
        "RSA-1",
        "http://127.0.0.1:1/keys",
        "a" * 4000,
        "${jndi:ldap://x}",
        "\r\nX-Injected: 1",
    ],
)
async def test_kid_injection(gw, jwks, rsa_signer, kid):
    """Threat: kid used as a path, a query or a URL. It is only ever a dictionary key."""
    token = rsa_signer.sign(claims_for(jwks.issuer), header={"kid": kid})
    await assert_denied(gw, token)
    assert (await gw.get("/public/x")).status == 200  # still healthy


async def test_cross_issuer_key_substitution(make_gateway, jwks, aiohttp_server, rsa_signer):
    """Threat: issuer B's key verifying a token that claims issuer A (shared kid names)."""
    from tests.support.servers import JwksServer

    other = JwksServer()
    other_key = rsa_key("rsa-1")  # same kid as the first issuer's key
    other.keys = [other_key]
    server = await aiohttp_server(other.app())
    other.url = str(server.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"].append(
            {
                "name": "partner",
                "issuer": other.issuer,
                "jwks_uri": other.jwks_uri,
                "audiences": ["https://api.example"],
                "preset": "rfc9068",
            }
        )

    gw = await make_gateway(configure)
    forged = other_key.sign(claims_for(jwks.issuer, scope="admin"))  # claims issuer A
    await assert_denied(gw, forged, "/api/admin/x")
    own = other_key.sign(claims_for(other.issuer, scope="admin"))
    assert (await gw.get("/api/admin/x", own)).status == 200  # B's own tokens are fine
    assert (
        await gw.get("/api/admin/x", rsa_signer.sign(claims_for(jwks.issuer, scope="admin")))
    ).status == 200


@pytest.mark.parametrize(
    ("claims", "header"),
    [
        ({"exp": int(time.time()) - 120}, {}),
        ({"nbf": int(time.time()) + 600}, {}),
        ({"iat": int(time.time()) + 600}, {}),
        ({"aud": "https://other.example"}, {}),
        ({"aud": ["https://api.example.evil"]}, {}),
        ({"iss": "https://evil.example"}, {}),
        ({"exp": int(time.time()) + 10 * 86400}, {}),  # lifetime beyond the cap
        ({"client_id": None}, {}),  # rfc9068 requires client_id
        ({}, {"typ": "JWT"}),  # rfc9068 requires typ at+jwt: an id token posing
    ],
)
async def test_claim_abuse(gw, jwks, rsa_signer, claims, header):
    await assert_denied(gw, rsa_signer.sign(claims_for(jwks.issuer, **claims), header=header))


@pytest.mark.parametrize(
    "exp", ['"9999999999"', "true", "1e400", "NaN", "null", "[1]", "99999999999999999999999"]
)
async def test_numeric_date_abuse_even_when_correctly_signed(gw, jwks, rsa_signer, exp):
    claims = claims_for(jwks.issuer)
    del claims["exp"]
    payload = json.dumps(claims)[:-1] + f', "exp": {exp}}}'
    token = sign_raw(rsa_signer, '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', payload)
    await assert_denied(gw, token)


@pytest.mark.parametrize(
    "token_text",
    [
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "x" * 200,
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "eyJhbGciOiJSUzI1NiJ9..sig",
        "!!!.@@@.###",
    ],
)
async def test_malformed_tokens(gw, token_text):
    response = await gw.get("/api/user/x", headers={"Authorization": f"Bearer {token_text}"})
    assert response.status in DENIED


async def test_oversized_authorization_header(gw, mint):
    response = await gw.get("/api/user/x", headers={"Authorization": "Bearer " + "a" * 9000})
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_token"
    assert (await gw.get("/api/user/x", mint())).status == 200


async def test_tokens_in_query_or_body_are_ignored(gw, mint):
    token = mint(scope="admin")
    response = await gw.get(f"/api/admin/x?access_token={token}")
    assert response.status == 401
    async with gw.http.post(gw.url + "/api/admin/x", data={"access_token": token}) as answer:
        assert answer.status == 401


async def test_weak_and_wrong_curve_keys_never_verify(make_gateway, jwks):
    """A P-384 key published for an issuer that allows only ES256 is unusable."""
    p384 = ec_key("p384", alg="ES384")
    jwks.keys.append(p384)
    gw = await make_gateway()
    assert gw.gateway.key_caches["local"].status().key_count == 2  # the P-384 key is skipped
    await assert_denied(gw, p384.sign(claims_for(jwks.issuer)))
