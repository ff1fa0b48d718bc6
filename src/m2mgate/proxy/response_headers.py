"""What the client gets of the upstream's response headers (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from m2mgate.proxy.header_names import HOP_BY_HOP, SERVER, listed_in

Headers = list[tuple[str, str]]

_RESPONSE_DROPPED = HOP_BY_HOP | {"x-request-id"}


def downstream_response_headers(
    incoming: Sequence[tuple[str, str]], request_id: str, date: str
) -> tuple[Headers, int | None]:
    """What the client gets of the upstream's response headers, and, apart from them, its
    Content-Length (the listener writes the length it frames the body with).

    Hop-by-hop fields go; X-Request-Id is the gateway's; `Server` and `Date` are added when the
    upstream sent none (RFC 9110 §6.6.1: a proxy with a clock adds a missing Date)."""
    headers: Headers = []
    has_server = has_date = False
    content_length: int | None = None
    listed: set[str] | None = None
    for name, value in incoming:  # one pass; the names Connection lists are removed after
        lowered = name.lower()
        if lowered in _RESPONSE_DROPPED:
            if lowered == "connection":
                listed = listed_in(value, listed, _RESPONSE_DROPPED)
            continue
        if lowered == "server":
            has_server = True
        elif lowered == "date":
            has_date = True
        elif lowered == "content-length":
            content_length = int(value)  # llhttp accepted it: digits only, one field
            continue  # returned apart: the listener writes the length it frames with
        headers.append((name, value))
    if listed:
        headers = [(name, value) for name, value in headers if name.lower() not in listed]
        has_server = any(name.lower() == "server" for name, _ in headers)
        has_date = any(name.lower() == "date" for name, _ in headers)
        if "content-length" in listed:
            content_length = None
    headers.append(("X-Request-Id", request_id))
    if not has_server:
        headers.append(("Server", SERVER))
    if not has_date:
        headers.append(("Date", date))
    return headers, content_length
