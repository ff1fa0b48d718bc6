"""Extracting the Bearer token from the request's Authorization header(s) (RFC 6750 §2.1).

Tokens are only ever read from the Authorization header. RFC 6750 §2.2/§2.3 also allow a form
body or a query parameter; both leak tokens into logs and caches, so this gateway ignores them
(a request carrying a token only there is unauthenticated).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from m2mgate.errors import CredentialsMissing, MalformedAuthorization, TokenTooLarge

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEME = "bearer"


def extract_bearer_token(header_values: Sequence[str], *, max_bytes: int) -> str:
    """The token from exactly one `Authorization: Bearer <token>` header.

    - no header, or a different scheme (Basic, DPoP, ...): CredentialsMissing, because for the
      Bearer scheme such a request carries no credentials (RFC 6750 §3.1);
    - more than one Authorization header: MalformedAuthorization. Threat: a front proxy may
      check one and the upstream use the other; Envoy's "good token and a bad one" case;
    - the size cap is checked before any parsing, so a megabyte header costs nothing.
    """
    if not header_values:
        raise CredentialsMissing("no Authorization header")
    if len(header_values) > 1:
        raise MalformedAuthorization("more than one Authorization header")
    value = header_values[0]
    if len(value) > max_bytes:
        raise TokenTooLarge(f"Authorization header of {len(value)} bytes exceeds {max_bytes}")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != _SCHEME:
        if not scheme or "\t" in scheme:
            raise MalformedAuthorization("Authorization header without a scheme")
        raise CredentialsMissing(f"Authorization scheme is not Bearer ({len(scheme)} chars)")
    # RFC 9110 §11.4: one or more spaces separate scheme and credentials; tolerate a run.
    token = rest.lstrip(" ")
    if not token:
        raise MalformedAuthorization("Bearer scheme without a token")
    if not _B64TOKEN.fullmatch(token):
        raise MalformedAuthorization("Bearer token has characters outside RFC 6750 b64token")
    return token
