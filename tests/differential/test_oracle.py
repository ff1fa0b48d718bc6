"""The oracle's rules on made-up exchanges (no gateway, no sockets): each rule fires on the
disagreement it names and stays quiet on an honest exchange, including the rules that today's
gateway never trips, so that none of them is silently dead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.differential.harness import Credentials, Observation
from tests.differential.oracle import Exchange, judge
from tests.support.recording_upstream import ReceivedRequest

UPSTREAM = "127.0.0.1:9"
CREDENTIALS = Credentials("http://issuer.test", "valid", "no-scope", "forged")


def received(
    target: bytes = b"/public/x",
    extra: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    rid: str = "r0",
    method: bytes = b"GET",
) -> ReceivedRequest:
    """A request as the gateway frames it for the upstream (CONTRACT, default config)."""
    headers = [
        *(extra or []),
        (b"X-Request-Id", rid.encode()),
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"gw.test"),
        (b"Host", UPSTREAM.encode()),
    ]
    if body:
        headers.append((b"Content-Length", str(len(body)).encode()))
    request = ReceivedRequest(0, 0, method, target, b"1.1", headers, bytearray(body))
    request.complete = True
    return request


def logged(
    rid: str = "r0", path: str = "/public/x", status: int = 200, **fields: Any
) -> dict[str, Any]:
    line = {"request_id": rid, "method": "GET", "path": path, "status": status,
            "decision": "allow", "reason": "public", "client_id": None, "upstream_ms": 1.0,
            "body_bytes": None}  # fmt: skip
    line.update(fields)
    return line


def answer(rid: str = "r0", status: int = 200, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nX-Request-Id: %s\r\nContent-Length: 0\r\n%s\r\n" % (
        status,
        rid.encode(),
        extra,
    )


def judged(
    stream: bytes,
    upstream: list[ReceivedRequest],
    logs: list[dict[str, Any]],
    responses: bytes,
    **overrides: Any,
) -> set[str]:
    fields: dict[str, Any] = {
        "variant": "default",
        "chunks": [stream],
        "sent": stream,
        "received": responses,
        "closed_by_gateway": False,
        "upstream_requests": upstream,
        "upstream_raw": {},
        "upstream_errors": {},
        "upstream_open": set(),
        "upstream_tunnelled": {},
        "requests_logged": logs,
        "http_errors": [],
    }
    fields.update(overrides)
    return {f.rule for f in judge(Exchange(Observation(**fields), CREDENTIALS, UPSTREAM))}


GET = b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def test_an_honest_exchange_passes_every_rule() -> None:
    assert judged(GET, [received()], [logged()], answer()) == set()


CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "hop_by_hop_forwarded",  # the field the client's Connection listed went on
        {
            "stream": b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: X-Hop\r\n"
            b"X-Hop: 1\r\n\r\n",
            "upstream": [received(extra=[(b"X-Hop", b"1")])],
        },
    ),
    (
        "framing_headers",
        {
            "stream": b"POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2\r\n\r\nhi",
            "upstream": [received(extra=[(b"Transfer-Encoding", b"chunked")], body=b"hi")],
            "logs": [logged(body_bytes=2, method="POST")],
        },
    ),
    ("gateway_misread", {"logs": [logged(path="/public/y")], "upstream": []}),
    (
        "log_mismatch",  # both forwarded, the upstream saw them in the other order
        {
            "stream": GET + GET,
            "upstream": [received(rid="r1"), received(rid="r0")],
            "logs": [logged("r0"), logged("r1")],
            "responses": answer("r0") + answer("r1"),
        },
    ),
    (
        "refusal_kept_open",
        {
            "stream": GET + b"\x00",
            "responses": answer() + answer("e0", 400, b"Connection: close\r\n"),
            "http_errors": [{"request_id": "e0", "status": 400, "error": "HttpParserError"}],
        },
    ),
    ("upstream_tunnel", {"upstream_tunnelled": {0: b"GET /next HTTP/1.1\r\n"}}),
    (
        "body_mismatch",  # the log's body_bytes disagrees with what arrived
        {
            "stream": b"POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2\r\n\r\nhi",
            "upstream": [received(body=b"hi", method=b"POST")],
            "logs": [logged(body_bytes=3, method="POST")],
        },
    ),
    ("identity_header_forged", {"upstream": [received(extra=[(b"X-Client-Id", b"admin")])]}),
    (
        "trailer_promoted",
        {
            "stream": b"POST /public/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
            "upstream": [received(extra=[(b"X-T", b"1")], body=b"hi", method=b"POST")],
            "logs": [logged(body_bytes=2, method="POST")],
        },
    ),
    (
        "kept_open_after_close",  # `Connection: close`, answered as if keep-alive
        {"stream": b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"},
    ),
    (
        "unlogged_forward",  # acted on upstream, logged as answered without it
        {"logs": [logged(upstream_ms=None, status=400)], "responses": answer(status=400)},
    ),
    (
        "upstream_left_mid_request",
        {"upstream_open": {0}, "upstream": [received(body=b"")]},
    ),
]


@pytest.mark.parametrize(("rule", "case"), CASES, ids=[rule for rule, _ in CASES])
def test_each_rule_fires_on_its_disagreement(rule: str, case: dict[str, Any]) -> None:
    case = dict(case)
    stream = case.pop("stream", GET)
    upstream = case.pop("upstream", [received()])
    logs = case.pop("logs", [logged()])
    responses = case.pop("responses", answer())
    if rule == "upstream_left_mid_request":
        upstream[0].complete = False
    assert rule in judged(stream, upstream, logs, responses, **case)
