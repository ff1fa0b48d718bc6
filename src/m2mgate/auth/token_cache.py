"""Verified tokens, remembered: a repeat token skips parsing and the signature check.

Machine clients reuse one access token for its whole lifetime, so nearly every request carries
a token the gateway has already verified. An entry is the principal built from that token, the
key that verified it, and the token's `exp`.

An entry is served only while all of these hold, checked on every hit:
- the token has not expired: `now < exp`, with *no* leeway (stricter than the full check, so
  the cache can never extend a token's life; a token inside the leeway window just misses and
  is verified in full);
- the key that verified it is still in the issuer's *usable* key set: a key removed from the
  JWKS (rotation, revocation) or a key set gone too stale to trust (fail closed, 503) makes
  the entry miss at once, and the full path decides;
- it belongs to this config version: each compiled config (reload) gets a new cache, so a
  changed audience, allowlist or claim layout never meets a principal built under the old one.

Keys are the exact token string (a dict compares whole strings; no hash-collision aliasing).
Bounded LRU: at most `max_entries`; a token is at most `limits.max_token_bytes`, so memory is
bounded too. `explain` never uses it: a trace must show every step. Pure: no I/O, no clock of
its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from m2mgate.auth.principal import Principal
from m2mgate.jose import VerificationKey

KeyCheck = Callable[[str, VerificationKey], bool]
"""(issuer name, key) -> is the key still in that issuer's usable key set?"""


@dataclass(slots=True)
class TokenCacheStats:
    """Counts that outlive any one cache (reload makes a new cache); read by /metrics."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class VerifiedTokenCache:
    __slots__ = ("_entries", "_key_is_current", "max_entries", "stats")

    def __init__(self, max_entries: int, key_is_current: KeyCheck, stats: TokenCacheStats) -> None:
        self.max_entries = max_entries
        self._key_is_current = key_is_current
        self._entries: OrderedDict[str, tuple[Principal, VerificationKey]] = OrderedDict()
        self.stats = stats

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            self.stats.misses += 1
            return None
        principal, key = entry
        if now >= principal.expires_at or not self._key_is_current(principal.issuer_name, key):
            del self._entries[token]
            self.stats.misses += 1
            return None
        self._entries.move_to_end(token)
        self.stats.hits += 1
        return principal

    def put(self, token: str, principal: Principal, key: VerificationKey) -> None:
        if self.max_entries <= 0:
            return
        self._entries[token] = (principal, key)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.stats.evictions += 1
