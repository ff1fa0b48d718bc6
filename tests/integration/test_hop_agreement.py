"""The gateway and the upstream must agree on where each message ends and what its headers are
(#8, part A). Each test sends exact bytes through the real gateway to an upstream that parses
them with h11 (tests/support/recording_upstream.py, not llhttp) and compares what that upstream
received with what the gateway decided: its response and its access log line.

Every case here was a hole on the code before #8: the test fails there, with the upstream
running a request nobody authorised or reading headers the gateway never checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import RunningGateway
from tests.support.raw_http import RawResponse, _read_response
from tests.support.waiting import eventually

SMUGGLED = (
    b"GET /api/admin/users HTTP/1.1\r\nHost: u\r\nX-Client-Id: admin\r\nX-Scopes: admin\r\n\r\n"
)


async def exchange(gw: RunningGateway, *parts: bytes, pause: float = 0.05) -> list[RawResponse]:
    """Send `parts` on one connection (pausing between them), then read every response until
    the gateway closes the connection or goes quiet."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    responses: list[RawResponse] = []
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        while True:
            try:
                responses.append(await asyncio.wait_for(_read_response(reader), 1.5))
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                break
    finally:
        writer.close()
    return responses


def head(path: str, *fields: str, method: str = "GET", version: str = "1.1") -> bytes:
    return (f"{method} {path} HTTP/{version}\r\n" + "".join(f"{f}\r\n" for f in fields)).encode()


# --- A1: smuggling through Upgrade ----------------------------------------------------------


@pytest.mark.parametrize(
    "upgrade",
    [
        ("Connection: Upgrade", "Upgrade: websocket"),
        ("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQ"),
        ("Connection: keep-alive, Upgrade", "Upgrade: websocket"),
    ],
    ids=["websocket", "h2c", "keep-alive, Upgrade"],
)
@pytest.mark.parametrize("version", ["1.1", "1.0"])
async def test_an_upgrade_request_body_is_its_body_not_the_next_request(
    through, recorder, upgrade, version
):
    """Critical (#8 A1): llhttp made an Upgrade request bodyless and its Content-Length was
    forwarded without the bytes, so the upstream read the next pooled request as that body
    and ran whatever followed: `SMUGGLED`, from a public route, without a token."""
    gw = await through()
    request = head("/public/a", "Host: gw", *upgrade, f"Content-Length: {len(SMUGGLED)}",
                   version=version) + b"\r\n" + SMUGGLED  # fmt: skip
    (response,) = await exchange(gw, request)
    assert response.status == 200
    assert response.header("Connection") == "close"  # upgrades are ignored, then closed
    # A second client's request on the (pooled) upstream connection must stay its own.
    (second,) = await exchange(gw, head("/public/b", "Host: gw", "Connection: close") + b"\r\n")
    assert second.status == 200
    await eventually(lambda: len(recorder.complete) == 2)
    first, after = recorder.complete
    assert (first.path, first.body) == ("/public/a", SMUGGLED)  # the body, as framed
    assert first.text("content-length") == [str(len(SMUGGLED))]
    assert not first.text("upgrade")
    assert after.path == "/public/b" and after.body == b""
    assert [r.path for r in recorder.requests] == ["/public/a", "/public/b"]
    assert not recorder.errors
    lines = gw.access_events()
    assert [(e["path"], e["body_bytes"]) for e in lines] == [
        ("/public/a", len(SMUGGLED)), ("/public/b", None),
    ]  # fmt: skip


async def test_an_upgrade_request_with_a_chunked_body_is_refused(through, recorder):
    gw = await through()
    request = (
        head("/public/a", "Host: gw", "Connection: Upgrade", "Upgrade: websocket",
             "Transfer-Encoding: chunked") + b"\r\n" + b"5\r\nhello\r\n0\r\n\r\n"
    )  # fmt: skip
    (response,) = await exchange(gw, request)
    assert response.status == 400
    assert recorder.requests == []


async def test_a_bodyless_upgrade_request_is_answered_then_the_connection_closes(through, recorder):
    gw = await through()
    request = head("/public/a", "Host: gw", "Connection: Upgrade", "Upgrade: websocket")
    responses = await exchange(gw, request + b"\r\n" + b"\x81\x05hello" + SMUGGLED)
    assert [r.status for r in responses] == [200]
    await eventually(lambda: len(recorder.complete) == 1)
    assert recorder.complete[0].body == b""
    assert [r.path for r in recorder.requests] == ["/public/a"]


# --- A2: a chunk that turns bad mid-stream --------------------------------------------------


async def test_a_body_that_turns_bad_mid_stream_never_completes_upstream(through, recorder, mint):
    """#8 A2: the client got 400 and the log said nothing reached the upstream, while the
    upstream received `5\\r\\nhello\\r\\n0\\r\\n\\r\\n` and ran a complete POST."""
    gw = await through()
    start = head("/api/user/x", "Host: gw", f"Authorization: Bearer {mint()}",
                 "Transfer-Encoding: chunked", method="POST") + b"\r\n" + b"5\r\nhello\r\n"  # fmt: skip
    (response,) = await exchange(gw, start, b"zz\r\n", pause=0.3)
    assert response.status == 400
    await eventually(
        lambda: (
            bool(recorder.connections) and not recorder.connections[-1].raw.endswith(b"\r\n\r\n")
        )
    )
    await asyncio.sleep(0.2)  # whatever else the gateway would send arrives by now
    assert recorder.complete == []  # the upstream never saw the end of that message
    assert b"0\r\n\r\n" not in recorder.connections[0].raw.partition(b"\r\n\r\n")[2]
    (line,) = gw.access_events()
    assert (line["status"], line["body_bytes"]) == (400, 5)
    assert "malformed" in line["detail"]
    assert response.header("X-Request-Id") == line["request_id"]
    metrics = await gw.metrics_text()
    assert 'm2mgate_requests_total{method="POST",route="user",status="400"} 1.0' in metrics
    assert 'kind="bad_http"' not in metrics  # one request, logged and counted once


# --- A3: trailers ---------------------------------------------------------------------------


async def test_trailer_fields_never_join_the_forwarded_headers(through, recorder, mint):
    """#8 A3 (RFC 9110 §6.5.1): a trailer `Authorization` became a second, unchecked
    credential upstream with `forward.authorization: true`; a trailer `Host` a second Host."""

    def configure(config: dict[str, Any]) -> None:
        config["forward"] = {"authorization": True}
        config["upstream"]["preserve_host"] = True

    gw = await through(configure)
    token = mint()
    body = (
        b"5\r\nhello\r\n0\r\nAuthorization: Bearer forged\r\nHost: evil.example\r\n"
        b"X-Client-Id: admin\r\n\r\n"
    )
    request = head("/api/user/x", "Host: gw", f"Authorization: Bearer {token}",
                   "Transfer-Encoding: chunked", method="POST") + b"\r\n" + body  # fmt: skip
    (response,) = await exchange(gw, request)
    assert response.status == 200
    (seen,) = recorder.complete
    assert seen.text("authorization") == [f"Bearer {token}"]
    assert seen.text("host") == ["gw"]
    assert seen.text("x-client-id") == ["svc-orders"]
    assert seen.body == b"hello"


# --- A4: identity header variants -----------------------------------------------------------


async def test_identity_header_variants_never_reach_the_upstream(through, recorder, mint):
    """#8 A4: WSGI/CGI servers (and nginx's underscores_in_headers) read `X_Client_Id` as
    X-Client-Id. Every name that normalises to a gateway-owned one is removed, on every
    route, the public ones too."""
    gw = await through()
    forged = ("X_Client_Id: admin", "X_Scopes: admin", "x_roles: admin", "X-ISSUER: evil",
              "X_Subject: admin", "X_Request_Id: forged", "X_Forwarded_For: 10.0.0.1")  # fmt: skip
    for path, token in (("/public/a", None), ("/api/user/x", mint())):
        auth = (f"Authorization: Bearer {token}",) if token else ()
        (response,) = await exchange(gw, head(path, "Host: gw", *auth, *forged) + b"\r\n")
        assert response.status == 200
    public, protected = recorder.complete
    for seen in (public, protected):
        names = [name.decode("latin-1").lower() for name, _ in seen.headers]
        normalised = {name.replace("_", "-") for name in names}
        assert "x-scopes" not in normalised or seen.text("x-scopes") == ["read:data"]
        assert not [name for name in names if "_" in name]
        # No trusted_proxies: the client's chain is kept (CONTRACT), under the real name.
        assert seen.text("x-forwarded-for") == ["10.0.0.1, 127.0.0.1"]
        assert seen.text("x-request-id") != ["forged"]
    assert not {"x-client-id", "x-scopes", "x-roles", "x-issuer", "x-subject"} & {
        name.decode("latin-1").lower() for name, _ in public.headers
    }
    assert protected.text("x-client-id") == ["svc-orders"]
    assert protected.text("x-issuer") != ["evil"]


# --- A5: the forwarded family ---------------------------------------------------------------

FAMILY = (
    "Forwarded: for=6.6.6.6;proto=https", "X-Real-IP: 6.6.6.6", "True-Client-IP: 6.6.6.6",
    "X-Forwarded-Port: 443", "X-Forwarded-Prefix: /admin", "X-Client-IP: 6.6.6.6",
    "X-Forwarded-Server: evil", "X-Original-URL: /api/admin/x",
    "X-HTTP-Method-Override: DELETE",
)  # fmt: skip


@pytest.mark.parametrize("trusted", [None, ["10.0.0.0/8"]], ids=["no trust set", "untrusted"])
async def test_the_forwarded_family_is_removed_unless_the_peer_is_trusted(
    through, recorder, trusted
):
    """#8 A5: with `trusted_proxies` set, these passed from any peer; an upstream would take
    the client's word for its address, scheme, port, prefix, path or method."""

    def configure(config: dict[str, Any]) -> None:
        if trusted:
            config["forward"] = {"trusted_proxies": trusted}

    gw = await through(configure)
    (response,) = await exchange(gw, head("/public/a", "Host: gw", *FAMILY) + b"\r\n")
    assert response.status == 200
    (seen,) = recorder.complete
    for field in FAMILY:
        assert not seen.values(field.partition(":")[0]), field
    assert seen.text("x-forwarded-for") == ["127.0.0.1"]
    assert seen.text("x-forwarded-proto") == ["http"]
    assert seen.text("x-forwarded-host") == ["gw"]


async def test_a_trusted_proxy_keeps_its_forwarded_family_and_this_hop_is_appended(
    through, recorder
):
    gw = await through(lambda config: config.update(forward={"trusted_proxies": ["127.0.0.1"]}))
    (response,) = await exchange(gw, head("/public/a", "Host: gw:8080", *FAMILY[:6]) + b"\r\n")
    assert response.status == 200
    (seen,) = recorder.complete
    assert seen.text("x-real-ip") == ["6.6.6.6"]
    assert seen.text("x-forwarded-prefix") == ["/admin"]
    assert seen.text("forwarded") == [
        'for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host="gw:8080"'
    ]
    assert seen.text("x-original-url") == seen.text("x-http-method-override") == []


# --- A6-A8: heads the gateway refuses -------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (head("/public/a") + b"\r\n", 400),  # HTTP/1.1 without Host (RFC 9112 §3.2)
        (head("/public/a", "Host: evil.example/a b?c@d") + b"\r\n", 400),
        (head("/public/a", "Host: a, b") + b"\r\n", 400),
        (head("/public/a", "Host: gw", version="2.0") + b"\r\n", 505),
        (head("/public/a", "Host: gw", version="0.9") + b"\r\n", 505),
        (b"GET /public/a\r\n\r\n", 505),  # an HTTP/0.9 simple request
        (head("/public/a?x#/../../api/admin", "Host: gw") + b"\r\n", 400),
    ],
    ids=["no Host", "Host not an authority", "Host list", "HTTP/2.0", "HTTP/0.9",
         "0.9 simple request", "fragment"],
)  # fmt: skip
async def test_heads_no_hop_can_agree_on_are_refused(through, recorder, request_bytes, status):
    """#8 A6 and A8: these were forwarded (the bad Host into X-Forwarded-Host too), and
    answered in the version the client named."""
    gw = await through()
    (response,) = await exchange(gw, request_bytes + head("/public/b", "Host: gw") + b"\r\n")
    assert response.status == status
    assert response.header("Connection") == "close"
    assert recorder.requests == []


async def test_every_response_speaks_http_1_1(through, recorder):
    """#8 A8: never a version the gateway does not speak; an HTTP/1.0 client gets HTTP/1.1
    (RFC 9112 §2.3) with 1.0 framing."""
    gw = await through()
    host, port = gw.url.removeprefix("http://").split(":")
    for request in (head("/public/a", version="1.0") + b"\r\n",
                    head("/public/a", "Host: gw", version="2.0") + b"\r\n"):  # fmt: skip
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 ")


async def test_http_1_0_with_transfer_encoding_is_refused_and_closed(through, recorder):
    """#8 A7 (RFC 9112 §6.1): a 1.0 hop in front may have ignored Transfer-Encoding, so no
    hop can say where the message ends. Refused, as nginx does; the connection closes."""
    gw = await through()
    request = head("/public/a", "Host: gw", "Transfer-Encoding: chunked", method="POST",
                   version="1.0") + b"\r\n5\r\nhello\r\n0\r\n\r\n"  # fmt: skip
    responses = await exchange(gw, request + head("/public/b", "Host: gw") + b"\r\n")
    assert [r.status for r in responses] == [400]
    assert recorder.requests == []


# --- A9: an upstream that switches protocols ------------------------------------------------


async def test_an_unasked_switching_protocols_answer_is_a_bad_gateway(through, recorder):
    """#8 A9: a 101 was relayed to a client that never asked to upgrade (and without an
    Upgrade header)."""
    gw = await through()  # the recorder answers /switch paths with a 101
    (response,) = await exchange(gw, head("/public/switch", "Host: gw") + b"\r\n")
    assert response.status == 502
    assert json.loads(response.body)["error"] == "bad_gateway"
    (line,) = gw.access_events()
    assert line["upstream_failure"] == "unavailable"
    assert "101" in line["upstream_detail"]
