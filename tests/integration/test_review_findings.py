"""Hostile review of the #8 fixes (branch wt-review). Each test states what the gateway must do
and fails on the code reviewed: a failing test is the bug report. The lead fixes src/; these
tests then pass unchanged.

Upstreams used:
- `upstream` (tests/support/servers.py): an aiohttp server. aiohttp parses requests with llhttp,
  like Node.js and uvicorn[httptools], so it reads CONNECT the way RFC 9110 §9.3.6 says: a
  CONNECT request has no content. It stands in for every llhttp-based API server.
- `recorder` (tests/support/h11_upstream.py): h11, records what arrived.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.support.h11_upstream import H11Upstream
from tests.support.raw_http import RawResponse, _read_response, raw_request
from tests.support.waiting import eventually

FORGED = b"X-Client-Id: admin\r\nX-Scopes: admin\r\n"


@pytest.fixture
async def recorder() -> AsyncIterator[H11Upstream]:
    upstream = await H11Upstream().start()
    yield upstream
    await upstream.stop()


@pytest.fixture
def through(make_gateway: GatewayFactory, recorder: H11Upstream) -> Callable[..., Any]:
    async def make(configure: Callable[[dict[str, Any]], None] | None = None) -> RunningGateway:
        def point(config: dict[str, Any]) -> None:
            config["upstream"]["url"] = recorder.url
            if configure is not None:
                configure(config)

        return await make_gateway(point)

    return make


def _request(method: str, target: str, *fields: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: gw", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- R1 (critical): request smuggling through CONNECT ------------------------------------------


def _connect_smuggling(inner: bytes, target: str = "/public/a") -> bytes:
    return _request("CONNECT", target, f"Content-Length: {len(inner)}", body=inner)


async def test_r1_connect_body_is_never_run_upstream_as_a_request(gw, upstream):
    """CRITICAL. llhttp flags CONNECT as an upgrade; the #8 fix reads its Content-Length body by
    count and forwards `CONNECT /public/a` *with* that body. An llhttp-based upstream (aiohttp
    here; uvicorn/httptools, anything on llhttp) treats CONNECT as bodyless (RFC 9110 §9.3.6:
    "A CONNECT request message does not have content"), so the forwarded body is parsed as the
    next request on the pooled connection: the upstream runs `GET /api/admin/users` with a
    client-written X-Client-Id: admin / X-Scopes: admin, from a public route, with no token.
    The gateway logs one request (CONNECT /public/a, 404 from upstream, reason public)."""
    inner = b"GET /api/admin/users HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    response = await raw_request(gw.url, _connect_smuggling(inner))
    assert response.status < 500
    await asyncio.sleep(0.3)  # the upstream has parsed whatever it will parse by now
    ran = [(seen["method"], seen["raw_path"]) for seen in upstream.requests]
    assert ("GET", "/api/admin/users") not in ran, upstream.requests
    assert [e["path"] for e in gw.access_events()] == ["/public/a"]


async def test_r1_connect_smuggling_poisons_the_pool_and_leaks_another_clients_response(
    gw, upstream, mint
):
    """CRITICAL, the same hole used for response-queue poisoning: the smuggled request is slow,
    so after the gateway reads the CONNECT's 404 it puts the upstream connection back in the
    pool while the upstream still owes a response. The next client (an authenticated victim)
    is sent down that connection and receives the smuggled request's response; the victim's
    own response (echoing its verified X-Client-Id/X-Scopes) goes to whoever takes the
    connection next: here an unauthenticated attacker polling a public path."""
    inner = b"GET /public/x?behaviour=sleep&seconds=0.3 HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    await raw_request(gw.url, _connect_smuggling(inner))
    token = mint()
    victim_request = _request(
        "GET", "/api/user/me?behaviour=sleep&seconds=0.3", "Connection: close",
        f"Authorization: Bearer {token}",
    )  # fmt: skip

    async def attacker() -> list[bytes]:
        stolen = []
        await asyncio.sleep(0.1)  # the victim has taken the poisoned connection
        for _ in range(30):
            await asyncio.sleep(0.02)
            polled = await raw_request(gw.url, _request("GET", "/public/poll", "Connection: close"))
            if b"/public/poll" not in polled.body:
                stolen.append(polled.body)
        return stolen

    victim, stolen = await asyncio.gather(raw_request(gw.url, victim_request), attacker())
    assert json.loads(victim.body)["raw_path"].startswith("/api/user/me"), victim.body
    assert not [body for body in stolen if b"svc-orders" in body], stolen


async def test_r1_connect_is_not_forwarded_with_a_body(through, recorder):
    """The same request seen by h11: the gateway sends CONNECT upstream with a Content-Length
    body, a message RFC 9110 §9.3.6 says has no content (and whose 2xx would turn the pooled
    connection into a tunnel, RFC 9112 §6.3, which the pool never considers)."""
    gw = await through()
    inner = b"GET /api/admin/users HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    await raw_request(gw.url, _connect_smuggling(inner))
    await asyncio.sleep(0.2)
    for raw in recorder.raw:  # per upstream connection
        sent = bytes(raw)
        if sent.startswith(b"CONNECT "):
            head, _, after = sent.partition(b"\r\n\r\n")
            assert b"content-length" not in head.lower() and after == b"", sent


# --- R2 (medium): slow readers hold the upstream pool forever ----------------------------------


async def test_r2_clients_that_stop_reading_cannot_starve_everyone(make_gateway, upstream):
    """MEDIUM (DoS). Relaying a response, the gateway waits in drain() for a client that stopped
    reading with no deadline, holding its upstream pool slot; a request that finds every slot
    taken waits on the pool's semaphore with no deadline either. `upstream.max_connections`
    clients (256 by default; 2 here) that GET a large response and never read it make every
    later request hang: no 504 after `upstream.timeout_seconds` (5 here), nothing logged."""
    gw = await make_gateway(lambda config: config["upstream"].update(max_connections=2))
    host, port = gw.url.removeprefix("http://").split(":")
    stalled = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(_request("GET", f"/public/big?behaviour=big&bytes={32 * 1024 * 1024}"))
        stalled.append(sock)
    try:
        await asyncio.sleep(1.0)
        started = time.monotonic()
        try:
            answer: RawResponse | None = await raw_request(
                gw.url, _request("GET", "/public/x", "Connection: close"), within_seconds=9
            )
        except TimeoutError:
            answer = None
        waited = time.monotonic() - started
        assert answer is not None, f"no answer at all after {waited:.1f}s (timeout_seconds=5)"
    finally:
        for sock in stalled:
            sock.close()
