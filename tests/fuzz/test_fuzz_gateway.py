"""Property-based fuzzing of the real gateway (hypothesis).

The gateway, its JWKS server and an echo upstream run on their own event loop in a background
thread; each example is a real HTTP request over a socket. Invariants, for every example:
- never a 2xx unless the token is byte-identical to one we signed (RS256: deterministic
  signatures, so no malleated twin can verify; see THREAT_MODEL.md on ECDSA);
- never a 5xx;
- never an unhandled exception in the gateway's log or in aiohttp's.

CI runs a bounded profile (HYPOTHESIS_PROFILE=ci, the default); `scripts/fuzz` runs >= 100,000.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2mgate.app import Gateway
from m2mgate.config.compiling import compile_settings, validate_tree
from tests.support.servers import EchoUpstream, JwksServer
from tests.support.tokens import SigningKey, claims_for, rsa_key

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Target:
    """The real gateway on loopback, driven from the test thread."""

    def __init__(self) -> None:
        self.key: SigningKey = rsa_key("fuzz-1")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.log = _UnhandledLines()
        self.library_errors: list[str] = []
        self.valid: set[str] = set()
        self._runners: list[web.AppRunner] = []
        self.gateway: Gateway | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        handler = _Collect(self.library_errors)
        logging.getLogger("aiohttp").addHandler(handler)
        self._handler = handler

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _start(self) -> None:
        jwks = JwksServer()
        jwks.keys = [self.key]
        jwks.url = await self._serve(jwks.app())
        self.issuer = jwks.issuer
        upstream_url = await self._serve(EchoUpstream().app())
        config = {
            "listen": "127.0.0.1:0",
            "admin_listen": "127.0.0.1:0",
            "upstream": {"url": upstream_url},
            "issuers": [
                {"name": "fuzz", "issuer": jwks.issuer, "jwks_uri": jwks.jwks_uri,
                 "audiences": ["https://api.example"], "algorithms": ["RS256", "ES256", "PS256"],
                 "preset": "rfc9068", "jwks": {"refetch_cooldown_seconds": 3600}}
            ],
            "routes": [
                {"name": "public", "path": "/public/**", "public": True},
                {"name": "admin", "path": "/api/admin/**", "require": {"scopes": ["admin"]}},
                {"name": "api", "path": "/api/**", "require": {}},
            ],
        }  # fmt: skip
        self.gateway = Gateway(compile_settings(validate_tree(config)), log_stream=self.log)
        await self.gateway.start()
        assert await self.gateway.wait_ready(10)
        host, port = self.gateway.proxy_address
        self.host, self.port = host, port

    def mint(self, **claims: Any) -> str:
        token = self.key.sign(claims_for(self.issuer, **claims))
        self.valid.add(token)
        return token

    def stop(self) -> None:
        logging.getLogger("aiohttp").removeHandler(self._handler)

        async def stop() -> None:
            if self.gateway is not None:
                await self.gateway.stop()
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def send(self, authorization: bytes | None, path: str = "/api/user/x") -> int:
        """One request over a fresh socket; raw bytes so any header value can be sent."""
        lines = [f"GET {path} HTTP/1.1".encode(), b"Host: fuzz", b"Connection: close"]
        if authorization is not None:
            lines.append(b"Authorization: " + authorization)
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            return response.status

    def unhandled(self) -> list[str]:
        return self.log.unhandled + self.library_errors


class _UnhandledLines(io.StringIO):
    """The gateway's log sink: keeps only `unhandled_error` lines. Rescanning a growing log after
    each of 50,000 examples made the long run quadratic; this looks at each line once."""

    def __init__(self) -> None:
        super().__init__()
        self.unhandled: list[str] = []

    def write(self, text: str) -> int:
        self.unhandled.extend(line for line in text.splitlines() if "unhandled_error" in line)
        return len(text)


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    running = Target()
    running.start()
    yield running
    running.stop()


# --- strategies ------------------------------------------------------------------------------

ALGS = ["RS256", "rs256", "none", "None", "HS256", "ES256", "PS256", "RS512", "", "RS256 ", None, 1]
KIDS = ["fuzz-1", "FUZZ-1", "fuzz-2", "", "../fuzz-1", "fuzz-1\x00", None, 1, ["fuzz-1"]]
TYPS = ["at+jwt", "AT+JWT", "application/at+jwt", "JWT", "", None, 7]


@st.composite
def header_json(draw: st.DrawFn) -> dict[str, Any]:
    header: dict[str, Any] = {}
    for name, choices in (("alg", ALGS), ("kid", KIDS), ("typ", TYPS)):
        value = draw(st.sampled_from(choices))
        if value is not None:
            header[name] = value
    extra = draw(st.sampled_from([{}, {"crit": ["exp"]}, {"b64": False}, {"jku": "http://127.0.0.1:1/k"},
                                  {"jwk": {"kty": "oct", "k": "AAAA"}}, {"x5c": ["AAAA"]}]))  # fmt: skip
    return {**header, **extra}


NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.none(),
)


@st.composite
def claims_json(draw: st.DrawFn, issuer: str) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": draw(st.sampled_from([issuer, issuer + "/", "https://evil", "", None])),
        "aud": draw(
            st.sampled_from(["https://api.example", ["https://api.example"], "x", [], None])
        ),
        "client_id": draw(st.sampled_from(["svc", "", None, 1, ["svc"]])),
        "scope": draw(st.sampled_from(["read:data", "admin", "", None, ["admin"]])),
        "exp": draw(st.one_of(st.just(now + 300), NUMBERS)),
    }
    if draw(st.booleans()):
        claims["nbf"] = draw(NUMBERS)
    if draw(st.booleans()):
        claims["iat"] = draw(NUMBERS)
    return {name: value for name, value in claims.items() if value is not None}


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def mutated_token(draw: st.DrawFn, valid: str, issuer: str) -> str:
    header, payload, signature = valid.split(".")
    kind = draw(st.sampled_from(["char", "insert", "delete", "segments", "header", "payload",
                                 "signature", "reassemble"]))  # fmt: skip
    if kind == "char":
        index = draw(st.integers(0, len(valid) - 1))
        char = draw(st.sampled_from(B64URL + ".=+/ "))
        return valid[:index] + char + valid[index + 1 :]
    if kind == "insert":
        index = draw(st.integers(0, len(valid)))
        return (
            valid[:index]
            + draw(st.text(alphabet=B64URL + ".=", min_size=1, max_size=4))
            + valid[index:]
        )
    if kind == "delete":
        start = draw(st.integers(0, len(valid) - 1))
        return valid[:start] + valid[start + draw(st.integers(1, 8)) :]
    if kind == "segments":
        parts = draw(
            st.lists(
                st.sampled_from([header, payload, signature, "", "AAAA"]), min_size=1, max_size=6
            )
        )
        return ".".join(parts)
    if kind == "header":
        return f"{b64(_json(draw(header_json())))}.{payload}.{signature}"
    if kind == "payload":
        return f"{header}.{b64(_json(draw(claims_json(issuer))))}.{signature}"
    if kind == "signature":
        return f"{header}.{payload}.{b64(draw(st.binary(max_size=300)))}"
    # reassemble: a fresh header and payload with the real signature (a splice)
    return f"{b64(_json(draw(header_json())))}.{b64(_json(draw(claims_json(issuer))))}.{signature}"


FUZZ = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)


@FUZZ
@given(data=st.data())
def test_mutated_tokens_never_pass(target: Target, data: st.DataObject) -> None:
    valid = target.mint(scope=data.draw(st.sampled_from(["read:data", "read:data admin"])))
    token = data.draw(mutated_token(valid, target.issuer))
    path = data.draw(st.sampled_from(["/api/user/x", "/api/admin/x"]))
    status = target.send(b"Bearer " + token.encode(), path)
    assert status < 500, (status, token)
    if 200 <= status < 300:
        assert token in target.valid, f"a mutated token passed: {token}"
    assert target.unhandled() == []


@FUZZ
@given(
    value=st.one_of(
        st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b),
        st.builds(
            lambda s: b"Bearer " + s,
            st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b),
        ),
        st.builds(
            lambda s: s.encode(),
            st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
        ),
    )
)
def test_random_authorization_values_never_pass_or_crash(target: Target, value: bytes) -> None:
    status = target.send(value)
    assert status < 500, (status, value)
    assert not 200 <= status < 300, value
    assert target.unhandled() == []


def test_the_target_accepts_its_own_tokens(target: Target) -> None:
    """The invariants above mean something only if valid tokens do pass."""
    assert target.send(b"Bearer " + target.mint().encode()) == 200
    assert (
        target.send(b"Bearer " + target.mint(scope="read:data admin").encode(), "/api/admin/x")
        == 200
    )
    assert target.send(None, "/public/x") == 200
