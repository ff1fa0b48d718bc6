"""Every preset against tokens shaped exactly like that provider's (PROVIDERS.md), signed by a
test key that a real loopback server publishes at that provider's JWKS path.

For each provider: the token is allowed and `X-Client-Id` / `X-Scopes` / `X-Roles` / `X-Tenant`
come from the provider's own claims; a token lacking the route's scope or role gets 403; and the
wrong kind of token (an id or refresh token signed by the same key) is refused with a 401.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.servers import JwksServer, header_values
from tests.support.tokens import SigningKey, rsa_key

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Provider:
    preset: str
    issuer: str
    jwks_path: str
    header: dict[str, Any]
    claims: dict[str, Any]
    audiences: list[str]
    require: dict[str, Any]
    client_id: str
    scopes: str
    roles: str
    insufficient: dict[str, Any]  # claim changes that fail the route's requirement
    wrong_kind: dict[str, Any]  # header/claim changes that make it the wrong kind of token
    wrong_kind_reason: str
    tenant: str | None = None
    client_ids: list[str] = field(default_factory=list)
    wrong_kind_header: dict[str, Any] = field(default_factory=dict)


def now() -> int:
    return int(time.time())


PROVIDERS = [
    Provider(
        preset="auth0",
        issuer="https://acme.eu.auth0.com/",  # trailing slash: part of the issuer
        jwks_path="/.well-known/jwks.json",
        header={"typ": "JWT"},
        claims={
            "sub": "Xk2Lq9@clients",
            "azp": "Xk2Lq9",
            "aud": "https://api.example",
            "scope": "read:orders",
            "gty": "client-credentials",
            "permissions": ["read:orders", "write:orders"],
        },
        audiences=["https://api.example"],
        require={"scopes": ["write:orders"]},
        client_id="Xk2Lq9",
        scopes="read:orders write:orders",
        roles="",
        insufficient={"permissions": ["read:orders"]},
        wrong_kind={"aud": "Xk2Lq9"},  # an id token: its audience is the client itself
        wrong_kind_reason="wrong_audience",
    ),
    Provider(
        preset="okta",
        issuer="https://dev-123456.okta.com/oauth2/default",
        jwks_path="/oauth2/default/v1/keys",
        header={"typ": None},  # Okta access tokens carry no typ
        claims={
            "ver": 1,
            "jti": "AT.hR3WqKZ9x",
            "aud": "api://default",
            "cid": "0oa1b2c3d4",
            "scp": ["orders.read", "orders.write"],
            "sub": "0oa1b2c3d4",
        },
        audiences=["api://default"],
        require={"scopes": ["orders.write"]},
        client_id="0oa1b2c3d4",
        scopes="orders.read orders.write",
        roles="",
        insufficient={"scp": ["orders.read"]},
        wrong_kind={"aud": "0oa1b2c3d4", "jti": "ID.abc"},
        wrong_kind_reason="wrong_audience",
    ),
    Provider(
        preset="descope",
        issuer="P2aBcDeFgHiJkLmNoPqRs",  # the project id: not a URL
        jwks_path="/v2/keys/P2aBcDeFgHiJkLmNoPqRs",
        header={"typ": None},
        claims={
            "sub": "K2AccessKeyId",
            "drn": "DS",
            "permissions": ["orders:read"],
            "roles": ["reader"],
            "tenants": {
                "T2tenant": {"roles": ["tenant-admin"], "permissions": ["orders:write"]},
                "T2other": {"roles": ["superuser"], "permissions": ["everything"]},
            },
            "dct": "T2tenant",
        },
        audiences=[],  # Descope session tokens usually carry no aud
        client_ids=["K2AccessKeyId"],
        require={"roles": ["tenant-admin"]},
        client_id="K2AccessKeyId",
        scopes="orders:read orders:write",  # never the other tenant's permissions
        roles="reader,tenant-admin",
        tenant="T2tenant",
        insufficient={"dct": "T2other"},  # roles of another tenant do not count here
        wrong_kind={"drn": "DSR"},  # a refresh token signed by the same key
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="scalekit",
        issuer="https://acme.scalekit.dev",
        jwks_path="/keys",
        header={"typ": "JWT"},
        claims={
            "sub": "m2morg_68315758685323697",
            "client_id": "m2morg_68315758685323697",
            "oid": "org_59615193906282635",
            "scopes": ["orders:read", "orders:write"],
            "aud": ["https://api.example"],
        },
        audiences=["https://api.example"],
        require={"scopes": ["orders:write"]},
        client_id="m2morg_68315758685323697",
        scopes="orders:read orders:write",
        roles="",
        tenant="org_59615193906282635",
        insufficient={"scopes": ["orders:read"]},
        wrong_kind={"aud": ["skc_other_client"]},
        wrong_kind_reason="wrong_audience",
    ),
    Provider(
        preset="stytch",
        issuer="stytch.com/project-test-7f2d",  # not a URL
        jwks_path="/v1/sessions/jwks/project-test-7f2d",
        header={"typ": None},
        claims={
            "sub": "m2m-client-test-d731954d",
            "aud": ["project-test-7f2d"],
            "scope": "read:orders write:orders",
            "department": "billing",  # Stytch custom claims sit at the top level
        },
        audiences=["project-test-7f2d"],
        require={"scopes": ["write:orders"]},
        client_id="m2m-client-test-d731954d",
        scopes="read:orders write:orders",
        roles="",
        insufficient={"scope": "read:orders"},
        wrong_kind={"aud": ["project-live-other"]},
        wrong_kind_reason="wrong_audience",
    ),
    Provider(
        preset="keycloak",
        issuer="https://sso.example.com/realms/acme",
        jwks_path="/realms/acme/protocol/openid-connect/certs",
        header={"typ": "JWT"},
        claims={
            "typ": "Bearer",
            "azp": "orders-service",
            "sub": "5f4c7e2a-0b1d-4c55-9a3e-9c1d2b7e8f10",
            "aud": "orders-api",
            "scope": "profile email",
            "realm_access": {"roles": ["orders-reader", "default-roles-acme"]},
            "resource_access": {"account": {"roles": ["manage-account"]}},
            "clientHost": "10.0.0.7",
        },
        audiences=["orders-api"],
        require={"roles": ["orders-reader"]},
        client_id="orders-service",
        scopes="profile email",
        roles="orders-reader,default-roles-acme",  # realm roles only, not other clients'
        insufficient={"realm_access": {"roles": ["default-roles-acme"]}},
        wrong_kind={"typ": "ID"},  # an id token from the same realm key
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="entra",
        issuer=f"https://login.microsoftonline.com/{TENANT_ID}/v2.0",
        jwks_path=f"/{TENANT_ID}/discovery/v2.0/keys",
        header={"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
        claims={
            "aud": "api://orders-api",
            "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "azpacr": "1",
            "oid": "4a2d9c1e-0000-4000-8000-000000000001",
            "sub": "4a2d9c1e-0000-4000-8000-000000000001",
            "roles": ["Orders.Read", "Orders.Write"],
            "tid": TENANT_ID,
            "ver": "2.0",
            "idtyp": "app",
        },
        audiences=["api://orders-api"],
        require={"roles": ["Orders.Write"]},
        client_id="6e74172b-be56-4843-9ff4-e66a39bb12e3",
        scopes="",
        roles="Orders.Read,Orders.Write",
        tenant=TENANT_ID,
        insufficient={"roles": ["Orders.Read"]},
        wrong_kind={"idtyp": "user", "scp": "Orders.Read"},  # a delegated (user) token
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="entra",
        issuer=f"https://sts.windows.net/{TENANT_ID}/",  # v1: trailing slash
        jwks_path=f"/{TENANT_ID}/discovery/keys",
        header={"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
        claims={
            "aud": "api://orders-api",
            "appid": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "appidacr": "1",
            "roles": ["Orders.Write"],
            "tid": TENANT_ID,
            "ver": "1.0",
        },
        audiences=["api://orders-api"],
        require={"roles": ["Orders.Write"]},
        client_id="6e74172b-be56-4843-9ff4-e66a39bb12e3",
        scopes="",
        roles="Orders.Write",
        tenant=TENANT_ID,
        insufficient={"roles": []},
        wrong_kind={"idtyp": "user"},
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="cognito",
        issuer="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI",
        jwks_path="/eu-west-1_AbCdEfGhI/.well-known/jwks.json",
        header={"typ": None},
        claims={
            "sub": "3m1v0p4qs8a2kcg7kd3o2bqsjf",
            "client_id": "3m1v0p4qs8a2kcg7kd3o2bqsjf",
            "token_use": "access",
            "scope": "orders-api/read orders-api/write",
            "version": 2,
        },
        audiences=[],  # Cognito access tokens carry no aud: check client_id instead
        client_ids=["3m1v0p4qs8a2kcg7kd3o2bqsjf"],
        require={"scopes": ["orders-api/write"]},
        client_id="3m1v0p4qs8a2kcg7kd3o2bqsjf",
        scopes="orders-api/read orders-api/write",
        roles="",
        insufficient={"scope": "orders-api/read"},
        wrong_kind={"token_use": "id", "aud": "3m1v0p4qs8a2kcg7kd3o2bqsjf"},
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="rfc9068",
        issuer="https://as.example.com",
        jwks_path="/.well-known/jwks.json",
        header={"typ": "at+jwt"},
        claims={
            "sub": "svc-billing",
            "client_id": "svc-billing",
            "aud": "https://api.example",
            "scope": "orders:read orders:write",
            "roles": ["auditor"],
        },
        audiences=["https://api.example"],
        require={"scopes": ["orders:write"], "roles": ["auditor"]},
        client_id="svc-billing",
        scopes="orders:read orders:write",
        roles="auditor",
        insufficient={"roles": []},
        wrong_kind={},
        wrong_kind_header={"typ": "JWT"},  # an OpenID Connect id token's typ
        wrong_kind_reason="wrong_token_type",
    ),
    Provider(
        preset="generic",
        issuer="https://idp.internal.example",
        jwks_path="/oauth/jwks",
        header={"typ": "JWT"},
        claims={
            "azp": "svc-reports",
            "sub": "svc-reports",
            "aud": ["https://api.example", "https://other.example"],
            "scp": "orders:read orders:write",
        },
        audiences=["https://api.example"],
        require={"any_scopes": ["orders:write", "admin"]},
        client_id="svc-reports",
        scopes="orders:read orders:write",
        roles="",
        insufficient={"scp": "orders:read"},
        wrong_kind={"aud": "svc-reports"},
        wrong_kind_reason="wrong_audience",
    ),
]


def provider_id(provider: Provider) -> str:
    return f"{provider.preset}:{provider.issuer.split('//')[-1][:30]}"


@pytest.fixture(scope="module")
def provider_key() -> SigningKey:
    return rsa_key(f"kid-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def provider_setup(request, aiohttp_server, make_gateway, provider_key):
    provider: Provider = request.param
    server = JwksServer(jwks_path=provider.jwks_path)
    server.keys = [provider_key]
    if provider.preset == "keycloak":  # Keycloak publishes an encryption key beside it
        server.behaviour.extra_keys = [rsa_key("enc-key").jwk(use="enc", alg="RSA-OAEP")]
    running = await aiohttp_server(server.app())
    server.url = str(running.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {
                "name": "idp",
                "issuer": provider.issuer,
                "jwks_uri": server.jwks_uri,  # explicit: loopback stands in for the provider
                "audiences": provider.audiences,
                "client_ids": provider.client_ids,
                "algorithms": ["RS256"],
                "preset": provider.preset,
            }
        ]
        config["forward"] = {"tenant": "X-Tenant"}
        config["routes"] = [
            {"name": "orders", "path": "/api/orders/**", "require": provider.require},
            {"name": "api", "path": "/api/**", "require": {}},
        ]

    gateway = await make_gateway(configure)
    return provider, gateway


def mint(
    provider: Provider,
    key: SigningKey,
    claims: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
) -> str:
    payload = {"iss": provider.issuer, "iat": now(), "exp": now() + 600, **provider.claims}
    payload.update(claims or {})
    payload = {name: value for name, value in payload.items() if value is not None}
    return key.sign(payload, header={**provider.header, **(header or {})})


@pytest.mark.parametrize("provider_setup", PROVIDERS, ids=provider_id, indirect=True)
async def test_provider_token_is_allowed_with_its_identity(provider_setup, provider_key):
    provider, gw = provider_setup
    response = await gw.get(
        "/api/orders/42", mint(provider, provider_key), headers={"X-Tenant": "spoofed"}
    )
    assert response.status == 200, await response.text()
    seen = await response.json()
    assert header_values(seen, "X-Client-Id") == [provider.client_id]
    assert header_values(seen, "X-Scopes") == [provider.scopes]
    assert header_values(seen, "X-Roles") == [provider.roles]
    assert header_values(seen, "X-Issuer") == [provider.issuer]
    assert header_values(seen, "X-Tenant") == ([provider.tenant] if provider.tenant else [])


@pytest.mark.parametrize("provider_setup", PROVIDERS, ids=provider_id, indirect=True)
async def test_provider_token_lacking_scope_or_role_is_forbidden(provider_setup, provider_key):
    provider, gw = provider_setup
    token = mint(provider, provider_key, provider.insufficient)
    assert (await gw.get("/api/orders/42", token)).status == 403
    assert (await gw.get("/api/anything", token)).status == 200  # still a valid token


@pytest.mark.parametrize("provider_setup", PROVIDERS, ids=provider_id, indirect=True)
async def test_wrong_kind_of_token_is_refused(provider_setup, provider_key):
    provider, gw = provider_setup
    token = mint(provider, provider_key, provider.wrong_kind, provider.wrong_kind_header)
    response = await gw.get("/api/anything", token)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].endswith('error="invalid_token"')
    assert gw.access_events()[-1]["reason"] == provider.wrong_kind_reason


async def test_issuer_strings_are_matched_byte_for_byte(make_gateway, provider_key, aiohttp_server):
    """Auth0's issuer has a trailing slash; the same string without it is another issuer."""
    provider = PROVIDERS[0]
    server = JwksServer()
    server.keys = [provider_key]
    running = await aiohttp_server(server.app())
    server.url = str(running.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {"name": "auth0", "issuer": provider.issuer, "jwks_uri": server.jwks_uri,
             "audiences": provider.audiences, "preset": "auth0"}
        ]  # fmt: skip

    gw = await make_gateway(configure)
    assert (await gw.get("/api/x", mint(provider, provider_key))).status == 200
    stripped = mint(provider, provider_key, {"iss": provider.issuer.rstrip("/")})
    assert (await gw.get("/api/x", stripped)).status == 401
    assert gw.access_events()[-1]["reason"] == "unknown_issuer"


async def test_cross_provider_key_substitution_is_refused(make_gateway, aiohttp_server):
    """Two issuers, two keys sharing a kid: Okta's key never verifies a token claiming Auth0."""
    auth0, okta = PROVIDERS[0], PROVIDERS[1]
    auth0_key, okta_key = rsa_key("shared-kid"), rsa_key("shared-kid")
    servers = {}
    for name, provider, key in (("auth0", auth0, auth0_key), ("okta", okta, okta_key)):
        server = JwksServer(jwks_path=provider.jwks_path)
        server.keys = [key]
        running = await aiohttp_server(server.app())
        server.url = str(running.make_url("")).rstrip("/")
        servers[name] = server

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {"name": name, "issuer": provider.issuer, "jwks_uri": servers[name].jwks_uri,
             "audiences": provider.audiences, "preset": name}
            for name, provider in (("auth0", auth0), ("okta", okta))
        ]  # fmt: skip

    gw = await make_gateway(configure)
    assert (await gw.get("/api/x", mint(auth0, auth0_key))).status == 200
    assert (await gw.get("/api/x", mint(okta, okta_key))).status == 200
    forged = mint(auth0, okta_key)  # Auth0's claims, signed with Okta's key
    assert (await gw.get("/api/x", forged)).status == 401
    assert gw.access_events()[-1]["reason"] == "bad_signature"


async def gateway_for(make_gateway, aiohttp_server, key, issuer_block: dict[str, Any], *keys):
    server = JwksServer()
    server.keys = [key, *keys]
    running = await aiohttp_server(server.app())
    server.url = str(running.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [{"name": "idp", "jwks_uri": server.jwks_uri, **issuer_block}]
        config["forward"] = {"tenant": "X-Tenant"}
        config["routes"] = [
            {"name": "reports", "path": "/api/reports/**", "require": {"roles": ["report-viewer"]}},
            {"name": "api", "path": "/api/**", "require": {}},
        ]

    return await make_gateway(configure)


async def test_a_custom_claim_layout_needs_no_code(make_gateway, aiohttp_server, provider_key):
    """Auth0 with roles in a namespaced (URL-named) claim and a gty guard, from config alone."""
    gw = await gateway_for(
        make_gateway, aiohttp_server, provider_key,
        {
            "issuer": "https://acme.eu.auth0.com/",
            "audiences": ["https://api.example"],
            "preset": "auth0",
            "claims": {"roles": [r"https://acme\.com/roles"], "tenant": None},
            "token_type": {"claims": {"gty": "client-credentials"}},
        },
    )  # fmt: skip
    auth0 = PROVIDERS[0]
    token = mint(auth0, provider_key, {"https://acme.com/roles": ["report-viewer"], "org_id": "o1"})
    response = await gw.get("/api/reports/q3", token)
    assert response.status == 200
    seen = await response.json()
    assert header_values(seen, "X-Roles") == ["report-viewer"]
    assert header_values(seen, "X-Tenant") == []  # `tenant: null` removed the preset's org_id
    assert header_values(seen, "X-Client-Id") == ["Xk2Lq9"]  # the rest of the preset stays
    no_gty = mint(auth0, provider_key, {"https://acme.com/roles": ["report-viewer"], "gty": None})
    assert (await gw.get("/api/reports/q3", no_gty)).status == 401
    assert gw.access_events()[-1]["reason"] == "wrong_token_type"


async def test_keycloak_client_roles_by_override(make_gateway, aiohttp_server, provider_key):
    keycloak = next(p for p in PROVIDERS if p.preset == "keycloak")
    gw = await gateway_for(
        make_gateway, aiohttp_server, provider_key,
        {
            "issuer": keycloak.issuer,
            "audiences": keycloak.audiences,
            "preset": "keycloak",
            "claims": {
                "roles": [
                    {"path": "realm_access.roles", "type": "array"},
                    {"path": "resource_access.orders-api.roles", "type": "array"},
                ]
            },
        },
    )  # fmt: skip
    claims = {
        "resource_access": {"orders-api": {"roles": ["report-viewer"]}, "account": {"roles": ["x"]}}
    }
    response = await gw.get("/api/reports/q3", mint(keycloak, provider_key, claims))
    assert response.status == 200
    roles = header_values(await response.json(), "X-Roles")
    assert roles == ["orders-reader,default-roles-acme,report-viewer"]  # never account's "x"


async def test_override_types_are_enforced(make_gateway, aiohttp_server, provider_key):
    okta = PROVIDERS[1]
    gw = await gateway_for(
        make_gateway, aiohttp_server, provider_key,
        {"issuer": okta.issuer, "audiences": okta.audiences, "preset": "okta",
         "claims": {"roles": [{"path": "groups", "type": "array"}]}},
    )  # fmt: skip
    ok = mint(okta, provider_key, {"groups": ["report-viewer"]})
    assert (await gw.get("/api/reports/q3", ok)).status == 200
    as_string = mint(okta, provider_key, {"groups": "report-viewer"})  # never split into letters
    assert (await gw.get("/api/reports/q3", as_string)).status == 401
    assert gw.access_events()[-1]["reason"] == "invalid_claim"


async def test_tokens_without_kid_try_a_bounded_number_of_keys(make_gateway, aiohttp_server):
    issuer = "https://kidless.example"
    keys = [SigningKey(None, "RS256", rsa_key(None).private) for _ in range(6)]
    server = JwksServer()
    server.keys = keys
    running = await aiohttp_server(server.app())
    server.url = str(running.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"] = [
            {"name": "idp", "issuer": issuer, "jwks_uri": server.jwks_uri,
             "audiences": ["https://api.example"], "preset": "generic"}
        ]  # fmt: skip

    gw = await make_gateway(configure)
    claims = {"iss": issuer, "aud": "https://api.example", "sub": "svc", "exp": now() + 60}
    assert (await gw.get("/api/x", keys[2].sign(claims, header={"typ": None}))).status == 200
    # The 6th key is beyond the 4 candidates tried: refused, however long the key set.
    assert (await gw.get("/api/x", keys[5].sign(claims, header={"typ": None}))).status == 401
    assert gw.access_events()[-1]["reason"] == "bad_signature"
