"""When everything around the gateway fails: a broken identity provider, a broken upstream."""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.test_key_lifecycle import FakeClock, metric
from tests.support.tokens import claims_for
from tests.support.waiting import eventually


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- identity provider faults ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hang", "status500", "html", "huge", "redirect"])
async def test_warm_cache_keeps_traffic_flowing_through_an_idp_outage(
    make_gateway, jwks, mint, mode
):
    gw = await make_gateway(lambda c: c["issuers"][0].update(jwks={"fetch_timeout_seconds": 1}))
    cache = gw.gateway.key_caches["local"]
    jwks.behaviour.mode = mode
    refresh = asyncio.create_task(cache.refresh())  # a refresh in flight (hanging, or failing)
    token = mint()
    semaphore = asyncio.Semaphore(32)

    async def call() -> tuple[int, float]:
        async with semaphore:
            started = time.perf_counter()
            status = (await gw.get("/api/user/x", token)).status
            return status, time.perf_counter() - started

    results = await asyncio.gather(*(call() for _ in range(500)))
    assert {status for status, _ in results} == {200}  # 100%, during the outage
    assert max(elapsed for _, elapsed in results) < 0.9  # never waited on the stuck fetch
    assert await refresh is False
    jwks.behaviour.mode = "ok"
    jwks.release_hanging()
    assert await cache.refresh()  # recovery is automatic (here: the next refresh)


async def test_ten_thousand_random_kids_cause_one_fetch_per_cooldown(
    make_gateway, jwks, rsa_signer, mint
):
    clock = FakeClock()
    gw = await make_gateway(clock=clock)
    semaphore = asyncio.Semaphore(64)
    rng = random.Random(7)

    async def spray(index: int) -> int:
        token = rsa_signer.sign(
            claims_for(jwks.issuer), header={"kid": f"{rng.getrandbits(64):x}-{index}"}
        )
        async with semaphore:
            return (await gw.get("/api/user/x", token)).status

    clock.now += 31  # one cooldown window has passed since the start-up fetch
    statuses = await asyncio.gather(*(spray(index) for index in range(10_000)))
    assert set(statuses) == {401}
    assert jwks.fetches == 2  # start-up + one refetch for the whole window
    clock.now += 31  # the next window: again at most one
    await asyncio.gather(*(spray(index) for index in range(500)))
    assert jwks.fetches == 3
    assert (await gw.get("/api/user/x", mint())).status == 200


# --- upstream faults --------------------------------------------------------------------------


class FlakyUpstream:
    """A raw HTTP/1.1 server: on each keep-alive connection it answers the first request and
    then, on the next one, closes without answering (a keep-alive timeout racing the reuse)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []  # (method, request number on its connection)
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method = head.split(b" ", 1)[0].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                served += 1
                self.requests.append((method, served))
                if served > 1:
                    break  # the stale-connection race: close, answer nothing
                body = b'{"ok": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                )  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def test_stale_pooled_connection_retries_idempotent_requests_only(make_gateway, mint):
    flaky = FlakyUpstream()
    url = await flaky.start()
    gw = await make_gateway(lambda c: c["upstream"].update(url=url))
    token = mint()
    assert (await gw.get("/api/user/a", token)).status == 200  # opens and pools a connection
    assert (await gw.get("/api/user/b", token)).status == 200  # stale: retried once, fresh conn
    assert flaky.requests == [("GET", 1), ("GET", 2), ("GET", 1)]
    async with gw.http.post(
        gw.url + "/api/user/c", data=b"x", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 502  # POST is not idempotent: never replayed
        assert (await r.json())["error"] == "bad_gateway"
    assert [method for method, _ in flaky.requests].count("POST") == 1
    assert flaky.server is not None
    flaky.server.close()


async def test_slow_upstream_body_cuts_the_client_off_within_the_timeout(
    make_gateway, mint, aiohttp_server
):
    from aiohttp import web

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", stall)
    server = await aiohttp_server(app)
    gw = await make_gateway(
        lambda c: c["upstream"].update(
            url=str(server.make_url("")).rstrip("/"), timeout_seconds=0.3
        )
    )
    started = time.perf_counter()
    async with gw.http.get(
        gw.url + "/api/user/x", headers={"Authorization": f"Bearer {mint()}"}
    ) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert time.perf_counter() - started < 3
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_upstream_errors_total", kind="aborted") == 1


async def test_slow_upstream_headers_give_504_within_the_timeout(make_gateway, mint):
    gw = await make_gateway(lambda c: c["upstream"].update(timeout_seconds=0.3))
    started = time.perf_counter()
    response = await gw.get("/api/user/x?behaviour=hang", mint())
    assert response.status == 504
    assert (await response.json())["error"] == "gateway_timeout"
    assert time.perf_counter() - started < 1.5


async def test_a_huge_response_streams_through(make_gateway, mint):
    gw = await make_gateway()
    size = 50 * 1024 * 1024
    received = 0
    async with gw.http.get(
        gw.url + f"/api/user/big?behaviour=big&bytes={size}",
        headers={"Authorization": f"Bearer {mint()}"},
    ) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1024 * 1024):
            received += len(chunk)
    assert received == size


async def test_no_leaked_connections_or_fds_after_ten_thousand_failures(make_gateway, mint):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    gw = await make_gateway(lambda c: c["upstream"].update(url=f"http://127.0.0.1:{closed_port}"))
    token = mint()
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def call() -> int:
            async with http.get(
                gw.url + "/api/user/x", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                await r.read()
                return r.status

        for _ in range(2):  # warm-up: pools and lazily created objects reach steady state
            await asyncio.gather(*(call() for _ in range(200)))
        baseline = open_fds()
        statuses: list[int] = []
        for _ in range(50):
            statuses += await asyncio.gather(*(call() for _ in range(200)))
    assert len(statuses) == 10_000
    assert set(statuses) == {502}
    await eventually(lambda: gw.gateway.open_connections == 0)
    assert open_fds() <= baseline + 5  # flat: the client's 32 pooled connections were closed
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_upstream_errors_total", kind="unavailable") == 10_400


async def test_upstream_reset_mid_response_keeps_gateway_healthy(gw, mint):
    for _ in range(20):
        async with gw.http.get(
            gw.url + "/api/user/x?behaviour=abort", headers={"Authorization": f"Bearer {mint()}"}
        ) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
    assert (await gw.get("/api/user/x", mint())).status == 200
    events: list[dict[str, Any]] = [
        e for e in gw.access_events() if e["upstream_failure"] == "aborted"
    ]
    assert len(events) == 20


async def test_an_upstream_answering_before_the_body_ends_keeps_the_client_connection(
    make_gateway, mint, aiohttp_server
):
    """Found by the benchmark: nginx answers `return 200` before reading a 1 MiB POST. The
    gateway must stop reading the client's body before its handler returns (aiohttp then
    discards the rest itself); two readers on one body broke the client's connection."""
    from aiohttp import web

    async def early(request: web.Request) -> web.Response:
        return web.Response(text="early")  # never reads the body

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", early)
    server = await aiohttp_server(app)
    gw = await make_gateway(
        lambda c: c["upstream"].update(url=str(server.make_url("")).rstrip("/"))
    )

    token = mint()
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def response() -> tuple[bytes, bytes]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        return head.split(b" ")[1], await reader.readexactly(length)

    for _ in range(3):  # one client connection, reused
        writer.write(
            f"POST /api/user/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 30000\r\n\r\n".encode()
            + b"x" * 10000
        )
        assert await response() == (b"200", b"early")  # before the body is complete
        writer.write(b"y" * 20000)  # the rest of the body, still on its way
    writer.write(
        f"GET /api/user/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    assert (await response())[0] == b"200"  # the connection survived
    writer.close()
    log = gw.log_stream.getvalue()
    assert "unhandled_error" not in log
    assert "Unhandled exception" not in log


async def test_a_client_leaving_mid_body_is_logged_as_499_not_a_gateway_bug(gw, mint):
    host, port = gw.url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /api/user/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {mint()}\r\n"
        "Content-Length: 100000\r\n\r\n".encode()
        + b"x" * 1000
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()  # the client goes away mid-body
    await eventually(lambda: any(e["status"] == 499 for e in gw.access_events()))
    event = next(e for e in gw.access_events() if e["status"] == 499)
    assert event["client_gone"] is True
    assert "unhandled_error" not in gw.log_stream.getvalue()
