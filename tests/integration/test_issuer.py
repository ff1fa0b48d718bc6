"""The embedded dev issuer over real sockets, against RFC 6749 / 8414 / 9068 behaviour."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest

from m2mgate.auth.token_parsing import parse_token
from m2mgate.config.errors import validate_model
from m2mgate.issuer.client_secrets import hash_secret
from m2mgate.issuer.config import IssuerConfigSchema, compile_issuer
from m2mgate.issuer.server import DevIssuer
from m2mgate.jose import verify_signature
from m2mgate.keys.keyset import build_keyset
from m2mgate.observability.logging import build_logger
from m2mgate.token_client import basic_authorization
from tests.integration.test_key_lifecycle import FakeClock

FAST = 1000
CLIENTS = {
    "reader": ("reader-secret", ["read:data"], True),
    "admin": ("admin secret:with%chars", ["read:data", "admin"], True),
    "retired": ("retired-secret", ["read:data"], False),
}


@pytest.fixture
async def issuer():
    log = io.StringIO()
    schema = validate_model(
        IssuerConfigSchema,
        {
            "listen": "127.0.0.1:0",
            "default_audience": "https://api.example",
            "clients": [
                {
                    "client_id": client_id,
                    "client_secret_hash": hash_secret(secret, FAST),
                    "scopes": scopes,
                    "audiences": ["https://api.example", "https://reports.example"],
                    "claims": {"tenant": "acme"},
                    "active": active,
                }
                for client_id, (secret, scopes, active) in CLIENTS.items()
            ],
        },
    )
    server = DevIssuer(compile_issuer(schema), log=build_logger(log))
    await server.start()
    server.log_text = log  # type: ignore[attr-defined]
    yield server
    await server.stop()


async def post_token(
    issuer: DevIssuer,
    form: dict[str, str] | str,
    auth: tuple[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = dict(kwargs.pop("headers", {}))
    if auth is not None:
        headers["Authorization"] = basic_authorization(*auth)  # RFC 6749 §2.3.1 encoding
    async with (
        aiohttp.ClientSession() as http,
        http.post(issuer.token_endpoint, data=form, headers=headers, **kwargs) as response,
    ):
        return response.status, dict(response.headers), await response.json()


async def jwks_of(issuer: DevIssuer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(issuer.jwks_uri) as response:
        assert response.headers["Content-Type"].startswith("application/jwk-set+json")
        assert "max-age=" in response.headers["Cache-Control"]
        return await response.json()


async def test_client_secret_basic(issuer):
    status, headers, body = await post_token(
        issuer, {"grant_type": "client_credentials"}, ("reader", "reader-secret")
    )
    assert status == 200
    assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "read:data"
    token = parse_token(body["access_token"])
    assert token.header["typ"] == "at+jwt" and token.header["alg"] == "ES256"
    assert token.claims["iss"] == issuer.issuer
    assert token.claims["sub"] == token.claims["client_id"] == "reader"
    assert token.claims["aud"] == "https://api.example"
    assert token.claims["tenant"] == "acme"
    assert token.claims["exp"] - token.claims["iat"] == 300
    keyset = build_keyset(await jwks_of(issuer), frozenset({"ES256"}))
    (key,) = keyset.candidates(token.key_id, "ES256")
    verify_signature(body["access_token"], key)


async def test_client_secret_post_and_special_characters(issuer):
    form = {
        "grant_type": "client_credentials",
        "client_id": "admin",
        "client_secret": CLIENTS["admin"][0],
        "scope": "admin",
        "audience": "https://reports.example",
    }
    status, _, body = await post_token(issuer, form)
    assert status == 200, body
    claims = parse_token(body["access_token"]).claims
    assert (claims["scope"], claims["aud"]) == ("admin", "https://reports.example")


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("reader", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("nobody", "reader-secret"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "password", "username": "u"},
            ("reader", "reader-secret"),
            400,
            "unsupported_grant_type",
        ),
        ({}, ("reader", "reader-secret"), 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "scope": "admin"},
            ("reader", "reader-secret"),
            400,
            "invalid_scope",
        ),
        (
            {"grant_type": "client_credentials", "audience": "https://evil"},
            ("reader", "reader-secret"),
            400,
            "invalid_target",
        ),
        ({"grant_type": "client_credentials"}, ("retired", "retired-secret"), 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, ("retired", "wrong"), 401, "invalid_client"),
    ],
)
async def test_oauth_errors(issuer, form, auth, status, error):
    got_status, headers, body = await post_token(issuer, form, auth)
    assert (got_status, body["error"]) == (status, error)
    assert set(body) == {"error", "error_description"}
    assert headers["Cache-Control"] == "no-store"
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic ")


async def test_body_must_be_form_encoded(issuer):
    status, _, body = await post_token(
        issuer, json.dumps({"grant_type": "client_credentials"}),
        ("reader", "reader-secret"), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (status, body["error"]) == (400, "invalid_request")


async def test_token_endpoint_is_post_only(issuer):
    async with aiohttp.ClientSession() as http, http.get(issuer.token_endpoint) as response:
        assert response.status == 405


@pytest.mark.parametrize("document", ["openid-configuration", "oauth-authorization-server"])
async def test_discovery(issuer, document):
    url = f"{issuer.issuer}/.well-known/{document}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        metadata = await response.json()
    assert metadata["issuer"] == issuer.issuer
    assert metadata["token_endpoint"] == issuer.token_endpoint
    assert metadata["jwks_uri"] == issuer.jwks_uri
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert metadata["scopes_supported"] == ["admin", "read:data"]


async def test_secrets_are_never_logged(issuer):
    await post_token(issuer, {"grant_type": "client_credentials"}, ("reader", "reader-secret"))
    await post_token(issuer, {"grant_type": "client_credentials"}, ("reader", "wrong-guess"))
    text = issuer.log_text.getvalue()
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert "token_issued" in events and "token_refused" in events
    assert "reader-secret" not in text and "wrong-guess" not in text
    assert "eyJ" not in text  # nor the token


async def test_rotation_signs_with_a_key_the_gateway_already_has(make_gateway, issuer):
    """Publish-before-use: right after a rotation, new tokens verify with no JWKS refetch."""

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {
                "name": "dev",
                "issuer": issuer.issuer,
                "jwks_uri": issuer.jwks_uri,
                "audiences": ["https://api.example"],
                "algorithms": ["ES256"],
                "preset": "rfc9068",
            }
        ]

    async def token() -> str:
        _, _, body = await post_token(
            issuer, {"grant_type": "client_credentials"}, ("reader", "reader-secret")
        )
        return str(body["access_token"])

    clock = FakeClock()
    gw = await make_gateway(configure, clock=clock)
    registry = gw.gateway.metrics.registry

    def fetches() -> float | None:
        labels = {"issuer": "dev", "result": "ok"}
        return registry.get_sample_value("m2mgate_jwks_fetches_total", labels)

    assert (await gw.get("/api/user/x", await token())).status == 200
    issuer.rotate_keys()  # now signing with the key published at start-up
    assert (await gw.get("/api/user/x", await token())).status == 200
    assert fetches() == 1  # no refetch was needed
    issuer.rotate_keys()  # the next key appeared only after the gateway's fetch
    clock.now += 31  # past the refetch cooldown: the unknown kid triggers one refetch
    assert (await gw.get("/api/user/x", await token())).status == 200
    assert fetches() == 2
