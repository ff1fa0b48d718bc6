"""Which URLs the gateway may fetch keys and discovery documents from.

One rule for every place a key URL appears: a configured `jwks_uri` or issuer (checked when the
config is validated), a `jwks_uri` found by discovery (checked before it is fetched), and the
token endpoint of `m2mgate token`. Raises `ValueError` with a message fit for
`yaml.path: message`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


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


def _shorten(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
