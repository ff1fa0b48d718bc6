"""Where the upstream is and how long and how wide the gateway talks to it.

One definition: config compiles `upstream:` straight into it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    url: str
    connect_timeout_seconds: float
    timeout_seconds: float
    max_connections: int
