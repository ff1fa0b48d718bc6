"""The one function that turns an error into an HTTP response (RFC 6750 §3 challenges).

The body is always `{"error", "error_description", "request_id"}` with the error class's fixed
description: never a token, a claim value or a library message (those go to the log).
"""

from __future__ import annotations

import json

from aiohttp import web

from m2mgate.errors import (
    CredentialsMissing,
    GatewayError,
    InsufficientScope,
    InvalidToken,
    KeysUnavailable,
    MalformedAuthorization,
)
from m2mgate.proxy.headers import SERVER

REALM = "m2mgate"
_INTERNAL = {
    "error": "server_error",
    "error_description": "The gateway failed to handle the request.",
}


def challenge(error: GatewayError) -> str | None:
    """The WWW-Authenticate value for an error, or None when none belongs on it."""
    if isinstance(error, CredentialsMissing):
        # RFC 6750 §3.1: no error code when the request carried no credentials.
        return f'Bearer realm="{REALM}"'
    if isinstance(error, (MalformedAuthorization, InvalidToken)):
        return f'Bearer realm="{REALM}", error="{error.error}"'
    if isinstance(error, InsufficientScope):
        value = f'Bearer realm="{REALM}", error="insufficient_scope"'
        if error.required_scopes:
            # Scope names are config-validated scope-tokens (no '"' or '\'): safe to quote.
            value += f', scope="{" ".join(error.required_scopes)}"'
        return value
    return None


def error_response(error: GatewayError, request_id: str) -> web.Response:
    body = {
        "error": error.error,
        "error_description": error.description,
        "request_id": request_id,
    }
    response = _json_response(error.status, body, request_id)
    value = challenge(error)
    if value is not None:
        response.headers["WWW-Authenticate"] = value
    if isinstance(error, KeysUnavailable):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def internal_error_response(request_id: str) -> web.Response:
    return _json_response(500, {**_INTERNAL, "request_id": request_id}, request_id)


def _json_response(status: int, body: dict[str, str], request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store", "X-Request-Id": request_id, "Server": SERVER},
    )
