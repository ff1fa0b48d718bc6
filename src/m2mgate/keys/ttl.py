"""How long a fetched key set (or discovery document) is fresh: Cache-Control within bounds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TtlBounds:
    min_seconds: float
    max_seconds: float
    default_seconds: float

    def clamp(self, max_age: float | None) -> float:
        """The TTL to use: `max-age` held within [min, max]; the default when there is none.

        The floor protects the IdP (and us) from `max-age=0` refetch storms; the ceiling makes
        sure a rotation is eventually seen even if the IdP says "cache for a year".
        """
        ttl = self.default_seconds if max_age is None else max_age
        return min(max(ttl, self.min_seconds), self.max_seconds)


def max_age_from_cache_control(values: Iterable[str]) -> float | None:
    """`max-age` from Cache-Control header values (RFC 9111 §5.2.2.1); no-store/no-cache = 0."""
    joined = ",".join(values)
    if not joined:
        return None
    if _NO_CACHE.search(joined):
        return 0.0
    match = _MAX_AGE.search(joined)
    return float(match.group(1)) if match else None
