"""What a principal keeps of its claims: exactly what the configured paths read (issue #8
item 10). Identity headers and claim rules must come out the same as with every claim kept."""

from __future__ import annotations

from typing import Any

import pytest

from m2mgate.auth.claim_projection import claims_read_by
from m2mgate.auth.claims import build_principal, lookup_claim, parse_claim_path
from m2mgate.auth.policy import evaluate
from m2mgate.config.compiling import compile_settings, validate_tree
from m2mgate.proxy.headers import identity_headers

CLAIMS: dict[str, Any] = {
    "iss": "https://issuer.example",
    "sub": "svc",
    "client_id": "svc",
    "exp": 2_000_000_000,
    "scope": "read write",
    "dct": "t1",
    "other": "t2",
    "tenants": {"t1": {"roles": ["admin"]}, "t2": {"roles": ["viewer"]}},
    "t1": {"plan": "gold"},
    "https://example.com/roles": ["ops"],
    "realm_access": {"roles": ["reader"]},
    "env": "prod",
    "flag": True,
    "noise": ["x" * 100] * 50,
}

PATHS = [
    "env",
    "flag",
    "realm_access.roles",
    "tenants.{dct}.roles",  # a reference in the middle: `dct` and `tenants`
    "{dct}.plan",  # a reference first: the claim named by dct's value (`t1`)
    "https://example\\.com/roles",
    "missing.claim",
    "{missing}.x",
]


def test_the_names_a_config_reads():
    projection = claims_read_by(parse_claim_path(path) for path in PATHS)
    assert projection.names == {
        "env", "flag", "realm_access", "tenants", "dct", "https://example.com/roles", "missing",
    }  # fmt: skip
    assert projection.naming_claims == ("dct", "missing")
    kept = projection.project(CLAIMS)
    assert set(kept) == {
        "env", "flag", "realm_access", "tenants", "dct", "t1", "https://example.com/roles",
    }  # fmt: skip
    assert kept["tenants"] is CLAIMS["tenants"]  # shared, not copied


@pytest.mark.parametrize("path", PATHS)
def test_every_configured_path_reads_the_same_value(path):
    parsed = parse_claim_path(path)
    kept = claims_read_by([parsed]).project(CLAIMS)
    assert lookup_claim(kept, parsed) == lookup_claim(CLAIMS, parsed)


def test_a_reference_to_a_non_string_keeps_nothing_more():
    projection = claims_read_by([parse_claim_path("{flag}.x")])
    assert projection.project(CLAIMS) == {"flag": True}


def test_no_paths_keep_no_claims():
    assert claims_read_by([]).project(CLAIMS) == {}


def test_headers_and_claim_rules_are_what_they_were_with_every_claim():
    config = {
        "upstream": {"url": "http://127.0.0.1:3000"},
        "issuers": [
            {
                "name": "local",
                "issuer": CLAIMS["iss"],
                "jwks_uri": "https://issuer.example/j",
                "audiences": [],
                "algorithms": ["RS256"],
                "preset": "generic",
            }
        ],
        "forward": {
            "claims": {"X-Tenant-Roles": "tenants.{dct}.roles", "X-Plan": "{dct}.plan"},
        },
        "routes": [
            {
                "name": "a",
                "path": "/a/**",
                "require": {"claims": {"env": "prod", "https://example\\.com/roles": "ops"}},
            },
            {"name": "b", "path": "/b/**", "require": {"claims": {"flag": True, "env": "dev"}}},
            {"name": "c", "path": "/c/**", "require": {"claims": {"realm_access.roles": "x"}}},
        ],
    }
    settings = compile_settings(validate_tree(config))
    layout = settings.issuers[0].policy.layout
    facts = {"issuer_name": "local", "issuer": CLAIMS["iss"], "client_id": "svc"}
    full = build_principal(dict(CLAIMS), layout, **facts)
    kept = settings.principal_claims.project(CLAIMS)
    projected = build_principal(dict(CLAIMS), layout, **facts, kept_claims=kept)
    assert "noise" not in projected.claims and "noise" in full.claims
    assert identity_headers(settings.forward, projected) == identity_headers(settings.forward, full)
    assert ("X-Plan", "gold") in identity_headers(settings.forward, projected)
    for route in settings.routes.routes:
        assert route.requirement is not None
        assert evaluate(route.requirement, projected) == evaluate(route.requirement, full)
    assert [ok for _, ok in evaluate(settings.routes.routes[0].requirement, projected)] == [
        True,
        True,
    ]
