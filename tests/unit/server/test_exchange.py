"""The protocol-neutral exchange as a second user sees it: a check-only handler (no upstream,
as an ext_authz or auth_request endpoint would be) answers from the head alone, through the
same head / body / response values the proxy handler gets."""

from __future__ import annotations

from m2mgate.server.exchange import PeerFacts, RequestBody, RequestHead, ResponseSink
from m2mgate.server.request_head import parse_head
from tests.support.waiting import eventually
from tests.unit.server.test_http1_server import connection


async def check_only(head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
    allowed = head.authorization == ["Bearer good"] and head.path == "/check"
    response.request_id = "rid-1"
    response.respond(200 if allowed else 403, [("X-Query", head.query)], b"")


async def test_a_check_only_handler_needs_no_upstream():
    conn, transport, errors = connection(check_only)
    conn.data_received(
        b"GET /check?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n"
        b"GET /check HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer bad\r\n\r\n"
    )
    await eventually(lambda: transport.written.count(b"HTTP/1.1 ") == 2)
    first, second = transport.written.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and b"X-Query: x=1\r\n" in first
    assert second.startswith(b"403 ")
    assert errors == []


def test_the_head_is_a_value_split_once():
    peer = PeerFacts("10.0.0.1")
    head = parse_head(
        "GET", "/a/b?c=d", "1.1", [("Host", "api")], [(b"host", "api")], upgrade=False, peer=peer
    )
    assert isinstance(head, RequestHead)
    assert (head.path, head.query, head.authority, head.scheme) == ("/a/b", "c=d", "api", "http")
    assert head.peer is peer and head.peer.tls is None
