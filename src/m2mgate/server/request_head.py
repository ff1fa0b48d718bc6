"""The request-head rules the listener applies itself, on top of llhttp's (plain functions,
no I/O): the fields the gateway reads, the heads it refuses, and the fixed answer to a refused
request."""

from __future__ import annotations

from m2mgate.server.request_cycle import RequestCycle, encode_head, http_date
from m2mgate.server.responses import parse_error_response


def refusal(status: int, request_id: str) -> bytes:
    """A refused request's answer, encoded; the connection closes after it (RFC 9112 §9.6:
    after a framing error nothing more on the connection is trusted)."""
    reply = parse_error_response(status, request_id)
    framing = [
        f"Date: {http_date()}\r\n",
        f"Content-Length: {len(reply.body)}\r\n",
        "Connection: close\r\n",
    ]
    return encode_head("1.1", reply.status, reply.headers, framing) + reply.body


READ_BY_GATEWAY = frozenset(
    {b"authorization", b"x-request-id", b"host", b"content-length", b"transfer-encoding", b"expect"}
)


def read_head_fields(cycle: RequestCycle, fields: list[tuple[bytes, str]]) -> bool:
    """Fill in what the gateway reads itself; False when the head must be refused."""
    hosts = 0
    length: str | None = None
    codings: list[str] = []
    for lowered, value in fields:
        if lowered == b"authorization":
            cycle.authorization.append(value)
        elif lowered == b"host":
            hosts += 1
            cycle.host = value
        elif lowered == b"x-request-id":
            cycle.request_ids.append(value)
        elif lowered == b"content-length":
            length = value  # llhttp refused duplicates and anything but digits
        elif lowered == b"transfer-encoding":
            codings.extend(coding.strip().lower() for coding in value.split(","))
        elif lowered == b"expect":
            cycle.expect_continue = value.strip().lower() == "100-continue"
    if hosts > 1:
        return False  # RFC 9112 §3.2: a request with more than one Host is refused
    if length is not None:
        cycle.content_length = int(length)
        cycle.has_body = cycle.content_length > 0
    elif codings:
        if codings != ["chunked"]:
            return False  # RFC 9112 §6.1: a coding we would have to guess the end of
        cycle.has_body = True
    if cycle.version != "1.1":
        cycle.expect_continue = False  # RFC 9110 §10.1.1: ignored from HTTP/1.0 clients
    return True
