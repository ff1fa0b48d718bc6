"""The verified identity of a calling client, as the rest of the gateway sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called, normalised from a verified token by the issuer's claim layout.

    `scopes` and `roles` keep token order without duplicates (that is what `X-Scopes` carries);
    the `*_set` twins are what policy compares against: set membership of whole strings, never a
    substring test on a space-separated claim.
    """

    issuer_name: str
    issuer: str
    client_id: str
    subject: str | None
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    tenant: str | None
    expires_at: float
    claims: Mapping[str, Any] = field(repr=False)
    scope_set: frozenset[str] = field(init=False, repr=False)
    role_set: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope_set", frozenset(self.scopes) if self.scopes else _NONE)
        object.__setattr__(self, "role_set", frozenset(self.roles) if self.roles else _NONE)


# CPython has no shared empty frozenset: each `frozenset(())` is 216 bytes. Most tokens carry no
# roles, and the verified-token cache holds thousands of principals (auth/token_cache.py).
_NONE: frozenset[str] = frozenset()
