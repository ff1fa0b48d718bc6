"""The issuer's signing keys, with rotation that never strands a relying party.

The key set always publishes the *next* key before it signs anything, so a verifier that
refreshed its JWKS at any point in the last rotation period already knows the key a new token
names. A retired key stays published until every token it signed has expired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from m2mgate.jose import SigningKey, generate_signing_key


@dataclass(frozen=True, slots=True)
class RetiredKey:
    key: SigningKey
    published_until: float


class KeyRing:
    def __init__(self, algorithm: str, clock: Callable[[], float]) -> None:
        self.algorithm = algorithm
        self._clock = clock
        self.current = generate_signing_key(algorithm)
        self.next = generate_signing_key(algorithm)
        self._retired: list[RetiredKey] = []

    def rotate(self, keep_retired_seconds: float) -> None:
        """Start signing with the (already published) next key; publish a new next key."""
        self._retired.append(RetiredKey(self.current, self._clock() + keep_retired_seconds))
        self.current = self.next
        self.next = generate_signing_key(self.algorithm)

    def jwks(self) -> dict[str, Any]:
        now = self._clock()
        self._retired = [item for item in self._retired if item.published_until > now]
        keys = [self.current, self.next, *(item.key for item in self._retired)]
        return {"keys": [key.public_jwk for key in keys]}
