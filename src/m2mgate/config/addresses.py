"""Validation of the addresses in a config: listen sockets, the upstream URL, key URLs.

Pure functions raising `ValueError` with a message fit for `yaml.path: message`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080` or `localhost:8080`; port 0 = any free."""
    if text.startswith("["):
        host, separator, port_text = text[1:].partition("]:")
        if not separator:
            raise ValueError("expected [IPv6]:port")
    else:
        host, separator, port_text = text.rpartition(":")
        if not separator or ":" in host:
            raise ValueError("expected host:port (IPv6 as [addr]:port)")
    if not host:
        raise ValueError("the host is missing; use 0.0.0.0 to listen on all interfaces")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number from 0 to 65535")
    return ListenAddress(host, int(port_text))


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_fetch_url(url: str, *, allow_insecure_http: bool) -> None:
    """A URL the gateway fetches keys or discovery from.

    Threat: keys fetched over plain http from a non-loopback host can be replaced in transit, and
    whoever replaces them mints tokens the gateway accepts. https is required unless the host is
    loopback (a local issuer or test) or the operator opts in per issuer.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{_shorten(url)!r} is not an http(s) URL")
    if not parts.hostname:
        raise ValueError(f"{_shorten(url)!r} has no host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not supported")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"plain http to non-loopback host {parts.hostname!r} is refused "
            "(use https, or set allow_insecure_http: true on this issuer)"
        )


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


def _shorten(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
