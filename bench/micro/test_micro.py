"""Micro-benchmarks (pytest-benchmark), outside the pass/fail test run:

    .venv/bin/python -m pytest bench/micro --benchmark-only

- token verification, cold (full path: parse, claims, key, signature) for RS256, ES256 and
  EdDSA, next to raw `cryptography` verifying the very same signature: the difference is what
  m2mgate adds around the crypto;
- warm: the verified-token cache hit;
- route matching in a 200-route table (first, middle, last, no match);
- building the upstream request headers and the client response headers;
- writing one access log line (batched, as the gateway does).

Each benchmark also asserts its result, so a broken path can't pass as fast.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from tests.support.tokens import claims_for, ec_key, ed_key, rsa_key

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.policy import Requirement
from m2mgate.auth.presets import PRESETS
from m2mgate.auth.principal import Principal
from m2mgate.auth.token_cache import TokenCacheStats, VerifiedTokenCache
from m2mgate.auth.verifier import IssuerPolicy, TokenVerifier
from m2mgate.keys.keyset import build_keyset
from m2mgate.observability.logging import AccessLog
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.forwarded import ClientFacts
from m2mgate.proxy.headers import upstream_request_headers
from m2mgate.proxy.response_headers import downstream_response_headers
from m2mgate.routing import Route, RouteTable, compile_pattern

ISSUER = "https://issuer.example/"
SIGNERS = {"RS256": rsa_key, "ES256": ec_key, "EdDSA": ed_key}


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def setup_verifier(alg: str, cached: bool) -> tuple[TokenVerifier, str, Any]:
    signer = SIGNERS[alg]()
    keyset = build_keyset({"keys": [signer.jwk()]}, frozenset({alg}))

    async def keys(_issuer: str, kid: str | None, algorithm: str) -> Any:
        return keyset.candidates(kid, algorithm)

    policy = IssuerPolicy(
        name="main", issuer=ISSUER, audiences=frozenset({"https://api.example"}),
        client_ids=frozenset(), algorithms=frozenset({alg}), layout=PRESETS["generic"].layout,
        guard=TokenTypeGuard(), leeway_seconds=30, max_token_lifetime_seconds=86400,
    )  # fmt: skip
    cache = (
        VerifiedTokenCache(1000, lambda _name, key: key in keyset.keys, TokenCacheStats())
        if cached
        else None
    )
    verifier = TokenVerifier({ISSUER: policy}, keys, time.time, cache)
    token = signer.sign(claims_for(ISSUER, exp=int(time.time()) + 3600))
    return verifier, token, signer


def run(coroutine_function: Any, *args: Any) -> Any:
    """Drive a coroutine that never suspends (keys are in memory) without an event loop."""
    coroutine = coroutine_function(*args)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the verification path suspended")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_verify_cold(benchmark, alg):
    verifier, token, _ = setup_verifier(alg, cached=False)
    principal = benchmark(run, verifier.verify, token)
    assert isinstance(principal, Principal)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_raw_cryptography_verify(benchmark, alg):
    _, token, signer = setup_verifier(alg, cached=False)
    header, payload, signature = token.split(".")
    message, raw = f"{header}.{payload}".encode(), b64d(signature)
    public = signer.public
    if alg == "RS256":
        verify = lambda: public.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        half = len(raw) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
        verify = lambda: public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    else:
        verify = lambda: public.verify(raw, message)
    benchmark(verify)  # raises InvalidSignature if wrong


def test_verify_warm_cache_hit(benchmark):
    verifier, token, _ = setup_verifier("RS256", cached=True)
    first = run(verifier.verify, token)
    assert benchmark(run, verifier.verify, token) is first


ROUTES = RouteTable(
    tuple(
        Route(f"r{index}", compile_pattern(f"/service{index}/v1/*/items/**"), None,
              Requirement(scopes=frozenset({f"s{index}"})))
        for index in range(200)
    )
)  # fmt: skip


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/service0/v1/x/items/1", "r0"),
        ("/service100/v1/x/items/1", "r100"),
        ("/service199/v1/x/items/1", "r199"),
        ("/nothing/here", None),
    ],
    ids=["first", "middle", "last", "none"],
)
def test_route_match_200_routes(benchmark, path, expected):
    route = benchmark(ROUTES.match, "GET", path)
    assert (route.name if route else None) == expected


def test_upstream_headers(benchmark):
    rules = ForwardRules(
        client_id="X-Client-Id", scopes="X-Scopes", roles="X-Roles", issuer="X-Issuer",
        subject="X-Subject", tenant=None, claims=(), pass_authorization=False,
        preserve_host=False,
    )  # fmt: skip
    principal = Principal(
        issuer_name="main", issuer=ISSUER, client_id="svc-orders", subject="svc-orders",
        scopes=("read:data", "write:data"), roles=("reader",), tenant=None,
        expires_at=time.time() + 300, claims={},
    )  # fmt: skip
    incoming = [
        ("Host", "api.example"), ("User-Agent", "wrk"), ("Accept", "*/*"),
        ("Authorization", "Bearer x"), ("X-Client-Id", "spoofed"), ("Content-Type", "text/plain"),
    ]  # fmt: skip
    client = ClientFacts(address="127.0.0.1", scheme="http", host="api.example")
    headers = benchmark(upstream_request_headers, incoming, rules, principal, "req-1", client)
    assert ("X-Client-Id", "svc-orders") in headers
    assert ("X-Client-Id", "spoofed") not in headers


def test_downstream_response_headers(benchmark):
    # What nginx sends for a small response.
    incoming = [
        ("Server", "nginx/1.22.1"), ("Date", "Tue, 01 Dec 2026 09:00:00 GMT"),
        ("Content-Type", "text/plain"), ("Content-Length", "3"), ("Connection", "keep-alive"),
    ]  # fmt: skip
    headers, length = benchmark(downstream_response_headers, incoming, "req-1", "DATE")
    assert length == 3
    assert ("X-Request-Id", "req-1") in headers
    assert all(name != "Connection" for name, _ in headers)


def test_access_log_line(benchmark):
    stream = io.StringIO()
    log = AccessLog(stream, "info", batch_lines=64)

    def line() -> None:
        log.write_request(
            "2afa9d4faa54568d5844d659f6899067", "GET", "/api/user/x", "user", 200, "allow",
            "ok", "bench", "bench-client", 0.576, 0.504, None, None, None, None, None, "127.0.0.1",
        )  # fmt: skip

    benchmark(line)
    log.flush()
    assert '"client_id": "bench-client"' in stream.getvalue().splitlines()[-1]
