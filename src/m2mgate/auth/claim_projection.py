"""The claims a principal keeps: only those the compiled config reads after verification.

Threat: memory exhaustion through the verified-token cache. A token's claims dict is by far the
biggest thing a principal could hold (a 7.7 KB token with 480 small claims is ~60 KiB of Python
objects), and the cache keeps up to `limits.token_cache_entries` principals alive. After
verification only two things read `Principal.claims`: route `require.claims` rules
(auth/policy.py) and `forward.claims` headers (proxy/headers.py). The client id, subject, scopes,
roles and tenant are read into the principal's own fields by the issuer's claim layout first.
So the principal keeps the top-level claims those configured paths start from, and no others.

A `{ref}` segment reads the top-level string claim `ref` and uses its value as a key:
- later in a path (`tenants.{dct}.roles`), `dct` is kept along with `tenants`;
- as the first segment (`{dct}.roles`), the top-level claim *named by the value* of `dct` is
  read, so that one is kept too, resolved per token exactly as `lookup_claim` resolves it.
Either way `lookup_claim(kept, path)` equals `lookup_claim(claims, path)` for every configured
path (tested). Anything new that reads `Principal.claims` must add its paths here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from m2mgate.auth.claims import ClaimPath, ClaimRef


@dataclass(frozen=True, slots=True)
class ClaimProjection:
    names: frozenset[str]  # top-level claims kept as they are
    # Claims whose (string) value names one more top-level claim to keep (`{ref}` first).
    naming_claims: tuple[str, ...] = ()

    def project(self, claims: Mapping[str, Any]) -> dict[str, Any]:
        """The part of `claims` the config can read; the values are shared, not copied."""
        kept = {name: claims[name] for name in self.names if name in claims}
        for name in self.naming_claims:
            target = claims.get(name)
            if isinstance(target, str) and target in claims:
                kept[target] = claims[target]
        return kept


def claims_read_by(paths: Iterable[ClaimPath]) -> ClaimProjection:
    """The projection that keeps what `lookup_claim` reads for each of `paths`."""
    names: set[str] = set()
    naming: dict[str, None] = {}
    for path in paths:
        for segment in path:
            if isinstance(segment, ClaimRef):
                names.add(segment.name)  # a reference always reads a top-level claim
        head = path[0]
        if isinstance(head, ClaimRef):
            naming.setdefault(head.name, None)
        else:
            names.add(head)
    return ClaimProjection(frozenset(names), tuple(naming))
