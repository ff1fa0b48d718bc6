"""The head rules the listener applies on top of llhttp's, as plain functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from m2mgate.server.exchange import PeerFacts, RequestHead
from m2mgate.server.request_head import HeadRefusal, parse_head, refusal


class Parsing:
    """A request line to parse; `head` is the RequestHead once parse_head accepted it."""

    def __init__(self, method: str, target: str, version: str) -> None:
        self.method, self.target, self.version = method, target, version
        self.head: Any = None


def cycle(version: str = "1.1") -> Parsing:
    return Parsing("POST", "/x", version)


HOST = (b"host", "api.example")


def read(request: Parsing, fields: list[tuple[bytes, str]], upgrade: bool = False) -> Any:
    """The refusal, or None when the head is accepted (then in `request.head`)."""
    parsed = parse_head(
        request.method,
        request.target,
        request.version,
        [],
        fields,
        upgrade=upgrade,
        peer=PeerFacts("127.0.0.1"),
    )
    if isinstance(parsed, HeadRefusal):
        return parsed
    assert isinstance(parsed, RequestHead)
    request.head = parsed
    return None


def test_the_fields_the_gateway_reads():
    request = cycle()
    fields = [
        HOST, (b"authorization", "Bearer a"), (b"authorization", "Bearer b"),
        (b"x-request-id", "r1"), (b"content-length", "12"), (b"expect", "100-Continue"),
    ]  # fmt: skip
    assert read(request, fields) is None
    assert request.head.authority == "api.example"
    assert request.head.authorization == ["Bearer a", "Bearer b"]  # both: the decision refuses two
    assert request.head.request_ids == ["r1"]
    assert (request.head.content_length, request.head.has_body) == (12, True)
    assert request.head.expect_continue


@pytest.mark.parametrize(
    ("fields", "has_body"),
    [
        ([(b"content-length", "0")], False),
        ([(b"transfer-encoding", "chunked")], True),
        ([(b"transfer-encoding", " Chunked ")], True),
        ([], False),
    ],
)
def test_framing(fields, has_body):
    request = cycle()
    assert read(request, [HOST, *fields]) is None
    assert request.head.has_body is has_body


@pytest.mark.parametrize(
    ("version", "fields", "upgrade", "status"),
    [
        ("1.1", [(b"host", "a"), (b"host", "b")], False, 400),  # RFC 9112 §3.2
        ("1.1", [HOST, (b"transfer-encoding", "chunked, gzip")], False, 400),  # §6.1
        ("1.1", [HOST, (b"transfer-encoding", "gzip")], False, 400),
        ("1.1", [HOST, (b"transfer-encoding", "chunked"), (b"transfer-encoding", "chunked")],
         False, 400),
        ("1.1", [HOST, (b"transfer-encoding", "identity")], False, 400),
        ("1.1", [], False, 400),  # RFC 9112 §3.2: an HTTP/1.1 request must carry Host
        ("1.1", [(b"host", "evil.example/a b?c@d")], False, 400),
        ("1.1", [(b"host", "a,b")], False, 400),
        ("1.1", [(b"host", "user@a")], False, 400),
        ("1.1", [(b"host", "a:99999x")], False, 400),
        ("1.0", [HOST, (b"transfer-encoding", "chunked")], False, 400),  # §6.1, as nginx
        ("1.1", [HOST, (b"transfer-encoding", "chunked")], True, 400),  # upgrade + chunked
        ("2.0", [HOST], False, 505),  # RFC 9110 §15.6.6
        ("0.9", [HOST], False, 505),
    ],
    ids=[
        "two Host", "chunked, gzip", "gzip", "chunked twice", "identity", "no Host",
        "Host not an authority", "Host with a comma", "Host with userinfo", "Host bad port",
        "HTTP/1.0 with Transfer-Encoding", "Upgrade with a chunked body", "HTTP/2.0",
        "HTTP/0.9",
    ],
)  # fmt: skip
def test_refused_heads(version, fields, upgrade, status):
    refused = read(cycle(version), fields, upgrade)
    assert refused is not None and refused.status == status
    assert refused.reason.isidentifier()  # a name for the http_error log event


@pytest.mark.parametrize(
    "host",
    ["", "api.example", "api.example:8443", "10.0.0.1:80", "[::1]:8080", "a_b.internal", "a:"],
)
def test_valid_hosts(host):
    assert read(cycle(), [(b"host", host)]) is None


def test_http_1_0_needs_no_host_and_an_upgrade_may_have_a_length():
    assert read(cycle("1.0"), []) is None
    request = cycle()
    assert read(request, [HOST, (b"content-length", "5")], upgrade=True) is None
    assert request.head.content_length == 5  # read by count, as declared


def test_a_fragment_in_the_target_is_refused():
    request = Parsing("GET", "/public/x?a#/../api/admin", "1.1")
    assert read(request, [HOST]).reason == "fragment_in_target"  # RFC 9110 §4.2.5


def test_connect_is_refused_whatever_its_target():
    """#8 review R1: CONNECT asks for a tunnel the gateway never opens; forwarded, its body
    was run upstream as a new request."""
    for target in ("/public/a", "api.example:443"):
        request = Parsing("CONNECT", target, "1.1")
        assert read(request, [HOST, (b"content-length", "5")], upgrade=True) == HeadRefusal(
            400, "connect_method"
        )


def test_expect_is_ignored_from_http_1_0_clients():
    request = cycle("1.0")
    assert read(request, [(b"expect", "100-continue")]) is None
    assert not request.head.expect_continue  # RFC 9110 §10.1.1


@pytest.mark.parametrize("status", [400, 414, 431, 505])
def test_a_refusal_is_fixed_json_and_closes(status):
    data = refusal(status, "rid-1")
    head, _, body = data.partition(b"\r\n\r\n")
    head += b"\r\n"  # every field line ends in CRLF, the last one too
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in head
    assert b"\r\nServer: m2mgate\r\n" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {
        "error": "invalid_request",
        "error_description": json.loads(body)["error_description"],
        "request_id": "rid-1",
    }
