"""The head rules the listener applies on top of llhttp's, as plain functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from m2mgate.server.request_cycle import RequestCycle
from m2mgate.server.request_head import read_head_fields, refusal


class _NoConnection:
    remote = "127.0.0.1"


def cycle(version: str = "1.1") -> RequestCycle:
    conn: Any = _NoConnection()
    return RequestCycle(conn, "POST", "/x", version, [], True)


def test_the_fields_the_gateway_reads():
    request = cycle()
    fields = [
        (b"host", "api.example"), (b"authorization", "Bearer a"), (b"authorization", "Bearer b"),
        (b"x-request-id", "r1"), (b"content-length", "12"), (b"expect", "100-Continue"),
    ]  # fmt: skip
    assert read_head_fields(request, fields)
    assert request.host == "api.example"
    assert request.authorization == ["Bearer a", "Bearer b"]  # both: the decision refuses two
    assert request.request_ids == ["r1"]
    assert (request.content_length, request.has_body) == (12, True)
    assert request.expect_continue


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
    assert read_head_fields(request, fields)
    assert request.has_body is has_body


@pytest.mark.parametrize(
    "fields",
    [
        [(b"host", "a"), (b"host", "b")],  # RFC 9112 §3.2
        [(b"transfer-encoding", "chunked, gzip")],  # RFC 9112 §6.1: chunked not alone
        [(b"transfer-encoding", "gzip")],
        [(b"transfer-encoding", "chunked"), (b"transfer-encoding", "chunked")],
        [(b"transfer-encoding", "identity")],
    ],
    ids=["two Host", "chunked, gzip", "gzip", "chunked twice", "identity"],
)
def test_refused_heads(fields):
    assert not read_head_fields(cycle(), fields)


def test_expect_is_ignored_from_http_1_0_clients():
    request = cycle("1.0")
    assert read_head_fields(request, [(b"expect", "100-continue")])
    assert not request.expect_continue  # RFC 9110 §10.1.1


@pytest.mark.parametrize("status", [400, 414, 431])
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
