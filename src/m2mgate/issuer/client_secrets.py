"""Client secrets are stored only as PBKDF2-SHA256 hashes (the issuer never holds a plain secret
after start-up, and never logs one).

Format: `pbkdf2_sha256$<iterations>$<salt, base64url>$<hash, base64url>` (Django's layout), so
the cost travels with each hash and can be raised without invalidating old ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 100_000
_MIN_ITERATIONS = 1_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest); ValueError with a reason when it is not our format."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        raise ValueError(f"expected {ALGORITHM}$<iterations>$<salt>$<hash> (m2mgate hash-secret)")
    if not parts[1].isdigit() or int(parts[1]) < _MIN_ITERATIONS:
        raise ValueError(f"iterations must be a number >= {_MIN_ITERATIONS}")
    try:
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    except (ValueError, TypeError):
        raise ValueError("salt and hash must be base64url") from None
    if len(salt) < 8 or len(digest) != 32:
        raise ValueError("salt or hash has the wrong length")
    return int(parts[1]), salt, digest


def verify_secret(secret: str, encoded: str) -> bool:
    iterations, salt, expected = parse_hash(encoded)
    actual = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


# Verified against when the client id is unknown, so that "no such client" and "wrong secret"
# take the same time (no client enumeration by timing).
DECOY_HASH = hash_secret(_b64(os.urandom(16)))
