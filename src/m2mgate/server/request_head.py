"""The request-head rules the listener applies itself, on top of llhttp's (plain functions,
no I/O): `parse_head` turns what llhttp read into a RequestHead or a HeadRefusal; the fixed
answer to a refused request.

Each refusal below closes a gap where the gateway and the next hop (the upstream, or a proxy in
front) could read the same bytes differently; the status is the one the RFC names.
"""

from __future__ import annotations

from dataclasses import dataclass

from m2mgate.request_path import is_valid_authority, split_target
from m2mgate.server.exchange import Headers, PeerFacts, RequestHead
from m2mgate.server.response_head import encode_head, http_date
from m2mgate.server.responses import parse_error_response


def refusal(status: int, request_id: str, *, to_head: bool = False) -> bytes:
    """A refused request's answer, encoded; the connection closes after it (RFC 9112 §9.6:
    after a framing error nothing more on the connection is trusted). `to_head`: the request
    was HEAD, so the answer has no body (RFC 9110 §9.3.2); a client would read one as the
    start of another response."""
    reply = parse_error_response(status, request_id)
    framing = [
        f"Date: {http_date()}\r\n",
        f"Content-Length: {len(reply.body)}\r\n",
        "Connection: close\r\n",
    ]
    head = encode_head(reply.status, reply.headers, framing)
    return head if to_head else head + reply.body


READ_BY_GATEWAY = frozenset(
    {b"authorization", b"x-request-id", b"host", b"content-length", b"transfer-encoding", b"expect"}
)

SPOKEN_VERSIONS = frozenset({"1.0", "1.1"})


@dataclass(frozen=True, slots=True)
class HeadRefusal:
    """Why a head is refused: the status, and a name for the log (`http_error`'s `error`)."""

    status: int
    reason: str


def parse_head(
    method: str,
    target: str,
    version: str,
    headers: Headers,
    fields: list[tuple[bytes, str]],
    *,
    upgrade: bool,
    peer: PeerFacts,
) -> RequestHead | HeadRefusal:
    """The request head llhttp read, as a value, or why to refuse it. `fields`: the header
    fields in READ_BY_GATEWAY, lowered names, in order. `upgrade`: llhttp flagged an Upgrade
    (or CONNECT) request."""
    hosts = 0
    host: str | None = None
    authorization: list[str] = []
    request_ids: list[str] = []
    expect_continue = False
    length: str | None = None
    codings: list[str] = []
    for lowered, value in fields:
        if lowered == b"authorization":
            authorization.append(value)
        elif lowered == b"host":
            hosts += 1
            host = value
        elif lowered == b"x-request-id":
            request_ids.append(value)
        elif lowered == b"content-length":
            length = value  # llhttp refused duplicates and anything but digits
        elif lowered == b"transfer-encoding":
            codings.extend(coding.strip().lower() for coding in value.split(","))
        elif lowered == b"expect":
            expect_continue = value.strip().lower() == "100-continue"
    if method == "CONNECT":
        # RFC 9110 §9.3.6: CONNECT asks for a tunnel, which this gateway never opens. Forwarded,
        # an upstream that reads it as bodyless (its content has no defined meaning) ran the
        # bytes after the head as a new request (#8 review, R1); a 2xx to it makes the pooled
        # connection a tunnel. 400 rather than 501: a client's method, not a gateway fault
        # (no 5xx in anyone's error budget for it).
        return HeadRefusal(400, "connect_method")
    if version not in SPOKEN_VERSIONS:
        # RFC 9110 §15.6.6: HTTP/2.0 or 0.9 in a request line. llhttp parses them as if they
        # were 1.x; answering (or forwarding) them as such would speak a version nobody agreed.
        return HeadRefusal(505, "http_version")
    if "#" in target:
        # RFC 9110 §4.2.5 / 9112 §3.2: a fragment is never part of a request-target
        return HeadRefusal(400, "fragment_in_target")
    if hosts > 1:
        return HeadRefusal(400, "two_hosts")  # RFC 9112 §3.2: one Host
    if hosts == 0 and version == "1.1":
        return HeadRefusal(400, "missing_host")  # RFC 9112 §3.2: HTTP/1.1 must carry Host
    if host is not None and not is_valid_authority(host):
        # RFC 9112 §3.2: 400 for an invalid Host (`evil.example/a b?c@d`): the upstream and
        # X-Forwarded-Host would carry something that is not an authority.
        return HeadRefusal(400, "invalid_host")
    content_length: int | None = None
    has_body = False
    if length is not None:
        content_length = int(length)
        has_body = content_length > 0
    elif codings:
        if codings != ["chunked"]:
            # RFC 9112 §6.1: a coding we would have to guess the end of
            return HeadRefusal(400, "transfer_encoding")
        if version == "1.0":
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty (a 1.0
            # hop in front may have ignored it). Refused, as nginx does, and the connection
            # closes: no hop can say where this message ends.
            return HeadRefusal(400, "http10_transfer_encoding")
        if upgrade:
            # httptools makes an Upgrade request bodyless; a chunked body then could only be
            # framed by guessing, so it is refused (a Content-Length one is read by count).
            return HeadRefusal(400, "chunked_upgrade")
        has_body = True
    if version != "1.1":
        expect_continue = False  # RFC 9110 §10.1.1: ignored from HTTP/1.0 clients
    path, query = split_target(target)  # once: the handler and the log read the parts
    return RequestHead(
        method,
        target,
        path,
        query,
        headers,
        host,
        "http",
        peer,
        authorization,
        request_ids,
        content_length,
        has_body,
        expect_continue,
    )
