"""An HTTP/1.1 response head, encoded (plain functions, no I/O): the status line, the fields,
and the gateway's own framing lines; and the `Date` value."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

Headers = list[tuple[str, str]]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_PHRASES[499] = "Client Closed Request"


def encode_head(status: int, headers: Headers, framing: list[str]) -> bytes:
    """A response head: the status line, `headers`, then the gateway's own `framing` lines
    (Date, Content-Length, Transfer-Encoding, Connection), each ending in CRLF. Always
    HTTP/1.1: the gateway never names a version it does not speak (RFC 9112 §2.3)."""
    head = [f"HTTP/1.1 {status} {_PHRASES.get(status, '')}\r\n"]
    for name, value in headers:
        head.append(f"{name}: {value}\r\n")
    head.extend(framing)
    head.append("\r\n")
    return "".join(head).encode("latin-1")


_date_second = 0
_date_value = ""


def http_date() -> str:
    """The `Date` value for now (RFC 9110 §6.6.1), formatted once per second."""
    global _date_second, _date_value
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_value = now, formatdate(now, usegmt=True)
    return _date_value
