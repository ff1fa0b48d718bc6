"""The key registry: caches kept in step with the config, per-config snapshots, readiness."""

import dataclasses
from dataclasses import dataclass

from m2mgate.keys.cache import CachePolicy
from m2mgate.keys.registry import KeyRegistry
from m2mgate.keys.source import KeySourceSettings
from m2mgate.keys.ttl import TtlBounds
from tests.unit.keys.test_cache import ALGS, POLICY, Clock, Recorder, ScriptedSource

SOURCE = KeySourceSettings(
    issuer="http://127.0.0.1/",
    jwks_uri="http://127.0.0.1/jwks",
    allow_insecure_http=True,
    algorithms=ALGS,
    ttl=TtlBounds(min_seconds=300, max_seconds=86400, default_seconds=600),
    fetch_timeout_seconds=1.0,
    max_response_bytes=1 << 16,
)


@dataclass(frozen=True)
class Issuer:
    source: KeySourceSettings = SOURCE
    cache: CachePolicy = POLICY


def make_registry(sources):
    recorder = Recorder()
    registry = KeyRegistry(recorder, Clock(), lambda name, _: sources[name].fetch)
    return registry, recorder


def test_reconcile_keeps_unchanged_replaces_changed_and_drops_removed(rsa_signer):
    sources = {name: ScriptedSource(rsa_signer) for name in ("a", "b", "c")}
    registry, _ = make_registry(sources)
    first = registry.reconcile({"a": Issuer(), "b": Issuer()})
    cooler = dataclasses.replace(POLICY, refetch_cooldown_seconds=60)
    second = registry.reconcile({"a": Issuer(), "b": Issuer(cache=cooler), "c": Issuer()})
    assert second["a"] is first["a"]  # unchanged source and policy: no refetch storm
    assert second["b"] is not first["b"]  # a changed key policy: a fresh cache
    assert list(registry.caches) == ["a", "b", "c"]
    third = registry.reconcile({"c": Issuer()})
    assert list(registry.caches) == ["c"] and third["c"] is second["c"]
    # Each config keeps the map it was applied with: a pinned request uses its own keys.
    assert list(first) == ["a", "b"] and list(second) == ["a", "b", "c"]


async def test_snapshot_answers_for_its_own_caches(rsa_signer):
    sources = {"a": ScriptedSource(rsa_signer)}
    registry, recorder = make_registry(sources)
    keys = registry.reconcile({"a": Issuer()})
    assert not await registry.wait_ready(0)
    await keys["a"].refresh()
    assert recorder.results == ["ok"]  # the observer hears each fetch
    assert await registry.wait_ready(1)
    (key,) = await keys.keys_for("a", "rsa-1", "RS256")
    assert keys.holds("a", key)
    assert not keys.holds("elsewhere", key)  # an issuer this config does not know
    assert [status.issuer_name for status in registry.statuses()] == ["a"]


async def test_close_stops_refreshers_and_session(rsa_signer):
    sources = {"a": ScriptedSource(rsa_signer)}
    registry, _ = make_registry(sources)
    registry.reconcile({"a": Issuer()})
    registry.open()
    registry.start_refreshing()
    await registry.wait_ready(5)
    await registry.close()
    assert registry._session is None and not registry._refreshers
