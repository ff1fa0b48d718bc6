"""How a listener treats its clients at the HTTP level: sizes, counts and deadlines.

One definition: config compiles `listener:` straight into it and the listeners read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_seconds: float
    keepalive_timeout_seconds: float
    max_connections: int
    max_url_bytes: int  # the request line
    max_header_bytes: int  # one header field line
    max_headers: int
    send_timeout_seconds: float = 60.0  # a client that reads nothing of a response this long


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_bytes: int | None  # None: no limit
    idle_timeout_seconds: float
