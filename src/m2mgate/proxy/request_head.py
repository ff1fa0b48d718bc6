"""The request head sent upstream, encoded: a pure function of method, target, headers and the
framing the transport chose. No I/O.

Threat (#8): a forwarded Content-Length that did not match the bytes sent let the upstream read
the next request on a pooled connection as this body. A caller's own Content-Length or
Transfer-Encoding fields are therefore never written: the framing lines come from the transport
and describe the bytes it sends.
"""

from __future__ import annotations

from m2mgate.proxy.upstream import Headers

_FRAMING = frozenset({"content-length", "transfer-encoding"})  # written by the transport only


def encode_request_head(
    method: str,
    target: str,
    headers: Headers,
    host_header: str,
    *,
    content_length: int | None,
    chunked: bool,
) -> bytes:
    """`method target HTTP/1.1`, the headers (a Host of `host_header` when they carry none),
    then `Transfer-Encoding: chunked` or `Content-Length` when there is one to declare."""
    has_host = False
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING:
            continue  # the framing below is the only one: it describes the bytes we send
        if lowered == "host":
            has_host = True
        lines.append(f"{name}: {value}\r\n")
    if not has_host:
        lines.append(f"Host: {host_header}\r\n")
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}\r\n")
    lines.append("\r\n")
    # The listener decoded the client's bytes as latin-1: the same encoding gives them back
    # exactly (identity values are ASCII, percent-encoded by the header rules).
    return "".join(lines).encode("latin-1")
