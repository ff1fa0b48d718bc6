"""The verified-token cache alone, then inside the verifier (real keys and signatures)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from m2mgate.auth.principal import Principal
from m2mgate.auth.token_cache import (
    TokenCacheStats,
    VerifiedTokenCache,
    entry_size_bytes,
    token_digest,
)
from m2mgate.auth.verifier import TokenVerifier
from m2mgate.errors import BadSignature, Expired
from tests.support.rejections import refused
from tests.support.tokens import claims_for
from tests.unit.auth.test_verifier import ISSUER, Keys, policy

KEY = object()
DT, DA, DB, DC = (token_digest(name) for name in ("t", "a", "b", "c"))


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
    tokens.put(DT, principal(expires_at=2000.0), KEY)  # type: ignore[arg-type]
    assert tokens.get(DT, 1999.9) is not None
    assert tokens.get(DT, 2000.0) is None  # at exp: never served, no leeway
    assert len(tokens) == 0
    assert tokens.get(DT, 1000.0) is None  # dropped, not merely skipped
    assert (tokens.stats.hits, tokens.stats.misses) == (1, 2)
    assert current.asked == ["main"]


def test_a_key_that_left_the_key_set_ends_the_entry():
    tokens, current = cache()
    tokens.put(DT, principal(), KEY)  # type: ignore[arg-type]
    current.keys.clear()
    assert tokens.get(DT, 1000.0) is None
    current.keys.add(id(KEY))
    assert tokens.get(DT, 1000.0) is None  # gone for good: the full path decides again


def test_bounded_lru():
    tokens, _ = cache(max_entries=2)
    for digest in (DA, DB):
        tokens.put(digest, principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get(DA, 1000.0) is not None  # a is now the most recently used
    tokens.put(DC, principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get(DB, 1000.0) is None  # b was least recently used: evicted
    assert tokens.get(DA, 1000.0) is not None
    assert tokens.get(DC, 1000.0) is not None
    assert tokens.stats.evictions == 1
    assert len(tokens) == 2


def test_zero_entries_is_off():
    tokens, _ = cache(max_entries=0)
    tokens.put(DT, principal(), KEY)  # type: ignore[arg-type]
    assert tokens.get(DT, 1000.0) is None
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
        with refused(BadSignature):
            await verifier.verify(forged)
    assert len(tokens) == 0


async def test_cached_tokens_expire_exactly_like_uncached_ones(world, rsa_signer):
    verifier, _, clock, _, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 60))
    await verifier.verify(token)
    clock.now += 62  # past exp, inside the 5 s leeway: the full path still accepts
    assert await verifier.verify(token)
    clock.now += 10  # past exp + leeway
    with refused(Expired):
        await verifier.verify(token)


async def test_a_removed_key_sends_cached_tokens_back_to_the_full_path(world, rsa_signer):
    verifier, keys, clock, present, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    await verifier.verify(token)
    present["on"] = False  # the key left the usable key set
    await verifier.verify(token)  # the full path ran again (and here the key still verifies)
    assert keys.calls == 2


async def test_explain_traces_bypass_the_cache(world, rsa_signer):
    """explain builds its stack without a cache (config/gatekeeper.py, explain.py), so its
    trace shows every step even for a token the gateway's cache holds; the verifier itself
    never turns its cache off for an observer (next test)."""
    from m2mgate.auth.trace import Trace

    verifier, keys, clock, _, _ = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    await verifier.verify(token)
    explaining = TokenVerifier({ISSUER: policy()}, keys, clock)  # as explain builds it
    trace = Trace()
    await explaining.verify(token, trace)
    assert keys.calls == 2
    assert [step.name for step in trace.steps][-1] == "signature"


async def test_an_observer_sees_the_cache_answer_a_repeat_token(world, rsa_signer):
    from m2mgate.auth.trace import Step, Trace

    verifier, keys, clock, _, tokens = world
    token = rsa_signer.sign(claims_for(ISSUER, iat=clock.now, exp=clock.now + 300))
    first = await verifier.verify(token)
    trace = Trace()
    assert await verifier.verify(token, trace) is first
    assert [(step.step, step.value) for step in trace.steps] == [(Step.CACHED, first)]
    assert (keys.calls, tokens.stats.hits) == (1, 1)


# --- the byte bound (issue #8 item 10) ---------------------------------------------------------


def sized(scopes: tuple[str, ...] = ("read",), expires_at: float = 2000.0) -> Principal:
    return Principal(
        issuer_name="main", issuer=ISSUER, client_id="svc", subject="svc", scopes=scopes,
        roles=(), tenant=None, expires_at=expires_at, claims={},
    )  # fmt: skip


def byte_bound(entries: int = 2) -> int:
    """A budget that holds exactly `entries` entries of `sized()` principals."""
    return entry_size_bytes(sized()) * entries


def test_evicts_least_recently_used_until_under_the_byte_bound():
    tokens = VerifiedTokenCache(100, Current(), TokenCacheStats(), max_bytes=byte_bound(2))
    tokens.put(DA, sized(), KEY)  # type: ignore[arg-type]
    tokens.put(DB, sized(), KEY)  # type: ignore[arg-type]
    assert tokens.get(DA, 1000.0) is not None  # b is now the least recently used
    tokens.put(DC, sized(), KEY)  # type: ignore[arg-type]
    assert tokens.get(DB, 1000.0) is None
    assert (len(tokens), tokens.stats.evictions) == (2, 1)
    assert tokens.size_bytes == byte_bound(2)


def test_one_big_entry_evicts_as_many_small_ones_as_it_needs():
    big = sized(scopes=tuple(f"scope-{number}" for number in range(50)))
    budget = entry_size_bytes(big) + entry_size_bytes(sized())
    tokens = VerifiedTokenCache(100, Current(), TokenCacheStats(), max_bytes=budget)
    small = [token_digest(f"small-{number}") for number in range(5)]
    for digest in small:
        tokens.put(digest, sized(), KEY)  # type: ignore[arg-type]
    assert len(tokens) == 5  # five small ones fit: the entry bound is 100
    tokens.put(DT, big, KEY)  # type: ignore[arg-type]
    assert tokens.get(DT, 1000.0) is big
    assert len(tokens) == 2 and tokens.stats.evictions == 4
    assert tokens.get(small[-1], 1000.0) is not None  # the most recent small one stayed
    assert tokens.size_bytes <= budget


def test_an_entry_larger_than_the_whole_budget_is_not_cached():
    tokens = VerifiedTokenCache(100, Current(), TokenCacheStats(), max_bytes=byte_bound(1) - 1)
    tokens.put(DA, sized(), KEY)  # type: ignore[arg-type]
    assert len(tokens) == 0 and tokens.size_bytes == 0 and tokens.stats.evictions == 0


def test_sizes_are_given_back_when_entries_leave():
    tokens = VerifiedTokenCache(100, Current(), TokenCacheStats(), max_bytes=byte_bound(3))
    tokens.put(DA, sized(expires_at=1500.0), KEY)  # type: ignore[arg-type]
    tokens.put(DB, sized(), KEY)  # type: ignore[arg-type]
    tokens.put(DB, sized(), KEY)  # type: ignore[arg-type]  # a second miss of one token
    assert (len(tokens), tokens.size_bytes) == (2, byte_bound(2))
    assert tokens.get(DA, 1600.0) is None  # expired: dropped
    assert tokens.size_bytes == byte_bound(1)


def test_zero_bytes_means_no_byte_bound():
    tokens = VerifiedTokenCache(3, Current(), TokenCacheStats(), max_bytes=0)
    for number in range(5):
        tokens.put(token_digest(str(number)), sized(), KEY)  # type: ignore[arg-type]
    assert len(tokens) == 3  # only the entry bound applies


def test_the_estimate_counts_what_an_entry_owns_once():
    base = entry_size_bytes(sized(scopes=()))
    one = entry_size_bytes(sized(scopes=("x" * 1000,)))
    # The scope string is in `scopes` and in `scope_set`, counted once; the set and the tuple
    # are new objects of their own.
    assert 1000 < one - base < 1000 + 600
    claims = {"groups": ["a" * 500, "b" * 500], "org": "acme"}
    with_claims = Principal(
        issuer_name="main", issuer=ISSUER, client_id="svc", subject="svc", scopes=(),
        roles=(), tenant=None, expires_at=2000.0, claims=MappingProxyType(claims),
    )  # fmt: skip
    assert entry_size_bytes(with_claims) - base > 1000
