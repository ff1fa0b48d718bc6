"""The upstream seam with plain values: a list of byte chunks as the body, a recording upstream
on loopback, and the pure head encoder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from m2mgate.errors import RequestTooLarge
from m2mgate.proxy.http1_client import UpstreamPool
from m2mgate.proxy.request_head import encode_request_head
from m2mgate.proxy.upstream import UpstreamRequest

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def chunks(*items: bytes, then: BaseException | None = None) -> AsyncIterator[bytes]:
    for item in items:
        yield item
    if then is not None:
        raise then


class Recorder:
    """An upstream that records every byte it receives and answers OK once a request's end
    (`until`) has arrived."""

    def __init__(self, until: bytes) -> None:
        self.until = until
        self.received = b""
        self.connections = 0
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.received += data
                if self.received.endswith(self.until):
                    writer.write(OK)
        finally:
            self.closed.set()
            writer.close()

    async def pool(self) -> tuple[asyncio.Server, UpstreamPool]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return server, UpstreamPool(
            "127.0.0.1", port, connect_timeout=2, timeout=2, max_connections=2
        )


async def test_a_list_of_chunks_goes_chunked_and_completes():
    upstream = Recorder(until=b"0\r\n\r\n")
    server, pool = await upstream.pool()
    try:
        response = await pool.send(UpstreamRequest("POST", "/p", [], chunks(b"ab", b"", b"cde")))
        assert (response.status, await response.read(), await response.read()) == (200, b"ok", b"")
        response.release()
        assert pool.idle_connections == 1  # complete and kept alive: pooled
    finally:
        await pool.close()
        server.close()
    body = upstream.received.partition(b"\r\n\r\n")[2]
    assert body == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    assert b"Transfer-Encoding: chunked\r\n" in upstream.received


async def test_a_declared_length_is_sent_as_is():
    upstream = Recorder(until=b"abcde")
    server, pool = await upstream.pool()
    try:
        request = UpstreamRequest("PUT", "/p", [], chunks(b"ab", b"cde"), content_length=5)
        response = await pool.send(request)
        assert response.content_length == 2
        assert [chunk async for chunk in response] == [b"ok"]
        response.release()
    finally:
        await pool.close()
        server.close()
    assert upstream.received.endswith(b"Content-Length: 5\r\n\r\nabcde")


async def test_a_body_that_raises_never_completes_the_upstream_request():
    """#8: the body's own exception comes back, no terminating chunk is written, and the
    connection is never pooled."""
    upstream = Recorder(until=b"0\r\n\r\n")
    server, pool = await upstream.pool()
    refused = RequestTooLarge("body over 3 bytes")
    try:
        with pytest.raises(RequestTooLarge) as raised:
            await pool.send(UpstreamRequest("POST", "/p", [], chunks(b"abc", then=refused)))
        assert raised.value is refused
        assert pool.idle_connections == 0
        await asyncio.wait_for(upstream.closed.wait(), 5)
    finally:
        await pool.close()
        server.close()
    assert upstream.received.endswith(b"\r\n\r\n3\r\nabc\r\n")
    assert b"0\r\n\r\n" not in upstream.received.partition(b"\r\n\r\n")[2]


async def test_the_head_is_known_sent_before_the_response():
    upstream = Recorder(until=b"\r\n\r\n")
    server, pool = await upstream.pool()
    sent: list[bool] = []
    try:
        request = UpstreamRequest("GET", "/", [], on_head_sent=lambda: sent.append(True))
        response = await pool.send(request)
        response.release()
    finally:
        await pool.close()
        server.close()
    assert sent == [True]


def test_the_head_encoder_owns_the_framing():
    headers = [("Content-Length", "99"), ("transfer-encoding", "gzip"), ("X-A", "1")]
    chunked = encode_request_head(
        "POST", "/a?b", headers, "up:8080", content_length=None, chunked=True
    )
    assert chunked == (
        b"POST /a?b HTTP/1.1\r\nX-A: 1\r\nHost: up:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sized = encode_request_head("PUT", "/", [("Host", "h")], "up", content_length=0, chunked=False)
    assert sized == b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    bare = encode_request_head("GET", "/", [], "up", content_length=None, chunked=False)
    assert bare == b"GET / HTTP/1.1\r\nHost: up\r\n\r\n"
