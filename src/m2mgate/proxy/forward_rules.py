"""The `forward:` rules compiled once: identity header names, what is stripped, whom to trust."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from m2mgate.auth.claims import ClaimPath
from m2mgate.proxy.header_names import (
    DEFAULT_IDENTITY_HEADERS,
    FOREIGN_IDENTITY,
    FORWARDED_FAMILY,
    GATEWAY_OWNED,
    HOP_BY_HOP,
    ROUTING_OVERRIDES,
    normalized_name,
)


@dataclass(frozen=True, slots=True)
class ForwardRules:
    client_id: str | None
    scopes: str | None
    roles: str | None
    issuer: str | None
    subject: str | None
    tenant: str | None
    claims: tuple[tuple[str, ClaimPath], ...]
    pass_authorization: bool
    preserve_host: bool
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Computed once: every header name stripped from every incoming request ...
    always_dropped: frozenset[str] = field(init=False, repr=False)
    # ... and on a public route, where no credential was checked: Authorization too, even
    # with `forward.authorization`, so an upstream never takes an unverified credential (a
    # forged JWT, Basic) for the one behind the identity headers (#8 review R6).
    dropped_unverified: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        configured = (
            self.client_id, self.scopes, self.roles, self.issuer, self.subject, self.tenant,
        )  # fmt: skip
        names = {name.lower() for name in configured if name is not None}
        names.update(header.lower() for header, _ in self.claims)
        names = {normalized_name(name) for name in names}
        names |= DEFAULT_IDENTITY_HEADERS | HOP_BY_HOP | GATEWAY_OWNED
        names |= FORWARDED_FAMILY | ROUTING_OVERRIDES | FOREIGN_IDENTITY
        if not self.pass_authorization:
            names.add("authorization")
        if not self.preserve_host:
            names.add("host")
        object.__setattr__(self, "always_dropped", frozenset(names))
        object.__setattr__(self, "dropped_unverified", frozenset(names | {"authorization"}))

    def trusts(self, address: str | None) -> bool:
        """Is this peer a proxy whose X-Forwarded-* headers may be believed?"""
        if address is None or not self.trusted_proxies:
            return False  # nobody is trusted: skip parsing the address (hot path)
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        # A dual-stack listener sees an IPv4 proxy as ::ffff:a.b.c.d: compare both forms.
        mapped = peer.ipv4_mapped if isinstance(peer, ipaddress.IPv6Address) else None
        return any(
            peer in network or (mapped is not None and mapped in network)
            for network in self.trusted_proxies
        )
