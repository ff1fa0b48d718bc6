"""The proxy listener's HTTP/1.1 behaviour over real sockets: keep-alive, pipelining, framing
of streamed responses for 1.1 and 1.0 clients, HEAD, 100-continue, unread bodies, upgrades."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from tests.support.raw_http import RawResponse, _read_response


class Conn:
    """One raw client connection to the gateway, reused across requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Conn:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> RawResponse:
        return await asyncio.wait_for(_read_response(self.reader), 5)

    async def head_only(self) -> tuple[int, dict[str, str]]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if line)
        return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in fields.items()}

    async def is_closed_by_peer(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(), 5) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


def request(
    path: str,
    token: str | None = None,
    *extra: str,
    method: str = "GET",
    version: str = "1.1",
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: gateway.test", *extra]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def seen(response: RawResponse) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.body)
    return data


async def test_keep_alive_serves_many_requests_on_one_connection(gw, mint):
    token = mint()
    conn = await Conn.open(gw.url)
    for index in range(5):
        await conn.send(request(f"/api/user/{index}", token))
        response = await conn.response()
        assert response.status == 200
        assert seen(response)["raw_path"] == f"/api/user/{index}"
        assert response.header("Connection") is None  # HTTP/1.1: persistent by default
        assert response.header("Date") is not None
    conn.close()
    assert gw.gateway.open_connections <= 1


async def test_pipelined_requests_are_answered_in_order(gw, mint, upstream):
    token = mint()
    conn = await Conn.open(gw.url)
    # Three requests in one write; the first is slow upstream, so the others wait their turn.
    await conn.send(
        request("/api/user/first?behaviour=sleep&seconds=0.2", token)
        + request("/api/user/second", token, method="POST", body=b"abc")
        + request("/api/user/third", token)
    )
    paths = [seen(await conn.response())["raw_path"] for _ in range(3)]
    assert paths == [
        "/api/user/first?behaviour=sleep&seconds=0.2",
        "/api/user/second",
        "/api/user/third",
    ]
    assert upstream.requests[1]["body_length"] == 3
    conn.close()


async def test_a_pipelined_request_after_a_denied_one_is_still_answered(gw, mint):
    conn = await Conn.open(gw.url)
    await conn.send(request("/api/user/a") + request("/api/user/b", mint()))
    assert (await conn.response()).status == 401
    assert (await conn.response()).status == 200
    conn.close()


async def test_connection_close_is_honoured(gw, mint):
    conn = await Conn.open(gw.url)
    await conn.send(request("/api/user/x", mint(), "Connection: close"))
    response = await conn.response()
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await conn.is_closed_by_peer()


async def test_http_1_0_closes_unless_asked_to_keep_alive(gw, mint):
    token = mint()
    conn = await Conn.open(gw.url)
    await conn.send(request("/api/user/x", token, version="1.0"))
    response = await conn.response()
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await conn.is_closed_by_peer()

    conn = await Conn.open(gw.url)
    for _ in range(2):
        await conn.send(request("/api/user/x", token, "Connection: keep-alive", version="1.0"))
        response = await conn.response()
        assert response.status == 200
        assert response.header("Connection") == "keep-alive"
        assert response.header("Content-Length") is not None  # a 1.0 client cannot do chunked
    conn.close()


async def test_a_streamed_body_of_unknown_length_is_chunked_for_http_1_1(gw, mint):
    token = mint()
    size = 300_000
    conn = await Conn.open(gw.url)
    for _ in range(2):  # and the connection stays usable after it
        await conn.send(request(f"/api/user/x?behaviour=big&bytes={size}", token))
        response = await conn.response()
        assert response.status == 200
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.header("Content-Length") is None
        assert response.body == b"x" * size
    conn.close()


async def test_a_streamed_body_of_unknown_length_ends_with_the_connection_for_http_1_0(gw, mint):
    size = 300_000
    conn = await Conn.open(gw.url)
    await conn.send(request(f"/api/user/x?behaviour=big&bytes={size}", mint(), version="1.0"))
    response = await conn.response()  # no length, no chunking: read until the close
    assert response.status == 200
    assert response.header("Transfer-Encoding") is None
    assert response.header("Connection") == "close"
    assert response.body == b"x" * size


async def test_head_has_the_upstreams_length_and_no_body(gw, mint):
    token = mint()
    conn = await Conn.open(gw.url)
    await conn.send(request("/api/user/x", token, method="HEAD"))
    status, headers = await conn.head_only()
    assert status == 200
    assert int(headers["content-length"]) > 0  # what a GET would carry
    # No body followed: the next response on the connection starts right away.
    await conn.send(request("/api/user/y", token))
    response = await conn.response()
    assert response.status == 200 and seen(response)["raw_path"] == "/api/user/y"
    conn.close()


async def test_100_continue_only_once_authorized(gw, mint, upstream):
    body = b"z" * 5000
    conn = await Conn.open(gw.url)
    head = request(
        "/api/user/x", mint(), "Expect: 100-continue", f"Content-Length: {len(body)}", method="POST"
    )
    await conn.send(head)
    status, _ = await conn.head_only()
    assert status == 100  # authorized: go ahead
    await conn.send(body)
    response = await conn.response()
    assert response.status == 200
    assert seen(response)["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert all(name.lower() != "expect" for name, _ in seen(response)["headers"])
    conn.close()

    upstream.requests.clear()
    conn = await Conn.open(gw.url)
    await conn.send(
        request("/api/user/x", None, "Expect: 100-continue", "Content-Length: 5000", method="POST")
    )
    response = await conn.response()  # refused without ever asking for the body
    assert response.status == 401
    assert response.header("Connection") == "close"  # its body may or may not follow
    assert await conn.is_closed_by_peer()
    assert upstream.requests == []


async def test_an_unread_body_is_discarded_and_the_connection_kept(gw, mint, upstream):
    conn = await Conn.open(gw.url)
    body = b"q" * 300_000  # more than the listener buffers before it pauses reading
    await conn.send(request("/api/user/x", None, method="POST", body=body))  # no token: 401
    assert (await conn.response()).status == 401
    await conn.send(request("/api/user/after", mint()))
    response = await conn.response()
    assert response.status == 200 and seen(response)["raw_path"] == "/api/user/after"
    assert upstream.requests[-1]["raw_path"] == "/api/user/after"
    conn.close()


async def test_a_huge_unread_body_closes_the_connection(gw):
    conn = await Conn.open(gw.url)
    await conn.send(
        request("/api/user/x", None, "Content-Length: 8000000", method="POST") + b"q" * 100_000
    )
    assert (await conn.response()).status == 401
    conn.writer.write(b"q" * 2_000_000)  # over the discard bound
    assert await conn.is_closed_by_peer()


async def test_an_upgrade_request_is_answered_plainly_then_closed(gw, mint, upstream):
    conn = await Conn.open(gw.url)
    await conn.send(
        request("/api/user/ws", mint(), "Connection: Upgrade", "Upgrade: websocket")
        + b"\x81\x05hello"  # bytes of another protocol right behind it
    )
    response = await conn.response()
    assert response.status == 200
    forwarded = {name.lower() for name, _ in seen(response)["headers"]}
    assert "upgrade" not in forwarded  # hop-by-hop: never proxied
    assert response.header("Connection") == "close"
    assert await conn.is_closed_by_peer()
    assert len(upstream.requests) == 1


async def test_a_client_leaving_mid_response_never_breaks_the_listener(gw, mint):
    token = mint()
    for _ in range(3):
        conn = await Conn.open(gw.url)
        await conn.send(request("/api/user/x?behaviour=big&bytes=4000000", token))
        await conn.reader.readexactly(1000)
        conn.writer.transport.abort()
    assert (await gw.get("/api/user/x", token)).status == 200
    assert "unhandled_error" not in gw.log_stream.getvalue()
