"""Registered-claim checks (RFC 7519 §4.1) that need no key: times, audience, token type.

They run before the signature check (Envoy's order): an expired or misdirected token is refused
without touching keys, so it can never trigger a key fetch. A forged token refused here is still
refused; only the logged reason differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2mgate.auth.claims import MISSING, ClaimPath, format_claim_path, lookup_claim
from m2mgate.errors import (
    Expired,
    InvalidClaim,
    MissingClaim,
    NotYetValid,
    WrongAudience,
    WrongTokenType,
)

# Year 3000: a NumericDate beyond this is abuse, not a real time (and would overflow datetime).
_MAX_NUMERIC_DATE = 32503680000.0


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """RFC 7519 §2 NumericDate: a JSON number. Strings, booleans, NaN and absurd values fail."""
    value = claims.get(name, MISSING)
    if value is MISSING:
        return None
    # bool is an int subclass in Python: `"exp": true` must not read as 1970-01-01T00:00:01.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidClaim(f"claim {name} is not a number")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= _MAX_NUMERIC_DATE:
        raise InvalidClaim(f"claim {name} is out of range")
    return number


def check_times(
    claims: Mapping[str, Any], *, now: float, leeway: float, max_lifetime: float
) -> None:
    exp = numeric_date(claims, "exp")
    if exp is None:
        # Access tokens without an expiry are bearer credentials forever: refuse them.
        raise MissingClaim("claim exp is required")
    nbf = numeric_date(claims, "nbf")
    iat = numeric_date(claims, "iat")
    if now >= exp + leeway:
        raise Expired()
    if nbf is not None and now + leeway < nbf:
        raise NotYetValid("nbf is in the future")
    if iat is not None and now + leeway < iat:
        raise NotYetValid("iat is in the future")
    # Threat: a token minted (by a compromised or misconfigured issuer) to live for years.
    if exp - now > max_lifetime + leeway or (iat is not None and exp - iat > max_lifetime):
        raise InvalidClaim("token lifetime exceeds max_token_lifetime_seconds")


def check_audience(claims: Mapping[str, Any], audiences: frozenset[str]) -> None:
    """`aud` (string or array of strings, RFC 7519 §4.1.3) must contain one of `audiences`.

    An empty `audiences` set means the check is off; config makes that an explicit choice.
    """
    if not audiences:
        return
    aud = claims.get("aud", MISSING)
    if aud is MISSING:
        raise MissingClaim("claim aud is required")
    if isinstance(aud, str):
        values = {aud}
    elif isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud):
        values = set(aud)
    else:
        raise InvalidClaim("claim aud must be a string or a non-empty array of strings")
    if values.isdisjoint(audiences):
        raise WrongAudience()


@dataclass(frozen=True, slots=True)
class TokenTypeGuard:
    """What tells an access token from an id or refresh token signed by the same key.

    - `header_typ`: allowed JOSE header `typ` values, compared case-insensitively (RFC 7515
      §4.1.9 media types); None = not checked. RFC 9068 §2.1: `at+jwt`.
    - `claims`: each (claim path, allowed values) must hold; e.g. Cognito `token_use: access`;
    - `claims_when_present`: checked only if the claim is there; e.g. Entra `idtyp: app`.
    """

    header_typ: frozenset[str] | None = None
    claims: tuple[tuple[ClaimPath, frozenset[str]], ...] = ()
    claims_when_present: tuple[tuple[ClaimPath, frozenset[str]], ...] = ()


def check_token_type(
    guard: TokenTypeGuard, header: Mapping[str, Any], claims: Mapping[str, Any]
) -> None:
    if guard.header_typ is not None:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in guard.header_typ:
            raise WrongTokenType("header typ is not an access token type")
    for path, allowed in guard.claims:
        _check_marker(claims, path, allowed)
    for path, allowed in guard.claims_when_present:
        if lookup_claim(claims, path) is not MISSING:
            _check_marker(claims, path, allowed)


def _check_marker(claims: Mapping[str, Any], path: ClaimPath, allowed: frozenset[str]) -> None:
    value = lookup_claim(claims, path)
    if not isinstance(value, str) or value not in allowed:
        raise WrongTokenType(f"claim {format_claim_path(path)} does not mark an access token")
