"""The listener's connection state machine, driven byte by byte through a recording transport:
the orderings a real socket produces only by chance (a whole body arriving in one read before
the handler runs) are made certain here. Socket-level behaviour is in
tests/integration/test_http1_server.py."""

from __future__ import annotations

import asyncio
from typing import Any

from m2mgate.errors import BodyRefused
from m2mgate.server.exchange import RequestBody, RequestHead, ResponseSink
from m2mgate.server.http1_connection import HttpConnection
from m2mgate.server.http1_server import HttpServer, ServerEvents
from tests.support.waiting import eventually
from tests.unit.server.limits import LIMITS


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def connection(handler: Any) -> tuple[HttpConnection, RecordingTransport, list[int]]:
    errors: list[int] = []
    events = ServerEvents(
        http_error=lambda status, _error, _rid: errors.append(status),
        slow_client=lambda: None,
        connection_refused=lambda: None,
    )
    conn = HttpConnection(HttpServer(handler, LIMITS, events).context)
    transport = RecordingTransport()
    conn.connection_made(transport)
    return conn, transport, errors


def post(path: str, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def answer_without_reading(
    head: RequestHead, body: RequestBody, response: ResponseSink
) -> None:
    response.respond(200, [], head.target.encode())


async def test_a_body_that_ends_while_reading_is_paused_and_is_never_read_resumes_reading():
    """Found by the benchmark (nginx answering a 1 MiB POST early): the body passed the pause
    mark and ended in the same read, the handler never read it, and the connection stayed
    paused forever."""
    conn, transport, _ = connection(answer_without_reading)
    conn.data_received(post("/one", b"x" * 300_000))  # all of it before the handler runs
    assert transport.paused  # over the buffering mark
    await eventually(lambda: b"/one" in transport.written)
    await eventually(lambda: not transport.paused)
    conn.data_received(post("/two", b"y"))
    await eventually(lambda: b"/two" in transport.written)
    assert not transport.closed


async def test_pipelined_requests_wait_their_turn_with_reading_paused():
    release = asyncio.Event()

    async def slow_first(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        if head.target == "/first":
            await release.wait()
        response.respond(200, [], head.target.encode())

    conn, transport, _ = connection(slow_first)
    conn.data_received(post("/first", b"a") + post("/second", b"b"))
    await asyncio.sleep(0)
    assert transport.paused  # a request is queued: read no further
    assert b"/second" not in transport.written
    release.set()
    await eventually(lambda: b"/second" in transport.written)
    assert transport.written.index(b"/first") < transport.written.index(b"/second")
    assert not transport.paused


async def test_a_bad_chunk_in_a_body_being_handled_cancels_the_handler():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def reads_the_body(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        started.set()
        try:
            while await body.read_body(5):
                pass
        except asyncio.CancelledError:
            cancelled.set()
            raise

    conn, transport, errors = connection(reads_the_body)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    await asyncio.wait_for(started.wait(), 5)
    conn.data_received(b"zz\r\n")  # not a chunk size
    await asyncio.wait_for(cancelled.wait(), 5)
    assert errors == [400]
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.closed


async def test_an_unfinished_response_is_cut_not_left_hanging():
    async def forgets_to_finish(
        head: RequestHead, body: RequestBody, response: ResponseSink
    ) -> None:
        response.start(200, [("Content-Length", "10")], 10)
        response.write(b"short")

    conn, transport, _ = connection(forgets_to_finish)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await eventually(lambda: transport.closed)
    assert transport.written.endswith(b"short")


async def test_a_content_length_body_in_many_reads_then_a_pipelined_request():
    """Past what llhttp parsed with the head, a Content-Length body is counted, not parsed;
    the bytes right behind it are the next request."""
    seen: list[tuple[str, bytes]] = []

    async def echo_body(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        received = b""
        while chunk := await body.read_body(5):
            received += chunk
        seen.append((head.target, received))
        response.respond(200, [], b"")

    conn, transport, errors = connection(echo_body)
    request = post("/one", b"0123456789")
    conn.data_received(request[:-8])  # the head and 2 body bytes: parsed by llhttp
    conn.data_received(b"234")
    conn.data_received(b"56789" + post("/two", b"ab") + post("/three", b"")[:10])
    conn.data_received(post("/three", b"")[10:])
    await eventually(lambda: len(seen) == 3)
    assert seen == [("/one", b"0123456789"), ("/two", b"ab"), ("/three", b"")]
    assert errors == []
    assert transport.written.count(b"HTTP/1.1 200 ") == 3
    assert not transport.closed


async def test_a_refused_body_is_never_read_as_ended():
    """#8 A2: the refusal used to look like the end of the body to its reader (the upstream
    pool's body sender, a task of its own), which then finished the upstream request with a
    terminating chunk. Now that reader gets BodyRefused, the handler is cancelled, and a
    handler that has started (it set the request id) logs the request itself: no second
    report under another id."""
    outcome: list[object] = []
    started = asyncio.Event()

    async def sender(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        try:
            while await body.read_body(5):
                pass
            outcome.append("ended")  # the bug: a refused body read as a whole one
        except BodyRefused as refused:
            outcome.append(refused)

    async def forwards_the_body(
        head: RequestHead, body: RequestBody, response: ResponseSink
    ) -> None:
        response.request_id = "rid-7"
        reader = asyncio.ensure_future(sender(head, body, response))
        started.set()
        try:
            await asyncio.shield(reader)
        except asyncio.CancelledError:
            outcome.append("handler cancelled")
            await reader
            raise

    conn, transport, errors = connection(forwards_the_body)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    await asyncio.wait_for(started.wait(), 5)
    conn.data_received(b"zz\r\n")
    await eventually(lambda: len(outcome) == 2)
    assert "handler cancelled" in outcome
    assert [type(o) for o in outcome if o != "handler cancelled"] == [BodyRefused]
    assert errors == []  # the handler reports it
    assert b'"request_id": "rid-7"' in transport.written
    assert transport.closed


async def test_a_bad_chunk_before_the_handler_runs_is_reported_and_never_handled():
    handled: list[str] = []

    async def handler(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        handled.append(head.target)

    conn, transport, errors = connection(handler)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
    )
    await asyncio.sleep(0.05)
    assert handled == []
    assert errors == [400]
    assert transport.written.startswith(b"HTTP/1.1 400 ") and transport.closed


async def test_an_upgrade_request_body_is_read_by_count_and_nothing_after_it():
    """#8 A1: llhttp stops at the end of an Upgrade request's head. Its Content-Length body is
    read here, across reads, and what follows it is never parsed as a request."""
    seen: list[tuple[str, bytes]] = []

    async def echo_body(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        received = b""
        while chunk := await body.read_body(5):
            received += chunk
        seen.append((head.target, received))
        response.respond(200, [], b"")

    conn, transport, errors = connection(echo_body)
    head = (
        b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 10\r\n\r\n"
    )
    conn.data_received(head + b"0123")
    conn.data_received(b"456")
    conn.data_received(b"789" + post("/smuggled", b""))
    await eventually(lambda: transport.closed)
    assert seen == [("/up", b"0123456789")]
    assert errors == []
    assert transport.written.count(b"HTTP/1.1 200 ") == 1
    assert b"\r\nConnection: close\r\n" in transport.written


async def test_request_trailers_are_dropped_and_bounded():
    seen: list[list[tuple[str, str]]] = []

    async def headers_after_body(
        head: RequestHead, body: RequestBody, response: ResponseSink
    ) -> None:
        while await body.read_body(5):
            pass
        seen.append(list(head.headers))
        response.respond(200, [], b"")

    conn, _, _ = connection(headers_after_body)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nAuthorization: Bearer forged\r\nHost: evil\r\n\r\n"
    )
    await eventually(lambda: bool(seen))
    assert seen[0] == [("Host", "a"), ("Transfer-Encoding", "chunked")]
    many = b"".join(b"X-T%d: 1\r\n" % i for i in range(LIMITS.max_headers + 1))
    conn2, transport2, errors2 = connection(headers_after_body)
    conn2.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + many + b"\r\n"
    )
    await eventually(lambda: transport2.closed)
    assert errors2 == [431]


async def test_no_100_continue_once_the_body_has_started_to_arrive():
    """#8 review: a `100 Continue` sent after the client already sent its body is a response
    nobody asked for (a desync gadget for a proxy in front). RFC 9110 §10.1.1 lets the server
    omit it; the connection stays usable."""

    async def authorizes_then_reads(
        head: RequestHead, body: RequestBody, response: ResponseSink
    ) -> None:
        await asyncio.sleep(0.01)  # the decision takes a moment; the body is already here
        body.send_continue()
        while await body.read_body(5):
            pass
        response.respond(200, [], b"")

    conn, transport, _ = connection(authorizes_then_reads)
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    )
    await eventually(lambda: b"HTTP/1.1 200 " in transport.written)
    assert b"100 Continue" not in transport.written
    assert not transport.closed
