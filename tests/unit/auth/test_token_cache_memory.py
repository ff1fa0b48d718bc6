"""Issue #8 item 10: the verified-token cache's real memory, measured with tracemalloc.

The scenario of the review: 1,200 distinct valid 7.7 KB tokens with ~480 claims each, decided by
the real decision stack (config compiled as the gateway compiles it). Each entry used to keep
the token string and the whole claims dict: ~60 KiB per entry, 70 MiB for these 1,200, far past
any budget. Now the cache must stay within `limits.token_cache_max_bytes` (plus a small margin
for the OrderedDict's table), and its per-entry estimate must track what tracemalloc measures.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import pytest

from m2mgate.auth.token_cache import TokenCacheStats, VerifiedTokenCache
from m2mgate.config.compiling import Settings, compile_settings, validate_tree
from m2mgate.config.gatekeeper import build_gatekeeper
from m2mgate.keys.keyset import build_keyset
from tests.support.tokens import SigningKey, claims_for, ec_key

ISSUER = "https://issuer.example"
TOKENS = 1200
DEFAULT_BUDGET = 32 * 1024 * 1024
MARGIN = 128 * 1024  # the OrderedDict's table and the loop's own bookkeeping


def settings(limits: dict[str, Any], forward_claims: dict[str, str] | None = None) -> Settings:
    return compile_settings(
        validate_tree(
            {
                "upstream": {"url": "http://127.0.0.1:3000"},
                "issuers": [
                    {
                        "name": "local",
                        "issuer": ISSUER,
                        "jwks_uri": ISSUER + "/jwks",
                        "audiences": ["https://api.example"],
                        "algorithms": ["ES256"],
                        "preset": "rfc9068",
                    }
                ],
                # One claim rule and one forwarded claim: the principal keeps those two claims.
                "forward": {"claims": forward_claims or {"X-Org": "org"}},
                "routes": [
                    {"name": "api", "path": "/api/**", "require": {"claims": {"env": "prod"}}}
                ],
                "limits": limits,
            }
        )
    )


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return ec_key("ec-1")  # ES256: minting 1,200 tokens takes a fraction of a second


@pytest.fixture(scope="module")
def authorizations(signer: SigningKey) -> list[bytes]:
    """1,200 distinct tokens of ~7.7 KB, each with 480 small claims besides the usual ones.
    Kept as bytes: each request decodes its own header string, as the listener does."""
    headers = []
    for index in range(TOKENS):
        extra = {f"c{number:03d}": number * 7 + index for number in range(480)}
        token = signer.sign(claims_for(ISSUER, org="acme", env="prod", **extra))
        headers.append(f"Bearer {token}".encode())
    assert 7500 < len(headers[0]) < 8192  # 7.7 KB: under the default max_token_bytes
    return headers


async def fill(settings: Settings, signer: SigningKey, headers: list[bytes]) -> tuple[int, Any]:
    """Decide every request once; the memory still held afterwards, and the cache."""
    keyset = build_keyset({"keys": [signer.jwk()]}, frozenset({"ES256"}))

    async def keys(name: str, kid: str | None, alg: str) -> Any:
        return keyset.candidates(kid, alg)

    cache = VerifiedTokenCache(
        settings.token_cache_entries,
        lambda name, key: True,
        TokenCacheStats(),
        settings.token_cache_max_bytes,
    )
    gatekeeper = build_gatekeeper(settings, keys, time.time, cache)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for header in headers:
            decision = await gatekeeper.decide("GET", "/api/orders", "", [header.decode()])
            assert decision.is_allowed
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return grown, cache


async def test_the_default_budget_holds_the_review_scenario(signer, authorizations):
    grown, cache = await fill(settings({}), signer, authorizations)
    assert grown <= DEFAULT_BUDGET + MARGIN, f"{grown / 2**20:.1f} MiB for {len(cache)} entries"
    assert len(cache) == TOKENS  # all fit: the bound costs no hits here
    per_entry = grown / len(cache)
    assert per_entry < 4096, f"{per_entry:.0f} bytes per entry (was ~60 KiB)"
    # The estimate tracks reality: within a factor of 1.5 either way (it leaves out the
    # allocator's rounding, so it runs a little low).
    assert grown / 1.5 <= cache.size_bytes <= grown * 1.5, (cache.size_bytes, grown)
    assert settings({}).token_cache_max_bytes == DEFAULT_BUDGET


async def test_a_small_byte_budget_binds_before_the_entry_bound(signer, authorizations):
    budget = 256 * 1024
    limited = settings({"token_cache_max_bytes": budget})
    grown, cache = await fill(limited, signer, authorizations[: TOKENS // 2])
    assert cache.size_bytes <= budget
    assert grown <= budget + MARGIN, f"{grown / 1024:.0f} KiB over a {budget // 1024} KiB budget"
    assert 0 < len(cache) < TOKENS // 2
    assert cache.stats.evictions == TOKENS // 2 - len(cache)


async def test_the_cached_principal_keeps_only_the_claims_config_reads(signer, authorizations):
    _, cache = await fill(settings({}), signer, authorizations[:1])
    ((digest, (principal, _, _)),) = cache._entries.items()
    assert isinstance(digest, bytes) and len(digest) == 32  # a SHA-256, never the token
    assert dict(principal.claims) == {"org": "acme", "env": "prod"}
    assert principal.scopes == ("read:data",)
    assert principal.client_id == "svc-orders"


@pytest.mark.parametrize(
    ("shape", "forward_claims"),
    [
        ({"scope": " ".join(f"scope-{number}" for number in range(500))}, None),
        ({"roles": [f"role-{number}" for number in range(400)]}, None),
        ({"tenants": {f"t{number}": [number, "ab"] for number in range(150)}}, {"X-T": "tenants"}),
    ],
    ids=["500 scopes", "400 roles", "a big forwarded claim"],
)
async def test_the_estimate_tracks_heavy_principals(signer, shape, forward_claims):
    """Principals that stay big after projection (their scopes, roles or a forwarded claim
    are big): the byte bound only holds if the estimate is right for them too."""
    headers = [
        f"Bearer {signer.sign(claims_for(ISSUER, org='acme', env='prod', jti=str(n), **shape))}".encode()
        for n in range(200)
    ]
    grown, cache = await fill(settings({}, forward_claims), signer, headers)
    assert cache.size_bytes / len(cache) > 20_000  # heavy indeed
    assert grown / 1.5 <= cache.size_bytes <= grown * 1.5, (cache.size_bytes, grown)
