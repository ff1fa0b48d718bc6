"""The adversarial table: forged and malformed credentials against one real gateway.

Every case names its threat, and asserts the exact status and `WWW-Authenticate` challenge.
All cases run against the same gateway, which must answer a health probe and a valid request
after each one (it stays healthy throughout). An attacker-controlled key server on loopback
must never be contacted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from tests.support.raw_http import raw_request
from tests.support.servers import JwksServer, header_values
from tests.support.tokens import SigningKey, b64url, claims_for, ec_key, rsa_key, sign_raw

REALM = 'Bearer realm="m2mgate"'
INVALID_TOKEN = REALM + ', error="invalid_token"'
INVALID_REQUEST = REALM + ', error="invalid_request"'
OK = (200, None)


@dataclass
class Context:
    issuer: str
    other_issuer: str
    good: SigningKey
    other: SigningKey  # the second issuer's key, same kid as `good`
    weak: SigningKey  # published, 1024-bit
    encryption: SigningKey  # published with use: enc
    oct_secret: bytes  # published as an oct (HMAC) key
    attacker: SigningKey
    attacker_url: str

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims_for(self.issuer, **overrides)

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return self.good.sign(self.claims(**claims), header=header)


def request(
    token: str | None = None,
    *,
    path: str = "/api/user/x",
    authorization: list[str] | None = None,
    method: str = "GET",
    extra: list[str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gw.test", "Connection: close"]
    values = authorization if authorization is not None else ([f"Bearer {token}"] if token else [])
    lines += [f"Authorization: {value}" for value in values]
    lines += extra or []
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"sig") -> str:
    return f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}.{b64url(signature)}"


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def raw_exp(ctx: Context, exp_json: str) -> str:
    claims = ctx.claims()
    del claims["exp"]
    payload = json.dumps(claims)[:-1] + f', "exp": {exp_json}}}'
    return sign_raw(ctx.good, '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}', payload)


def public_der(key: SigningKey) -> bytes:
    return bytes(
        key.public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


Case = tuple[Callable[[Context], bytes], tuple[int, str | None]]

CASES: dict[str, Case] = {
    # --- alg none: an unsigned token accepted because its header says so ----------------------
    **{
        f"alg {alg}": (
            lambda c, a=alg: request(
                forge({"alg": a, "typ": "at+jwt"}, c.claims(scope="admin"), b"")
            ),
            (401, INVALID_TOKEN),
        )
        for alg in ("none", "None", "NONE", "nOnE")
    },
    "alg none with a signature": (
        lambda c: request(forge({"alg": "none", "kid": "rsa-1", "typ": "at+jwt"}, c.claims())),
        (401, INVALID_TOKEN),
    ),
    # --- HMAC keyed with the RSA public key (algorithm confusion) --------------------------
    "HS256 with the public key PEM": (
        lambda c: request(
            hs256(
                c.good.public_pem(), {"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}, c.claims()
            )
        ),
        (401, INVALID_TOKEN),
    ),
    "HS256 with the public key DER": (
        lambda c: request(
            hs256(public_der(c.good), {"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}, c.claims())
        ),
        (401, INVALID_TOKEN),
    ),
    "HS256 with the public key JWK": (
        lambda c: request(
            hs256(
                json.dumps(c.good.jwk()).encode(),
                {"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"},
                c.claims(),
            )
        ),
        (401, INVALID_TOKEN),
    ),
    "HS256 with a published oct key": (
        lambda c: request(
            hs256(c.oct_secret, {"alg": "HS256", "kid": "oct-1", "typ": "at+jwt"}, c.claims())
        ),
        (401, INVALID_TOKEN),
    ),
    # --- the token's alg does not fit the key it names ---------------------------------
    "PS256 on the RS256 key": (
        lambda c: request(SigningKey("rsa-1", "PS256", c.good.private).sign(c.claims())),
        (401, INVALID_TOKEN),
    ),
    "RS384 on the RS256 key": (
        lambda c: request(SigningKey("rsa-1", "RS384", c.good.private).sign(c.claims())),
        (401, INVALID_TOKEN),
    ),
    "ES256 naming the RSA kid": (
        lambda c: request(SigningKey("rsa-1", "ES256", ec_key().private).sign(c.claims())),
        (401, INVALID_TOKEN),
    ),
    # --- the token brings its own key (inline or by URL) -----------------------------------
    **{
        f"embedded {member}": (
            lambda c, m=member: request(
                c.attacker.sign(
                    c.claims(scope="admin"),
                    header={
                        m: c.attacker.jwk()
                        if m == "jwk"
                        else (["MIIBIjANBgkqhkiG9w0BAQEFAAOC"] if m == "x5c" else c.attacker_url)
                    },
                )
            ),
            (401, INVALID_TOKEN),
        )
        for member in ("jwk", "jku", "x5u", "x5c")
    },
    # --- kid used as anything but a dictionary key -------------------------------------
    **{
        f"kid {label}": (
            lambda c, k=kid: request(c.token(header={"kid": k})),
            (401, INVALID_TOKEN),
        )
        for label, kid in {
            "path traversal": "../../../../etc/passwd",
            "SQL": "' OR 1=1 --",
            "URL": "http://127.0.0.1:1/keys",
            "NUL": "rsa-1\x00",
            "CRLF": "rsa-1\r\nX-Injected: 1",
            "4000 chars": "k" * 4000,
            "case variant": "RSA-1",
        }.items()
    },
    "kid not a string": (
        lambda c: request(
            sign_raw(c.good, '{"alg":"RS256","kid":7,"typ":"at+jwt"}', json.dumps(c.claims()))
        ),
        (401, INVALID_TOKEN),
    ),
    # --- extensions that change what is signed ----------------------------------------
    "crit": (
        lambda c: request(
            sign_raw(
                c.good,
                '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","crit":["exp"],"exp":1}',
                json.dumps(c.claims()),
            )
        ),
        (401, INVALID_TOKEN),
    ),
    "b64 false": (
        lambda c: request(
            sign_raw(
                c.good,
                '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","b64":false,"crit":["b64"]}',
                json.dumps(c.claims()),
            )
        ),
        (401, INVALID_TOKEN),
    ),
    # --- two parsers, two answers: duplicate members, correctly signed -----------------
    "duplicate alg in header": (
        lambda c: request(
            sign_raw(
                c.good,
                '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","alg":"none"}',
                json.dumps(c.claims()),
            )
        ),
        (401, INVALID_TOKEN),
    ),
    "duplicate scope in payload": (
        lambda c: request(
            sign_raw(
                c.good,
                '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}',
                json.dumps(c.claims())[:-1] + ', "scope": "admin"}',
            ),
            path="/api/admin/x",
        ),
        (401, INVALID_TOKEN),
    ),
    # --- NumericDate abuse, correctly signed ------------------------------------------
    **{
        f"exp {label}": (lambda c, v=value: request(raw_exp(c, v)), (401, INVALID_TOKEN))
        for label, value in {
            "as string": '"9999999999"',
            "as true": "true",
            "as float overflow": "1e400",
            "as NaN": "NaN",
            "as Infinity": "Infinity",
            "huge integer": "99999999999999999999999",
            "null": "null",
            "array": "[9999999999]",
        }.items()
    },
    "exp missing": (lambda c: request(c.token(exp=None)), (401, INVALID_TOKEN)),
    "nbf as string": (lambda c: request(c.token(nbf="0")), (401, INVALID_TOKEN)),
    "expired": (
        lambda c: request(c.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900)),
        (401, INVALID_TOKEN),
    ),
    "not yet valid": (lambda c: request(c.token(nbf=int(time.time()) + 600)), (401, INVALID_TOKEN)),
    "lifetime of ten years": (
        lambda c: request(c.token(exp=int(time.time()) + 10 * 365 * 86400)),
        (401, INVALID_TOKEN),
    ),
    "wrong audience": (
        lambda c: request(c.token(aud="https://other.example")),
        (401, INVALID_TOKEN),
    ),
    "unknown issuer": (
        lambda c: request(c.token(iss="https://evil.example")),
        (401, INVALID_TOKEN),
    ),
    "id token typ": (lambda c: request(c.token(header={"typ": "JWT"})), (401, INVALID_TOKEN)),
    # --- structure ------------------------------------------------------------------------
    "2 segments": (lambda c: request(".".join(c.token().split(".")[:2])), (401, INVALID_TOKEN)),
    "4 segments": (lambda c: request(c.token() + ".AAAA"), (401, INVALID_TOKEN)),
    "5 segments (JWE)": (
        lambda c: request("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"),
        (401, INVALID_TOKEN),
    ),
    # RFC 6750 §2.1 b64token allows '=' only at the end: inside, the header is malformed...
    "padding inside the token": (
        lambda c: request(c.token().replace(".", "=.", 1)),
        (400, INVALID_REQUEST),
    ),
    # ...at the end it is a b64token, but JWS segments are unpadded (RFC 7515 §2).
    "padding at the end": (lambda c: request(c.token() + "=="), (401, INVALID_TOKEN)),
    "bad base64 characters": (
        lambda c: request(authorization=["Bearer !!!.@@@.###"]),
        (400, INVALID_REQUEST),
    ),
    "space inside the token": (
        lambda c: request(authorization=["Bearer " + c.token().replace(".", ". ", 1)]),
        (400, INVALID_REQUEST),
    ),
    "tab instead of space": (
        lambda c: request(authorization=["Bearer\t" + c.token()]),
        (400, INVALID_REQUEST),
    ),
    "Bearer without a token": (
        lambda c: request(authorization=["Bearer "]),
        (400, INVALID_REQUEST),
    ),
    # --- size ---------------------------------------------------------------------------------
    "9 KiB token": (
        lambda c: request(authorization=["Bearer " + "a" * 9000]),
        (401, INVALID_TOKEN),
    ),
    "20 KiB Authorization header": (
        lambda c: request(authorization=["Bearer " + "a" * 20000]),
        (431, None),
    ),
    # --- where the token comes from ------------------------------------------------------
    "token in the query string": (
        lambda c: request(path=f"/api/user/x?access_token={c.token()}"),
        (401, REALM),
    ),
    "token in a form body": (
        lambda c: request(
            method="POST",
            extra=["Content-Type: application/x-www-form-urlencoded"],
            body=urllib.parse.urlencode({"access_token": c.token()}).encode(),
        ),
        (401, REALM),
    ),
    "two Authorization headers": (
        lambda c: request(authorization=[f"Bearer {c.token()}", f"Bearer {c.token()}"]),
        (400, INVALID_REQUEST),
    ),
    "Basic scheme": (lambda c: request(authorization=["Basic YWRtaW46YWRtaW4="]), (401, REALM)),
    "Digest scheme": (lambda c: request(authorization=['Digest username="admin"']), (401, REALM)),
    "DPoP scheme": (lambda c: request(authorization=[f"DPoP {c.token()}"]), (401, REALM)),
    "lowercase bearer is fine": (lambda c: request(authorization=[f"bearer {c.token()}"]), OK),
    # --- keys ----------------------------------------------------------------------------------
    "other issuer's key for our issuer": (
        lambda c: request(c.other.sign(c.claims())),  # same kid, other issuer's key
        (401, INVALID_TOKEN),
    ),
    "signed by a 1024-bit key in the JWKS": (
        lambda c: request(c.weak.sign(c.claims())),
        (401, INVALID_TOKEN),
    ),
    "signed by a use:enc key": (
        lambda c: request(c.encryption.sign(c.claims())),
        (401, INVALID_TOKEN),
    ),
    # --- claim values that could break framing: allowed, but carried safely ----------------
    "CR LF NUL in claims": (
        lambda c: request(c.token(client_id="svc\r\nX-Injected: 1", sub="a\x00b")),
        OK,
    ),
}


@pytest.fixture
async def context(
    aiohttp_server, make_gateway, jwks, rsa_signer
) -> tuple[Context, Any, dict[str, int]]:
    attacker_hits = {"count": 0}

    async def attacker_handler(_: web.Request) -> web.Response:
        attacker_hits["count"] += 1
        return web.json_response({"keys": [attacker.jwk()]})

    attacker = rsa_key("attacker-kid")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", attacker_handler)
    attacker_server = await aiohttp_server(app)

    weak, encryption = rsa_key("weak-1", bits=1024), rsa_key("enc-1")
    oct_secret = b"an-hmac-secret-that-is-32-bytes!"
    jwks.keys.append(weak)
    jwks.behaviour.extra_keys = [
        encryption.jwk(use="enc"),
        {"kty": "oct", "kid": "oct-1", "k": b64url(oct_secret), "alg": "HS256"},
    ]
    partner = JwksServer()
    other = rsa_key("rsa-1")
    partner.keys = [other]
    partner_server = await aiohttp_server(partner.app())
    partner.url = str(partner_server.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"].append(
            {"name": "partner", "issuer": partner.issuer, "jwks_uri": partner.jwks_uri,
             "audiences": ["https://api.example"], "preset": "rfc9068"}
        )  # fmt: skip

    gw = await make_gateway(configure)
    ctx = Context(
        issuer=jwks.issuer, other_issuer=partner.issuer, good=rsa_signer, other=other, weak=weak,
        encryption=encryption, oct_secret=oct_secret, attacker=attacker,
        attacker_url=str(attacker_server.make_url("/keys")),
    )  # fmt: skip
    return ctx, gw, attacker_hits


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # minting, on purpose
async def test_adversarial_table(context, upstream):
    ctx, gw, attacker_hits = context
    assert len(CASES) >= 40
    failures = []
    for name, (build, (status, challenge)) in CASES.items():
        response = await raw_request(gw.url, build(ctx))
        got = (response.status, response.header("WWW-Authenticate"))
        if got != (status, challenge):
            failures.append(f"{name}: expected {(status, challenge)}, got {got}")
        if response.status >= 400 and response.header("Content-Type") != "application/json":
            failures.append(f"{name}: error without a JSON body")
        healthy = await gw.get("/api/user/x", ctx.token())
        if healthy.status != 200:
            failures.append(f"{name}: the gateway was not healthy afterwards")
    assert failures == []
    assert attacker_hits["count"] == 0  # never asked the attacker's key server for anything
    injected = [seen for seen in upstream.requests if header_values(seen, "X-Injected")]
    assert injected == []  # the CR LF case reached the upstream without a forged header
    assert not [e for e in gw.log_events() if e["event"] == "unhandled_error"]
