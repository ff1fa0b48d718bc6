"""The key cache state machine, driven by a fake clock and a scripted fetch (no sockets)."""

import asyncio

import pytest

from m2mgate.errors import DisallowedAlgorithm, KeysUnavailable, UnknownKey
from m2mgate.keys.cache import CachePolicy, KeyCache
from m2mgate.keys.fetcher import FetchFailed
from m2mgate.keys.keyset import build_keyset
from m2mgate.keys.source import FetchedKeys
from m2mgate.keys.ttl import TtlBounds

ALGS = frozenset({"RS256", "ES256"})
POLICY = CachePolicy(
    ttl=TtlBounds(min_seconds=300, max_seconds=86400, default_seconds=600),
    refetch_cooldown_seconds=30,
    max_stale_seconds=3600,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Each fetch returns the current key set or raises the current failure."""

    def __init__(self, *signers) -> None:
        self.signers = list(signers)
        self.failure: FetchFailed | None = None
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.max_age: float | None = 600

    async def fetch(self) -> FetchedKeys:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        keyset = build_keyset({"keys": [s.jwk() for s in self.signers]}, ALGS)
        return FetchedKeys(keyset, self.max_age, "http://127.0.0.1/jwks")


class Recorder:
    def __init__(self) -> None:
        self.results: list[str] = []

    def fetch_finished(self, issuer_name, result, detail, fetched) -> None:
        self.results.append(result)


@pytest.fixture
def clock():
    return Clock()


def make_cache(source, clock, policy=POLICY, jitter=lambda: 0.5):
    recorder = Recorder()
    cache = KeyCache("local", source.fetch, policy, recorder, clock, jitter)
    return cache, recorder


async def test_cold_cache_answers_503_with_retry_after(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    with pytest.raises(KeysUnavailable) as caught:
        await cache.keys_for("rsa-1", "RS256")
    assert caught.value.retry_after_seconds >= 1
    assert source.calls == 0  # a request never waits on (or triggers) a cold fetch
    assert not cache.status().is_ready


async def test_loaded_keys_are_served(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, recorder = make_cache(source, clock)
    assert await cache.refresh()
    (key,) = await cache.keys_for("rsa-1", "RS256")
    assert key.kid == "rsa-1"
    assert recorder.results == ["ok"]
    assert cache.status().is_ready
    assert cache.status().key_count == 1


async def test_known_kid_with_other_alg_is_refused_without_fetch(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    await cache.refresh()
    with pytest.raises(DisallowedAlgorithm):
        await cache.keys_for("rsa-1", "ES256")
    assert source.calls == 1


async def test_rotation_unknown_kid_refetches_once(rsa_signer, spare_rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    await cache.refresh()
    clock.now += 31
    source.signers.append(spare_rsa_signer)  # the IdP publishes its next key
    (key,) = await cache.keys_for("rsa-2", "RS256")
    assert key.kid == "rsa-2"
    assert source.calls == 2


async def test_cooldown_counts_from_the_last_attempt(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    await cache.refresh()  # the start-up fetch is an attempt too
    clock.now += 10
    with pytest.raises(UnknownKey):
        await cache.keys_for("nope-1", "RS256")
    assert source.calls == 1  # within 30 s of the last attempt: no fetch
    clock.now += 21
    with pytest.raises(UnknownKey):
        await cache.keys_for("nope-2", "RS256")
    assert source.calls == 2  # cooldown passed: one refetch, kid still unknown
    for index in range(1000):  # a spray of random kids inside the window
        with pytest.raises(UnknownKey):
            await cache.keys_for(f"spray-{index}", "RS256")
    assert source.calls == 2
    clock.now += 30
    with pytest.raises(UnknownKey):
        await cache.keys_for("nope-3", "RS256")
    assert source.calls == 3


async def test_concurrent_misses_share_one_fetch(rsa_signer, spare_rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    await cache.refresh()
    clock.now += 31
    source.signers.append(spare_rsa_signer)
    source.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.keys_for("rsa-2", "RS256")) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters)
    assert all(result[0].kid == "rsa-2" for result in results)
    assert source.calls == 2  # one start-up fetch + exactly one shared refetch


async def test_a_cancelled_request_does_not_cancel_the_shared_fetch(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    source.gate = asyncio.Event()
    cache, _ = make_cache(source, clock)
    first = asyncio.create_task(cache.refresh())
    second = asyncio.create_task(cache.refresh())
    await asyncio.sleep(0)
    first.cancel()
    source.gate.set()
    assert await second is True
    assert source.calls == 1
    assert cache.status().is_ready


async def test_failure_keeps_the_last_good_set_until_max_stale(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    cache, recorder = make_cache(source, clock)
    await cache.refresh()
    source.failure = FetchFailed("status", "500")
    clock.now += 600  # the TTL (600 s) has passed
    assert not await cache.refresh()
    assert cache.status().is_stale
    assert cache.status().is_ready
    assert await cache.keys_for("rsa-1", "RS256")  # stale keys still verify
    clock.now += 3600  # 600 + 3600 = expiry + max_stale
    assert await cache.keys_for("rsa-1", "RS256")
    clock.now += 1
    with pytest.raises(KeysUnavailable):  # too stale: fail closed
        await cache.keys_for("rsa-1", "RS256")
    assert not cache.status().is_ready
    assert recorder.results == ["ok", "status"]
    source.failure = None
    assert await cache.refresh()  # recovery is automatic
    assert await cache.keys_for("rsa-1", "RS256")


async def test_refresh_is_scheduled_before_expiry_from_max_age(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    source.max_age = 1000
    cache, _ = make_cache(source, clock, jitter=lambda: 0.0)
    assert cache.next_refresh_in() == 0  # never fetched: now
    await cache.refresh()
    assert cache.next_refresh_in() == pytest.approx(800)  # 80% of max-age
    source.max_age = 5  # clamped up to min_ttl (300 s)
    clock.now += 800
    await cache.refresh()
    assert cache.next_refresh_in() == pytest.approx(240)


async def test_failures_back_off_exponentially_up_to_the_cooldown(clock):
    source = ScriptedSource()
    source.failure = FetchFailed("timeout", "slow")
    cache, _ = make_cache(source, clock, jitter=lambda: 1.0)
    delays = []
    for _ in range(8):
        await cache.refresh()
        delays.append(cache.next_refresh_in())
        clock.now += cache.next_refresh_in()
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    await cache.refresh()
    assert cache.retry_after_seconds() == 30  # what a 503 tells the client


async def test_background_loop_refreshes_and_recovers(rsa_signer, clock):
    source = ScriptedSource(rsa_signer)
    source.failure = FetchFailed("network_error", "down")
    cache, recorder = make_cache(source, clock, jitter=lambda: 1.0)
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        clock.now += seconds
        if len(slept) == 2:
            source.failure = None  # the IdP comes back
        if len(slept) == 4:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cache.run(sleep=fake_sleep)
    assert recorder.results == ["network_error", "network_error", "ok", "ok"]
    assert slept == [1, 2, pytest.approx(420), pytest.approx(420)]  # 600 s TTL x (0.8 - 0.1 jitter)


async def test_holds_only_the_exact_usable_keys(rsa_signer, spare_rsa_signer, clock):
    """What the verified-token cache asks on every hit."""
    source = ScriptedSource(rsa_signer)
    cache, _ = make_cache(source, clock)
    await cache.refresh()
    (key,) = await cache.keys_for("rsa-1", "RS256")
    assert cache.holds(key)
    source.signers = [spare_rsa_signer]  # rotated: rsa-1 left the JWKS
    await cache.refresh()
    assert not cache.holds(key)
    source.signers = [rsa_signer]  # back, but as a new key object from a new fetch
    await cache.refresh()
    assert not cache.holds(key)  # identity, not equality: entries re-verify after each fetch
    (fresh,) = await cache.keys_for("rsa-1", "RS256")
    assert cache.holds(fresh)
    source.failure = FetchFailed("status", "500")
    clock.now += 600 + 3600 + 1  # expiry + max_stale: too stale to trust
    assert not cache.holds(fresh)


async def test_close_cancels_the_fetch_its_cancelled_callers_left_running(rsa_signer, clock):
    """The fetch is shielded from its callers, so cancelling the background loop leaves it
    running; at shutdown it would fail on the closed session, unretrieved. close() ends it."""
    source = ScriptedSource(rsa_signer)
    source.gate = asyncio.Event()  # the IdP never answers
    cache, recorder = make_cache(source, clock)
    loop_task = asyncio.get_running_loop().create_task(cache.run())
    for _ in range(100):  # a few loop turns: the fetch starts without any I/O
        if source.calls:
            break
        await asyncio.sleep(0)
    assert source.calls == 1
    loop_task.cancel()
    await asyncio.gather(loop_task, return_exceptions=True)
    fetch = cache._inflight
    assert fetch is not None and not fetch.done()  # still running, on its own
    await cache.close()
    assert fetch.cancelled() and cache._inflight is None
    assert recorder.results == []  # nothing reported as a failed fetch
    await cache.close()  # idempotent
