"""The JWKS lifecycle through the real gateway and a real (misbehaving) JWKS server.

Time-dependent rules (cooldown, TTL, staleness) run on an injected clock, so nothing sleeps to
wait for state; the one test of the background refresher uses a 1-second TTL on the real clock.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest

from tests.support.tokens import claims_for
from tests.support.waiting import eventually


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def readyz(gw) -> tuple[int, dict[str, Any]]:
    async with gw.http.get(gw.admin_url + "/readyz") as response:
        return response.status, await response.json()


async def test_cold_start_is_503_until_keys_load_then_ready_by_itself(make_gateway, jwks, mint):
    jwks.behaviour.mode = "status500"
    gw = await make_gateway(wait_ready=False)
    await jwks.wait_for_fetches(1)
    status, body = await readyz(gw)
    assert status == 503
    assert body["not_ready"] == ["local"]
    assert body["issuers"]["local"]["key_set_age_seconds"] is None
    response = await gw.get("/api/user/x", mint())
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert (await gw.get("/public/x")).status == 200  # public routes need no keys
    jwks.behaviour.mode = "ok"  # the IdP comes back; the background retry picks it up
    assert await gw.gateway.wait_ready(10)
    status, body = await readyz(gw)
    assert status == 200
    assert body["status"] == "ready"
    assert body["issuers"]["local"]["keys"] == 2
    assert (await gw.get("/api/user/x", mint())).status == 200


async def test_key_rotation_via_unknown_kid(make_gateway, jwks, mint, spare_rsa_signer):
    clock = FakeClock()
    gw = await make_gateway(clock=clock)
    assert jwks.fetches == 1
    jwks.keys.append(spare_rsa_signer)  # the IdP publishes a new key and signs with it
    token = mint(signer=spare_rsa_signer)
    clock.now += 31  # past the cooldown since the start-up fetch
    assert (await gw.get("/api/user/x", token)).status == 200
    assert jwks.fetches == 2
    assert (await gw.get("/api/user/x", token)).status == 200  # now cached: no fetch
    assert jwks.fetches == 2


async def test_unknown_kid_within_cooldown_is_401_without_fetch(
    make_gateway, jwks, mint, spare_rsa_signer
):
    clock = FakeClock()
    gw = await make_gateway(clock=clock)
    jwks.keys.append(spare_rsa_signer)
    response = await gw.get("/api/user/x", mint(signer=spare_rsa_signer))
    assert response.status == 401  # the start-up fetch was < 30 s ago
    assert jwks.fetches == 1
    clock.now += 30
    assert (await gw.get("/api/user/x", mint(signer=spare_rsa_signer))).status == 200
    assert jwks.fetches == 2


async def test_random_kid_spray_causes_at_most_one_fetch_per_cooldown(
    make_gateway, jwks, mint, rsa_signer
):
    clock = FakeClock()
    gw = await make_gateway(clock=clock)
    clock.now += 31
    semaphore = asyncio.Semaphore(32)

    async def spray(index: int) -> int:
        kid = f"kid-{random.getrandbits(64):x}-{index}"
        token = rsa_signer.sign(claims_for(jwks.issuer), header={"kid": kid})
        async with semaphore:
            return (await gw.get("/api/user/x", token)).status

    statuses = await asyncio.gather(*(spray(index) for index in range(1000)))
    assert set(statuses) == {401}
    assert jwks.fetches == 2  # the start-up fetch + one refetch for the whole spray
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_auth_decisions_total", reason="unknown_kid") == 1000
    assert (await gw.get("/api/user/x", mint())).status == 200  # real clients unaffected


async def test_outage_keeps_last_good_keys_until_max_stale(make_gateway, jwks, mint):
    clock = FakeClock()
    gw = await make_gateway(
        lambda c: c["issuers"][0].update(jwks={"max_stale_seconds": 3600}), clock=clock
    )
    cache = gw.gateway.key_caches["local"]
    jwks.behaviour.mode = "status500"
    clock.now += 600  # TTL (max-age 600) is over; the refresh fails
    assert not await cache.refresh()
    assert (await gw.get("/api/user/x", mint())).status == 200  # 100% with a warm cache
    status, body = await readyz(gw)
    assert status == 200
    assert body["issuers"]["local"]["stale"] is True
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_jwks_stale", issuer="local") == 1
    assert metric(text, "m2mgate_jwks_fetches_total", issuer="local", result="http_error") >= 1
    clock.now += 3601  # beyond max staleness: fail closed
    response = await gw.get("/api/user/x", mint())
    assert response.status == 503
    assert (await readyz(gw))[0] == 503
    jwks.behaviour.mode = "ok"
    assert await cache.refresh()  # recovery
    assert (await gw.get("/api/user/x", mint())).status == 200


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        ("status500", "http_error"),
        ("html", "invalid_json"),
        ("truncated", "invalid_json"),
        ("empty", "no_usable_keys"),
        ("no_keys", "invalid_jwks"),
        ("huge", "too_large"),
        ("redirect", "redirect"),
        ("hang", "timeout"),
    ],
)
async def test_garbage_keeps_the_last_good_set(make_gateway, jwks, mint, mode, result):
    gw = await make_gateway(lambda c: c["issuers"][0].update(jwks={"fetch_timeout_seconds": 0.3}))
    jwks.behaviour.mode = mode
    assert not await gw.gateway.key_caches["local"].refresh()
    assert (await gw.get("/api/user/x", mint())).status == 200
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_jwks_fetches_total", issuer="local", result=result) == 1
    assert metric(text, "m2mgate_jwks_keys", issuer="local") == 2
    failure = [e for e in gw.log_events() if e["event"] == "jwks_fetch_failed"]
    assert failure
    assert failure[-1]["result"] == result


@pytest.mark.parametrize("mode", ["html", "empty", "huge", "redirect"])
async def test_garbage_at_cold_start_is_not_ready(make_gateway, jwks, mode):
    jwks.behaviour.mode = mode
    gw = await make_gateway(wait_ready=False)
    cache = gw.gateway.key_caches["local"]
    await eventually(lambda: cache.status().last_result is not None)
    assert cache.status().last_result != "ok"
    assert (await readyz(gw))[0] == 503


async def test_background_refresh_before_expiry(make_gateway, jwks, mint, spare_rsa_signer):
    jwks.behaviour.max_age = 1  # clamped into [min_ttl_seconds=1, ...]
    gw = await make_gateway(lambda c: c["issuers"][0].update(jwks={"min_ttl_seconds": 1}))
    jwks.keys.append(spare_rsa_signer)
    cache = gw.gateway.key_caches["local"]
    # Refreshed at ~0.7-0.8 s, unprompted: the new key appears without any request asking.
    await eventually(lambda: cache.status().key_count == 3, within_seconds=5)
    assert jwks.fetches >= 2
    assert (await gw.get("/api/user/x", mint(signer=spare_rsa_signer))).status == 200


async def test_discovery_finds_the_jwks(make_gateway, jwks, mint):
    gw = await make_gateway(lambda c: c["issuers"][0].pop("jwks_uri"))
    assert jwks.discovery_fetches == 1
    assert (await gw.get("/api/user/x", mint())).status == 200


async def test_discovery_with_a_mismatched_issuer_is_refused(make_gateway, jwks):
    jwks.discovery_issuer = "https://attacker.example"
    gw = await make_gateway(lambda c: c["issuers"][0].pop("jwks_uri"), wait_ready=False)
    cache = gw.gateway.key_caches["local"]
    await eventually(lambda: cache.status().last_result is not None)
    assert cache.status().last_result == "issuer_mismatch"
    assert jwks.fetches == 0  # the keys it pointed at were never fetched
    assert (await readyz(gw))[0] == 503


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # minting, on purpose
async def test_key_hygiene_in_a_served_set(make_gateway, jwks, rsa_signer):
    from tests.support.tokens import b64url, rsa_key

    weak = rsa_key("weak", bits=1024)
    encryption = rsa_key("enc-key")
    jwks.keys = [rsa_signer, weak]
    jwks.behaviour.extra_keys = [
        encryption.jwk(use="enc"),
        {
            "kty": "oct",
            "kid": "hmac",
            "k": b64url(b"shared-secret-shared-secret-32b!"),
            "alg": "HS256",
        },
    ]
    gw = await make_gateway()
    assert gw.gateway.key_caches["local"].status().key_count == 1
    assert (await gw.get("/api/user/x", rsa_signer.sign(claims_for(jwks.issuer)))).status == 200
    for signer in (weak, encryption):
        assert (await gw.get("/api/user/x", signer.sign(claims_for(jwks.issuer)))).status == 401
    (fetched,) = [e for e in gw.log_events() if e["event"] == "jwks_fetched"]
    assert len(fetched["skipped"]) == 3


async def test_rfc8414_discovery_fallback_for_an_issuer_with_a_path(
    make_gateway, aiohttp_server, rsa_signer, mint
):
    """No OIDC document: RFC 8414's /.well-known/oauth-authorization-server/<path> is used."""
    from aiohttp import web

    from tests.support.servers import JwksServer

    keys = JwksServer()
    keys.keys = [rsa_signer]
    state: dict[str, str] = {}

    async def metadata(_: web.Request) -> web.Response:
        return web.json_response({"issuer": state["issuer"], "jwks_uri": state["jwks"]})

    app = keys.app()
    app.router.add_get("/.well-known/oauth-authorization-server/tenant-a", metadata)
    running = await aiohttp_server(app)
    base = str(running.make_url("")).rstrip("/")
    keys.url = base
    state.update(issuer=f"{base}/tenant-a", jwks=keys.jwks_uri)

    def configure(config: dict[str, Any]) -> None:
        config["issuers"][0].pop("jwks_uri")
        config["issuers"][0]["issuer"] = state["issuer"]

    gw = await make_gateway(configure)
    token = rsa_signer.sign(claims_for(state["issuer"]))
    assert (await gw.get("/api/user/x", token)).status == 200


async def test_discovery_is_cached_and_refreshed_like_keys(make_gateway, jwks):
    clock = FakeClock()
    jwks.behaviour.max_age = 300
    gw = await make_gateway(lambda c: c["issuers"][0].pop("jwks_uri"), clock=clock)
    cache = gw.gateway.key_caches["local"]
    assert (jwks.discovery_fetches, jwks.fetches) == (1, 1)
    clock.now += 100
    assert await cache.refresh()
    assert (jwks.discovery_fetches, jwks.fetches) == (1, 2)  # the discovered URI is reused
    clock.now += 600  # past the discovery document's TTL (no max-age: 600 s default)
    assert await cache.refresh()
    assert (jwks.discovery_fetches, jwks.fetches) == (2, 3)
    jwks.behaviour.mode = "status500"
    assert not await cache.refresh()
    jwks.behaviour.mode = "ok"
    assert await cache.refresh()
    assert jwks.discovery_fetches == 3  # a failed key fetch re-runs discovery next time


@pytest.mark.parametrize(
    ("jwks_uri", "result"),
    [
        ("http://keys.attacker.example/jwks", "invalid_discovery"),  # plain http, not loopback
        ("ftp://127.0.0.1/jwks", "invalid_discovery"),
        (None, "invalid_discovery"),
    ],
)
async def test_discovered_jwks_uri_obeys_the_https_rule(
    make_gateway, aiohttp_server, jwks_uri, result
):
    from aiohttp import web

    state: dict[str, str] = {}

    async def metadata(_: web.Request) -> web.Response:
        document: dict[str, Any] = {"issuer": state["issuer"]}
        if jwks_uri is not None:
            document["jwks_uri"] = jwks_uri
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", metadata)
    running = await aiohttp_server(app)
    state["issuer"] = str(running.make_url("")).rstrip("/")

    def configure(config: dict[str, Any]) -> None:
        config["issuers"][0].pop("jwks_uri")
        config["issuers"][0]["issuer"] = state["issuer"]

    gw = await make_gateway(configure, wait_ready=False)
    cache = gw.gateway.key_caches["local"]
    await eventually(lambda: cache.status().last_result is not None)
    assert cache.status().last_result == result
    assert not cache.status().is_ready


async def test_cached_tokens_stop_passing_when_their_key_leaves_the_jwks(
    make_gateway, jwks, mint, rsa_signer, spare_rsa_signer
):
    """Threat: the verified-token cache keeping a revoked or rotated-out key alive."""
    clock = FakeClock()
    gw = await make_gateway(clock=clock)
    old = mint()
    for _ in range(3):
        assert (await gw.get("/api/user/x", old)).status == 200
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_token_cache_lookups_total", result="hit") == 2
    assert metric(text, "m2mgate_token_cache_entries") == 1
    assert 200 < metric(text, "m2mgate_token_cache_bytes") < 4096  # one small principal
    jwks.keys[:] = [spare_rsa_signer]  # the IdP drops rsa-1 (compromised, say)
    clock.now += 31
    assert (await gw.get("/api/user/x", mint(signer=spare_rsa_signer))).status == 200  # refetch
    response = await gw.get("/api/user/x", old)
    assert response.status == 401  # at once, not when the cache entry ages out
    assert jwks.fetches == 2


async def test_cached_tokens_fail_closed_with_stale_keys(make_gateway, jwks, mint):
    clock = FakeClock()
    gw = await make_gateway(
        lambda c: c["issuers"][0].update(jwks={"max_stale_seconds": 3600}), clock=clock
    )
    token = mint()
    assert (await gw.get("/api/user/x", token)).status == 200
    jwks.behaviour.mode = "status500"
    clock.now += 600 + 3601  # TTL over and beyond max staleness
    assert not await gw.gateway.key_caches["local"].refresh()
    assert (await gw.get("/api/user/x", token)).status == 503  # the cache does not paper over it


async def test_token_cache_can_be_turned_off(make_gateway, mint):
    gw = await make_gateway(lambda c: c.setdefault("limits", {}).update(token_cache_entries=0))
    token = mint()
    for _ in range(3):
        assert (await gw.get("/api/user/x", token)).status == 200
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_token_cache_lookups_total", result="hit") == 0
    assert metric(text, "m2mgate_token_cache_entries") == 0
    assert metric(text, "m2mgate_token_cache_bytes") == 0
