"""HTTP edge hygiene: smuggling, size limits, slow clients, connection caps, forwarded headers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from tests.support.raw_http import get, raw_request
from tests.support.servers import header_values
from tests.support.waiting import eventually

BEARER = "Authorization: Bearer "


def smuggling_cases(token: str) -> dict[str, bytes]:
    auth = f"{BEARER}{token}\r\n".encode()
    head = b"POST /api/user/x HTTP/1.1\r\nHost: a\r\n" + auth
    return {
        "CL and TE": head + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "TE and CL": head + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "two CL": head + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
        "two equal CL": head + b"Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        "CL list": head + b"Content-Length: 4, 4\r\n\r\nabcd",
        "obs-fold": head + b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "TE identity": head + b"Transfer-Encoding: identity\r\n\r\n",
        "TE chunked not last": head + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "TE with space": head + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "bad chunk size": head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "bare LF": b"GET /api/user/x HTTP/1.1\nHost: a\n" + auth.replace(b"\r\n", b"\n") + b"\n",
        "NUL in header": head + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        "space before colon": b"GET /api/user/x HTTP/1.1\r\nHost: a\r\nAuthorization : Bearer "
        + token.encode() + b"\r\n\r\n",
        "two Host": b"GET /api/user/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + auth + b"\r\n",
    }  # fmt: skip


async def test_request_smuggling_is_refused_and_never_forwarded(gw, mint, upstream):
    token = mint()
    for name, request in smuggling_cases(token).items():
        response = await raw_request(gw.url, request)
        assert response.status == 400, name
        assert response.header("Content-Type") == "application/json", name
        assert set(response.json()) == {"error", "error_description", "request_id"}
        # aiohttp's own 400 would quote the offending line, credential included.
        assert token.split(".")[1] not in response.body.decode(), name
        assert response.header("Connection") == "close"
    assert upstream.requests == []
    assert (await gw.get("/api/user/x", mint())).status == 200  # healthy afterwards
    metrics = await gw.metrics_text()
    assert (
        f'm2mgate_client_errors_total{{kind="bad_http"}} {len(smuggling_cases(token))}.0' in metrics
    )


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (get("/api/user/" + "a" * 300), 414),
        (get("/api/user/x", "X-Big: " + "a" * 1100), 431),
        (get("/api/user/x", *[f"X-H{index}: 1" for index in range(30)]), 431),
    ],
    ids=["long URL", "big header", "many headers"],
)
async def test_configurable_header_and_url_limits(make_gateway, request_bytes, status):
    limits = {
        "max_url_bytes": 256,
        "max_header_bytes": 1024,
        "max_headers": 20,
        "max_token_bytes": 512,
    }
    gw = await make_gateway(lambda c: c.update(limits=limits))
    response = await raw_request(gw.url, request_bytes)
    assert response.status == status
    assert response.json()["error"] == "invalid_request"


async def test_body_size_limit_declared_and_streamed(make_gateway, mint, upstream):
    gw = await make_gateway(lambda c: c.update(limits={"max_body_bytes": 1000}))
    headers = {"Authorization": f"Bearer {mint()}"}
    async with gw.http.post(gw.url + "/api/user/x", data=b"a" * 1001, headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "request_too_large"
    assert upstream.requests == []  # refused from Content-Length, before connecting

    async def chunks():
        for _ in range(20):
            yield b"b" * 100

    async with gw.http.post(gw.url + "/api/user/x", data=chunks(), headers=headers) as response:
        assert response.status == 413  # chunked: counted while streaming, cut at the limit
    assert all(seen["body_length"] <= 1000 for seen in upstream.requests)
    async with gw.http.post(gw.url + "/api/user/x", data=b"c" * 1000, headers=headers) as response:
        assert response.status == 200  # at the limit is fine
    assert gw.access_events()[-2]["reason"] == "ok"  # the decision allowed; the body broke a limit


async def test_a_stalled_body_times_out_with_408(make_gateway, mint, upstream):
    gw = await make_gateway(lambda c: c.update(limits={"body_idle_timeout_seconds": 0.3}))
    request = (
        f"POST /api/user/x HTTP/1.1\r\nHost: a\r\n{BEARER}{mint()}\r\n"
        "Content-Length: 100\r\nConnection: close\r\n\r\nonly-part"
    ).encode()
    response = await raw_request(gw.url, request)
    assert response.status == 408
    assert response.json()["error"] == "request_timeout"


async def test_slow_clients_are_cut_off(make_gateway, mint):
    gw = await make_gateway(lambda c: c.update(limits={"head_timeout_seconds": 0.3}))
    host, port = gw.url.removeprefix("http://").split(":")
    silent_reader, _silent_writer = await asyncio.open_connection(host, int(port))
    trickle_reader, trickle_writer = await asyncio.open_connection(host, int(port))
    trickle_writer.write(b"GET /api/user/x HTTP/1.1\r\nHost: a\r\n")  # ...and never the rest
    for _ in range(3):  # keep trickling bytes: progress must not extend the deadline
        await asyncio.sleep(0.1)
        trickle_writer.write(b"X-A: 1\r\n")
    assert await _closed_by_peer(silent_reader)  # closed by the gateway
    assert await _closed_by_peer(trickle_reader)
    assert (await gw.get("/api/user/x", mint())).status == 200  # real clients unaffected
    text = await gw.metrics_text()
    assert 'm2mgate_client_errors_total{kind="slow_client"} 2.0' in text


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True when the peer closed within 3 s: an EOF, or a reset (a trickling client's last
    bytes can still sit unread in the gateway's receive buffer when it closes)."""
    try:
        return await asyncio.wait_for(reader.read(), 3) == b""
    except ConnectionResetError:
        return True


async def test_keep_alive_connections_get_a_fresh_deadline_per_request(make_gateway, mint):
    gw = await make_gateway(lambda c: c.update(limits={"head_timeout_seconds": 0.5}))
    async with aiohttp.ClientSession() as http:  # one pooled connection, reused
        for _ in range(4):
            async with http.get(
                gw.url + "/api/user/x", headers={"Authorization": f"Bearer {mint()}"}
            ) as r:
                assert r.status == 200
            await asyncio.sleep(0.2)  # idle between requests is the keep-alive timeout's job


async def test_connection_cap(make_gateway, mint):
    gw = await make_gateway(
        lambda c: c.update(limits={"max_connections": 3, "head_timeout_seconds": 30})
    )
    host, port = gw.url.removeprefix("http://").split(":")
    held = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    await eventually(lambda: gw.gateway.open_connections == 3)
    extra_reader, _ = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(extra_reader.read(), 3) == b""  # over the cap: closed
    for _, writer in held:
        writer.close()
    await eventually(lambda: gw.gateway.open_connections == 0)
    assert (await gw.get("/api/user/x", mint())).status == 200
    assert 'm2mgate_client_errors_total{kind="over_capacity"} 1.0' in await gw.metrics_text()


FORGED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "bank.example",
}


@pytest.mark.parametrize(
    ("trusted", "xff", "proto", "host"),
    [
        (None, "203.0.113.9, 127.0.0.1", "http", "GW"),  # default: chain kept, peer appended
        (["10.0.0.0/8"], "127.0.0.1", "http", "GW"),  # peer not trusted: replaced
        (["127.0.0.1/32"], "203.0.113.9, 127.0.0.1", "https", "bank.example"),  # trusted proxy
    ],
    ids=["no trust settings", "untrusted peer", "trusted peer"],
)
async def test_forwarded_headers_follow_the_trust_settings(
    make_gateway, mint, trusted, xff, proto, host
):
    def configure(config: dict[str, Any]) -> None:
        if trusted is not None:
            config["forward"] = {"trusted_proxies": trusted}

    gw = await make_gateway(configure)
    seen = await (await gw.get("/api/user/x", mint(), headers=FORGED)).json()
    assert header_values(seen, "X-Forwarded-For") == [xff]
    assert header_values(seen, "X-Forwarded-Proto") == [proto]
    expected_host = gw.url.removeprefix("http://") if host == "GW" else host
    assert header_values(seen, "X-Forwarded-Host") == [expected_host]


def _stalled_reader(url: str, path: str) -> socket.socket:
    """A client that asks for a large response and never reads it."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
    return sock


BIG = f"/public/big?behaviour=big&bytes={32 * 1024 * 1024}"


async def test_a_client_that_stops_reading_is_cut_and_frees_its_upstream_connection(
    make_gateway, upstream
):
    """#8 review R2: relaying to a client that read nothing, the gateway waited forever,
    holding a pooled upstream connection; `upstream.max_connections` such clients starved
    everyone. `limits.send_timeout_seconds` bounds the wait."""

    def configure(config: dict[str, Any]) -> None:
        config["upstream"]["max_connections"] = 1
        config["limits"] = {"send_timeout_seconds": 0.5}

    gw = await make_gateway(configure)
    stalled = _stalled_reader(gw.url, BIG)
    try:
        await eventually(lambda: any(e["path"] == "/public/big" for e in gw.access_events()), 10)
        (line,) = [e for e in gw.access_events() if e["path"] == "/public/big"]
        assert line["client_gone"] is True
        assert "send_timeout_seconds" in line["detail"]
        response = await gw.get("/public/after")  # the one pooled connection is free again
        assert response.status == 200
    finally:
        stalled.close()


async def test_a_request_finding_every_upstream_connection_busy_gets_504_in_time(
    make_gateway, upstream
):
    def configure(config: dict[str, Any]) -> None:
        config["upstream"].update(max_connections=1, connect_timeout_seconds=0.3)

    gw = await make_gateway(configure)
    stalled = _stalled_reader(gw.url, BIG)  # holds the only upstream connection for 60 s
    try:
        await eventually(lambda: gw.gateway.runtime.forwarder.pool.idle_connections == 0)
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        response = await gw.get("/public/other")
        assert response.status == 504
        assert asyncio.get_running_loop().time() - started < 3
        (line,) = [e for e in gw.access_events() if e["path"] == "/public/other"]
        assert "no free upstream connection" in line["upstream_detail"]
        assert line["upstream_ms"] is None  # it never reached the upstream
    finally:
        stalled.close()
