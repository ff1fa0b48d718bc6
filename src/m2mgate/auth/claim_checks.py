"""Registered-claim checks (RFC 7519 §4.1) that need no key: times, audience, token type.

They run before the signature check (Envoy's order): an expired or misdirected token is refused
without touching keys, so it can never trigger a key fetch. A forged token refused here is still
refused; only the logged reason differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2mgate.auth.claims import MISSING, ClaimPath, format_claim_path, lookup_claim
from m2mgate.detail_text import json_type, quoted, quoted_list, span, utc
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
        raise InvalidClaim(f"claim {name} is not a number (got {json_type(value)})")
    # Range first, float() after: a 400-digit JSON integer (Python parses it exactly) raises
    # OverflowError in float() and in math.isfinite(), which would be a 500, not a 401.
    # NaN fails every comparison, so `not 0 <= nan` refuses it too.
    if not 0 <= value <= _MAX_NUMERIC_DATE:
        shown = f"{value:.6g}" if isinstance(value, float) or abs(value) < 10**15 else "huge"
        raise InvalidClaim(f"claim {name} is out of range ({shown}; 0 to year 3000)")
    return float(value)


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
        raise Expired(f"exp {utc(exp)} was {span(now - exp)} ago (leeway {span(leeway)})")
    for name, value in (("nbf", nbf), ("iat", iat)):
        if value is not None and now + leeway < value:
            raise NotYetValid(
                f"{name} {utc(value)} is {span(value - now)} in the future (leeway {span(leeway)};"
                " is a clock off?)"
            )
    # Threat: a token minted (by a compromised or misconfigured issuer) to live for years.
    if exp - now > max_lifetime + leeway or (iat is not None and exp - iat > max_lifetime):
        lifetime = (
            f"iat to exp {span(exp - iat)}" if iat is not None else f"exp in {span(exp - now)}"
        )
        raise InvalidClaim(
            f"token lifetime exceeds max_token_lifetime_seconds {max_lifetime:g} ({lifetime})"
        )


def check_audience(claims: Mapping[str, Any], audiences: frozenset[str]) -> None:
    """`aud` (string or array of strings, RFC 7519 §4.1.3) must contain one of `audiences`.

    An empty `audiences` set means the check is off; config makes that an explicit choice.
    """
    if not audiences:
        return
    aud = claims.get("aud", MISSING)
    configured = quoted_list(sorted(audiences))
    if aud is MISSING:
        raise MissingClaim(f"claim aud is required (audiences: {configured})")
    if isinstance(aud, str):
        values = [aud]
    elif isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud):
        values = aud
    else:
        raise InvalidClaim(
            "claim aud must be a string or a non-empty array of strings"
            f" (got {json_type(aud) if aud != [] else 'an empty array'})"
        )
    if audiences.isdisjoint(values):
        raise WrongAudience(f"aud {quoted_list(values)} is none of the audiences {configured}")


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
            shown = quoted(typ, 64) if isinstance(typ, str) else f"is {json_type(typ)}"
            if "typ" not in header:
                shown = "is absent"
            raise WrongTokenType(
                f"header typ {shown}, not an access token type"
                f" {quoted_list(sorted(guard.header_typ))}"
            )
    for path, allowed in guard.claims:
        _check_marker(claims, path, allowed)
    for path, allowed in guard.claims_when_present:
        if lookup_claim(claims, path) is not MISSING:
            _check_marker(claims, path, allowed)


def _check_marker(claims: Mapping[str, Any], path: ClaimPath, allowed: frozenset[str]) -> None:
    value = lookup_claim(claims, path)
    if not isinstance(value, str) or value not in allowed:
        shown = (
            "is absent" if value is MISSING
            else quoted(value, 64) if isinstance(value, str)
            else f"is {json_type(value)}"
        )  # fmt: skip
        raise WrongTokenType(
            f"claim {format_claim_path(path)} {shown}, not an access token marker"
            f" {quoted_list(sorted(allowed))}"
        )
