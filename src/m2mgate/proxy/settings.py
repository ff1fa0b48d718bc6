"""Where the upstream is and how long and how wide the gateway talks to it.

One definition: config compiles `upstream:` straight into it, and the rules for the upstream URL
live here, next to the type that holds it. The URL is parsed once, when the config is validated,
into the `UpstreamTarget` the pool connects to.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from yarl import URL

from m2mgate.request_path import is_valid_authority


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """The upstream origin, parsed once: what the pool connects to."""

    url: str  # as written: for logs
    host: str
    port: int  # the scheme's default when the URL names none
    tls: bool


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    target: UpstreamTarget
    connect_timeout_seconds: float
    timeout_seconds: float
    max_connections: int

    @property
    def url(self) -> str:
        return self.target.url


def parse_upstream_url(url: str) -> UpstreamTarget:
    """An origin only; raises `ValueError` with a message fit for `yaml.path: message`."""
    validate_upstream_url(url)
    # The authority goes upstream as the Host header (unless preserve_host): it must be one
    # every hop reads alike (RFC 9112 §3.2), not `exa mple` or `h\\x`.
    if not is_valid_authority(urlsplit(url).netloc):
        raise ValueError("not a URL the gateway can connect to (RFC 3986 authority)")
    # Parsed as the upstream pool always read it (yarl: IDNA, default ports, brackets off).
    # yarl decodes the host lazily: a bad IDNA label (`xn--`) fails on reading it.
    try:
        parsed = URL(url)
        host, port = parsed.host, parsed.port
    except ValueError:  # UnicodeError included
        raise ValueError("not a URL the gateway can connect to (RFC 3986 authority)") from None
    if host is None or port is None:
        raise ValueError("the URL has no host")
    return UpstreamTarget(url=url, host=host, port=port, tls=parsed.scheme == "https")


def validate_upstream_url(url: str) -> None:
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
