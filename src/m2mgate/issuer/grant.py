"""The client-credentials grant (RFC 6749 §4.4), as pure functions: parse the token request,
decide, and produce the claims of an RFC 9068 JWT access token. No HTTP here.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from m2mgate.issuer.config import Client

GRANT_TYPE = "client_credentials"


class OAuthError(Exception):
    """RFC 6749 §5.2 error response. `description` is fixed text: never a secret or input."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 §5.2: 401, with a WWW-Authenticate challenge for the scheme the client may use.
    return OAuthError("invalid_client", description, status=401)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    client_id: str
    client_secret: str
    auth_method: str  # client_secret_basic | client_secret_post
    scopes: tuple[str, ...] | None  # None: not requested (the client's full allowance)
    audience: str | None


def parse_token_request(
    form: Sequence[tuple[str, str]], authorization: Sequence[str]
) -> TokenRequest:
    params = _single_valued(form)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    client_id, client_secret, method = _client_credentials(params, authorization)
    return TokenRequest(
        client_id=client_id,
        client_secret=client_secret,
        auth_method=method,
        scopes=_requested_scopes(params.get("scope")),
        audience=_requested_audience(params),
    )


def _single_valued(form: Sequence[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in form:
        # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
        if name in params:
            raise OAuthError("invalid_request", "a parameter is repeated")
        params[name] = value
    return params


def _client_credentials(
    params: Mapping[str, str], authorization: Sequence[str]
) -> tuple[str, str, str]:
    in_body = "client_id" in params or "client_secret" in params
    if len(authorization) > 1:
        raise OAuthError("invalid_request", "more than one Authorization header")
    if authorization and in_body:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    if authorization:
        return (*_basic_credentials(authorization[0]), "client_secret_basic")
    if not in_body:
        raise invalid_client("client authentication is required")
    client_id, client_secret = params.get("client_id"), params.get("client_secret")
    if not client_id:
        raise OAuthError("invalid_request", "client_secret without client_id")
    if not client_secret:
        raise invalid_client("client authentication failed")
    return client_id, client_secret, "client_secret_post"


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("client authentication failed")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("client authentication failed") from None
    client_id, separator, client_secret = decoded.partition(":")
    if not separator or not client_id:
        raise invalid_client("client authentication failed")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(client_secret)


def _requested_scopes(scope: str | None) -> tuple[str, ...] | None:
    if scope is None:
        return None
    # RFC 6749 §3.3: SP-separated, as the gateway reads scopes (auth/claims.py): any other
    # whitespace stays inside a scope-token, which no client is allowed.
    return tuple(dict.fromkeys(item for item in scope.split(" ") if item))


def _requested_audience(params: Mapping[str, str]) -> str | None:
    # `audience` (Auth0 style) or `resource` (RFC 8707); both is fine only if they agree.
    audience, resource = params.get("audience"), params.get("resource")
    if audience is not None and resource is not None and audience != resource:
        raise OAuthError("invalid_request", "audience and resource disagree")
    return audience if audience is not None else resource


@dataclass(frozen=True, slots=True)
class Grant:
    claims: dict[str, Any]
    scopes: tuple[str, ...]
    expires_in: int


def grant_token(request: TokenRequest, client: Client, *, issuer: str, now: float) -> Grant:
    """Decide on an authenticated client's request; the claims of its access token."""
    if not client.is_active:
        raise OAuthError("invalid_grant", "the client is not active")
    if request.scopes is None:
        scopes = client.scopes
    else:
        if not set(request.scopes) <= set(client.scopes):
            raise OAuthError(
                "invalid_scope", "the requested scope exceeds what the client may have"
            )
        scopes = request.scopes
    audience = request.audience if request.audience is not None else client.audiences[0]
    if audience not in client.audiences:
        # RFC 8707 §2: the requested resource is not one this client may get tokens for.
        raise OAuthError("invalid_target", "the requested audience is not allowed for this client")
    issued_at = int(now)
    claims: dict[str, Any] = {
        **client.claims,
        "iss": issuer,
        "sub": client.client_id,
        "client_id": client.client_id,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + client.token_lifetime_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    return Grant(claims, scopes, client.token_lifetime_seconds)
