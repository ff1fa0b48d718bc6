"""Claim layouts and token-type guards per identity provider, as data.

Only `generic` and `rfc9068` are defined so far; a provider preset is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.claims import ClaimKind, ClaimLayout, ClaimSource


@dataclass(frozen=True, slots=True)
class Preset:
    layout: ClaimLayout
    guard: TokenTypeGuard


_SCOPE = ClaimSource(("scope",), ClaimKind.SPACE_DELIMITED)
_ROLES = ClaimSource(("roles",), ClaimKind.ARRAY)

PRESETS: dict[str, Preset] = {
    # Any OAuth 2.0 issuer: the common claim names, each read strictly by its usual type.
    "generic": Preset(
        layout=ClaimLayout(
            client_id=(("client_id",), ("azp",), ("sub",)),
            scopes=(
                _SCOPE,
                # `scp` is an array at Okta and a string at Entra: both forms, documented.
                ClaimSource(("scp",), ClaimKind.ARRAY_OR_SPACE_DELIMITED),
                ClaimSource(("scopes",), ClaimKind.ARRAY),
            ),
            roles=(_ROLES,),
        ),
        guard=TokenTypeGuard(),
    ),
    # RFC 9068 JWT access tokens: `client_id` is required (§2.2), scopes in `scope` (§2.2.3),
    # and the header `typ` must say so (§2.1, §4) to stop an id token posing as an access token.
    "rfc9068": Preset(
        layout=ClaimLayout(client_id=(("client_id",),), scopes=(_SCOPE,), roles=(_ROLES,)),
        guard=TokenTypeGuard(header_typ=frozenset({"at+jwt", "application/at+jwt"})),
    ),
}
