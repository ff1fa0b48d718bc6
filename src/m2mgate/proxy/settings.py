"""Where the upstream is and how long and how wide the gateway talks to it.

One definition: config compiles `upstream:` straight into it, and the rules for the upstream URL
live here, next to the type that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    url: str
    connect_timeout_seconds: float
    timeout_seconds: float
    max_connections: int


def validate_upstream_url(url: str) -> None:
    """An origin only; raises `ValueError` with a message fit for `yaml.path: message`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("expected an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            "only scheme, host and port are allowed: the request path is forwarded unchanged"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
