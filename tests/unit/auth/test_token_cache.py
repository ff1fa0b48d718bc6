"""The verified-token cache alone, then inside the verifier (real keys and signatures)."""

from __future__ import annotations

import pytest

from m2mgate.auth.principal import Principal
from m2mgate.auth.token_cache import TokenCacheStats, VerifiedTokenCache
from m2mgate.auth.verifier import TokenVerifier
from m2mgate.errors import BadSignature, Expired
from tests.support.tokens import claims_for
from tests.unit.auth.test_verifier import ISSUER, Keys, policy

KEY = object()


def principal(expires_at: float = 2000.0, issuer_name: str = "main") -> Principal:
    return Principal(
        issuer_name=issuer_name, issuer=ISSUER, client_id="svc", subject="svc",
        scopes=("read",), roles=(), tenant=None, expires_at=expires_at, claims={},
    )  # fmt: skip


class Current:
    def __init__(self) -> None:
        self.keys: set[int] = {id(KEY)}
        self.asked: list[str] = []

    def __call__(self, issuer_name: str, key: object) -> bool:
        self.asked.append(issuer_name)
        return id(key) in self.keys


def cache(max_entries: int = 3) -> tuple[VerifiedTokenCache, Current]:
    current = Current()
    return VerifiedTokenCache(max_entries, current, TokenCacheStats()), current  # type: ignore[arg-type]


def test_hit_until_exp_then_miss_and_gone():
    tokens, current = cache()
    tokens.put("t", principal(expires_at=2000.0), KEY)  # type: ignore[arg-type]
    assert tokens.get("t", 1999.9) is not None
    assert tokens.get("t", 2000.0) is None  # at exp: never served, no leeway
    assert len(tokens) == 0
    assert tokens.get("t", 1000.0) is None  # dropped, not merely skipped
    assert (tokens.stats.hits, tokens.stats.misses) == (1, 2)
    assert current.asked == ["main"]


def test_a_key_that_left_the_key_set_ends_the_entry():
    tokens, current = cache()
    tokens.put("t", principal(), KEY)  # type: ignore[arg-type]
    current.keys.clear()
    assert tokens.get("t", 1000.0) is None
    current.keys.add(id(KEY))
    assert tokens.get("t", 1000.0) is None  # gone for good: the full path decides again


def test_bounded_lru():
    tokens, _ = cache(max_entries=2)
    for name in ("a", "b"):
        tokens.put(name, principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get("a", 1000.0) is not None  # a is now the most recently used
    tokens.put("c", principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get("b", 1000.0) is None  # b was least recently used: evicted
    assert tokens.get("a", 1000.0) is not None
    assert tokens.get("c", 1000.0) is not None
    assert tokens.stats.evictions == 1
    assert len(tokens) == 2


def test_zero_entries_is_off():
    tokens, _ = cache(max_entries=0)
    tokens.put("t", principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get("t", 1000.0) is None
    assert len(tokens) == 0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(rsa_signer):
    keys = Keys(rsa_signer)
    clock = Clock(1_000_000.0)
    present = {"on": True}
    tokens = VerifiedTokenCache(
        100, lambda name, key: present["on"] and key in keys.keyset.keys, TokenCacheStats()
    )
    verifier = TokenVerifier({ISSUER: policy()}, keys, clock, tokens)
    return verifier, keys, clock, present, tokens


async def test_the_verifier_checks_a_repeat_token_once(world, rsa_signer):
    verifier, keys, clock, _, tokens = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    assert keys.calls == 1  # the second call looked up no key and checked no signature
    assert tokens.stats.hits == 1


async def test_the_verifier_never_caches_failures(world, rsa_signer):
    verifier, _keys, clock, _, tokens = world
    good = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(BadSignature):
            await verifier.verify(forged)
    assert len(tokens) == 0


async def test_cached_tokens_expire_exactly_like_uncached_ones(world, rsa_signer):
    verifier, _, clock, _, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 60))
    await verifier.verify(token)
    clock.now += 62  # past exp, inside the 5 s leeway: the full path still accepts
    assert await verifier.verify(token)
    clock.now += 10  # past exp + leeway
    with pytest.raises(Expired):
        await verifier.verify(token)


async def test_a_removed_key_sends_cached_tokens_back_to_the_full_path(world, rsa_signer):
    verifier, keys, clock, present, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    await verifier.verify(token)
    present["on"] = False  # the key left the usable key set
    await verifier.verify(token)  # the full path ran again (and here the key still verifies)
    assert keys.calls == 2


async def test_explain_traces_bypass_the_cache(world, rsa_signer):
    from m2mgate.auth.trace import Trace

    verifier, keys, clock, _, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    await verifier.verify(token)
    trace = Trace()
    await verifier.verify(token, trace)
    assert keys.calls == 2
    assert [step.name for step in trace.steps][-1] == "signature"
