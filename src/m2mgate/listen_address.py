"""A socket address to listen on, as written in config (`listen`, `admin_listen`) or on the
command line.

Neutral ground: config parses it, the listeners, the supervisor and the dev issuer bind it, and
none of them has to import the others for it. Parsing raises `ValueError` with a message fit
for `yaml.path: message`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
