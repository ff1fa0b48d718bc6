"""Claim layouts and token-type guards per identity provider, as data (PROVIDERS.md).

A preset says where a provider's machine-to-machine access tokens carry the client identity,
scopes, roles and tenant, and what tells them from the id or refresh tokens the same key signs.
Every part can be replaced per issuer in config (`claims:`, `token_type:`), so a provider that
shapes tokens differently needs no code.
"""

from __future__ import annotations

from dataclasses import dataclass

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.claims import ClaimKind, ClaimLayout, ClaimRef, ClaimSource


@dataclass(frozen=True, slots=True)
class Preset:
    layout: ClaimLayout
    guard: TokenTypeGuard
    summary: str  # for docs and `m2mgate explain`


def _space(*path: str | ClaimRef) -> ClaimSource:
    return ClaimSource(tuple(path), ClaimKind.SPACE_DELIMITED)


def _array(*path: str | ClaimRef) -> ClaimSource:
    return ClaimSource(tuple(path), ClaimKind.ARRAY)


_SCOPE = _space("scope")
_ROLES = _array("roles")
_DCT = ClaimRef("dct")

PRESETS: dict[str, Preset] = {
    "generic": Preset(
        ClaimLayout(
            client_id=(("client_id",), ("azp",), ("sub",)),
            # `scp` is an array at Okta and a string at Entra: both forms, documented.
            scopes=(
                _SCOPE,
                ClaimSource(("scp",), ClaimKind.ARRAY_OR_SPACE_DELIMITED),
                _array("scopes"),
            ),
            roles=(_ROLES,),
        ),
        TokenTypeGuard(),
        "any OAuth 2.0 issuer: common claim names, each read by its usual type",
    ),
    # RFC 9068 §2.2: `client_id` is required; §2.2.3 `scope`; §2.1/§4: header typ `at+jwt`
    # stops an id token posing as an access token.
    "rfc9068": Preset(
        ClaimLayout(client_id=(("client_id",),), scopes=(_SCOPE,), roles=(_ROLES,)),
        TokenTypeGuard(header_typ=frozenset({"at+jwt", "application/at+jwt"})),
        "RFC 9068 JWT access tokens (header typ at+jwt required)",
    ),
    # Auth0: `azp` (and `client_id` in its RFC 9068 dialect); `sub` is `<client_id>@clients`.
    # Scopes in `scope`; with RBAC on, API permissions also arrive as a `permissions` array.
    "auth0": Preset(
        ClaimLayout(
            client_id=(("azp",), ("client_id",)),
            scopes=(_SCOPE, _array("permissions")),
            roles=(),
            tenant=("org_id",),
        ),
        TokenTypeGuard(),
        "Auth0 M2M tokens (azp; scope + RBAC permissions; org_id)",
    ),
    # Okta custom authorization servers: `cid` is the client, `scp` an array; no typ header.
    "okta": Preset(
        ClaimLayout(client_id=(("cid",),), scopes=(_array("scp"),), roles=()),
        TokenTypeGuard(),
        "Okta custom authorization server tokens (cid; scp array)",
    ),
    # Descope: `dsub` (when present) then `sub`; permissions and roles, top level and per the
    # current tenant `dct`. `drn: DS` is a session token; `DSR` (a refresh token signed with the
    # same key) must never pass as an access token.
    "descope": Preset(
        ClaimLayout(
            client_id=(("dsub",), ("sub",)),
            scopes=(_array("permissions"), _array("tenants", _DCT, "permissions")),
            roles=(_ROLES, _array("tenants", _DCT, "roles")),
            tenant=("dct",),
        ),
        TokenTypeGuard(claims=((("drn",), frozenset({"DS"})),)),
        "Descope session tokens (drn DS; permissions/roles incl. the dct tenant's)",
    ),
    # Scalekit: `client_id` (m2morg_...), `scopes` array, organization in `oid`.
    "scalekit": Preset(
        ClaimLayout(
            client_id=(("client_id",), ("sub",)),
            scopes=(_array("scopes"),),
            roles=(_ROLES,),
            tenant=("oid",),
        ),
        TokenTypeGuard(),
        "Scalekit M2M tokens (client_id; scopes array; oid)",
    ),
    # Stytch: `sub` is the M2M client (m2m-client-...), `scope` a string, `aud` an array.
    "stytch": Preset(
        ClaimLayout(client_id=(("sub",),), scopes=(_SCOPE,), roles=()),
        TokenTypeGuard(),
        "Stytch M2M tokens (sub; scope string)",
    ),
    # Keycloak service accounts: `azp` (newer: `client_id`), realm roles. Client roles live
    # under `resource_access.<client>.roles`: add the one for your API in `claims.roles` (roles
    # of unrelated clients are never merged in by default: their names may collide with yours).
    # Payload `typ: Bearer` marks an access token (`ID`, `Refresh` otherwise).
    "keycloak": Preset(
        ClaimLayout(
            client_id=(("azp",), ("client_id",)),
            scopes=(_SCOPE,),
            roles=(_array("realm_access", "roles"),),
        ),
        TokenTypeGuard(claims=((("typ",), frozenset({"Bearer"})),)),
        "Keycloak service-account tokens (azp; realm_access.roles; typ Bearer)",
    ),
    # Microsoft Entra ID app-only tokens: `azp` (v2) / `appid` (v1); app roles in `roles`;
    # `scp` (string) only in delegated tokens; tenant `tid`; `idtyp: app` when enabled.
    "entra": Preset(
        ClaimLayout(
            client_id=(("azp",), ("appid",)),
            scopes=(_space("scp"),),
            roles=(_ROLES,),
            tenant=("tid",),
        ),
        TokenTypeGuard(claims_when_present=((("idtyp",), frozenset({"app"})),)),
        "Microsoft Entra ID app tokens (azp/appid; roles; tid; idtyp app)",
    ),
    # AWS Cognito: `client_id`, `scope` string of `resourceServer/scope`, no `aud` in access
    # tokens (configure `audiences: []` plus `client_ids`); `token_use: access` (never `id`).
    "cognito": Preset(
        ClaimLayout(client_id=(("client_id",), ("sub",)), scopes=(_SCOPE,), roles=()),
        TokenTypeGuard(claims=((("token_use",), frozenset({"access"})),)),
        "AWS Cognito access tokens (client_id; scope; token_use access)",
    ),
}
