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

Memory is bounded twice, LRU: at most `max_entries` entries, and at most `max_bytes` as
estimated by `entry_size_bytes` (`max_entries` 0: no cache; `max_bytes` 0: no byte bound). Threat:
distinct valid tokens (a client minting many, or many clients) filling the heap. Measured on
1,200 distinct 7.7 KB tokens with 480 claims each (tests/unit/auth/test_token_cache_memory.py):
~60 KiB per entry when an entry held the token string and its whole claims dict; now an entry
holds a digest and a principal with only the claims config reads (auth/claim_projection.py),
~1.2 KiB for that token (a token with 600 scopes still costs ~70 KiB: the bytes bound
is what holds whatever the token shape).

Keys are SHA-256 digests of the token, not the token:
- memory: 65 bytes per key instead of the token (up to `limits.max_token_bytes`, 8 KiB), and
  the process no longer keeps thousands of live bearer credentials readable in a heap or core
  dump;
- cost: SHA-256 runs on every request, hit or miss. Measured here (SHA-NI): 1.7 us for an
  800-byte token, 7.5 us for 7.9 KB; a dict keyed by the string hashes it too (0.4 / 2.6 us),
  so the digest adds about 1.3 us to a typical request and 5 us to the largest one;
- collisions: serving a cached principal for another token needs a SHA-256 second preimage
  of a token the attacker did not mint (2^256 work), and even a chosen collision pair helps
  nobody who cannot get the issuer to sign one of them. A digest is as safe a key as the
  string for this purpose, unlike Python's `hash()`, which is 64 bits and never used here.

`explain` never uses the cache: a trace must show every step. Pure: no I/O, no clock of its
own.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NewType

from m2mgate.auth.principal import Principal
from m2mgate.jose import VerificationKey

KeyCheck = Callable[[str, VerificationKey], bool]
"""(issuer name, key) -> is the key still in that issuer's usable key set?"""

TokenDigest = NewType("TokenDigest", bytes)


def token_digest(token: str) -> TokenDigest:
    # A token has passed the b64token check (auth/bearer.py): ASCII, so `encode` cannot fail.
    return TokenDigest(hashlib.sha256(token.encode()).digest())


@dataclass(slots=True)
class TokenCacheStats:
    """Counts that outlive any one cache (reload makes a new cache); read by /metrics."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


_Entry = tuple[Principal, VerificationKey, int]  # ..., the entry's size estimate in bytes

# What every entry costs besides the principal's own values: the digest (65 bytes), the entry
# tuple (64), the OrderedDict's slot, index and link node (75-140 amortised over its growth,
# measured with tracemalloc), and the Principal object itself with its slots (136). The key
# object is shared by every entry it verified, and the issuer name and `iss` strings belong to
# the config: neither is counted.
_ENTRY_OVERHEAD_BYTES = 65 + 64 + 140 + sys.getsizeof(object.__new__(Principal))


def entry_size_bytes(principal: Principal) -> int:
    """An estimate of the memory one entry keeps alive: `sys.getsizeof` of every object the
    principal owns (its strings, tuples, sets and kept claims, each counted once), plus the
    fixed overhead above. It leaves out the allocator's rounding, so it runs a little low."""
    seen: set[int] = set()
    return _ENTRY_OVERHEAD_BYTES + sum(
        _owned_bytes(value, seen)
        for value in (
            principal.client_id,
            principal.subject,
            principal.scopes,
            principal.roles,
            principal.tenant,
            principal.scope_set,
            principal.role_set,
            principal.claims,
        )
    )


def _owned_bytes(value: Any, seen: set[int]) -> int:
    # Singletons (None, booleans, the empty tuple, the shared empty frozenset) are not owned.
    if (
        value is None
        or isinstance(value, bool)
        or (isinstance(value, (tuple, frozenset)) and not value)
    ):
        return 0
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, (tuple, list, frozenset)):
        size += sum(_owned_bytes(item, seen) for item in value)
    elif isinstance(value, Mapping):
        if not isinstance(value, dict):  # the read-only view: the dict under it, as a copy
            size += sys.getsizeof(dict(value))
        size += sum(_owned_bytes(k, seen) + _owned_bytes(v, seen) for k, v in value.items())
    return size


class VerifiedTokenCache:
    __slots__ = ("_entries", "_key_is_current", "max_bytes", "max_entries", "size_bytes", "stats")

    def __init__(
        self,
        max_entries: int,
        key_is_current: KeyCheck,
        stats: TokenCacheStats,
        max_bytes: int = 0,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # 0: no byte bound (the entry bound still holds)
        self.size_bytes = 0  # the sum of the entries' estimates
        self._key_is_current = key_is_current
        self._entries: OrderedDict[TokenDigest, _Entry] = OrderedDict()
        self.stats = stats

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: TokenDigest, now: float) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            self.stats.misses += 1
            return None
        principal, key, _ = entry
        if now >= principal.expires_at or not self._key_is_current(principal.issuer_name, key):
            self._drop(digest)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.stats.hits += 1
        return principal

    def put(self, digest: TokenDigest, principal: Principal, key: VerificationKey) -> None:
        if self.max_entries <= 0:
            return
        size = entry_size_bytes(principal)
        if self.max_bytes and size > self.max_bytes:
            return  # could never fit: storing it would only empty the cache
        if digest in self._entries:  # two requests with one token missed at once
            self._drop(digest)
        self._entries[digest] = (principal, key, size)
        self.size_bytes += size
        while len(self._entries) > self.max_entries or (
            self.max_bytes and self.size_bytes > self.max_bytes
        ):
            _, (_, _, evicted) = self._entries.popitem(last=False)
            self.size_bytes -= evicted
            self.stats.evictions += 1

    def _drop(self, digest: TokenDigest) -> None:
        _, _, size = self._entries.pop(digest)
        self.size_bytes -= size
