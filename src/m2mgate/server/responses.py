"""The one function that turns an error into an HTTP response (RFC 6750 §3 challenges).

The body is always `{"error", "error_description", "request_id"}` with the error class's fixed
description: never a token, a claim value or a library message (those go to the log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from m2mgate.errors import (
    CredentialsMissing,
    GatewayError,
    InsufficientScope,
    InvalidToken,
    KeysUnavailable,
    MalformedAuthorization,
)
from m2mgate.proxy.header_names import SERVER

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


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole response the gateway makes itself (the listener adds Date and the framing)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


# Requests the listener could not parse (the handler never ran): the status says what was wrong.
_PARSE_ERRORS = {
    400: "The request is not valid HTTP.",
    414: "The request URI is too long.",  # RFC 9110 §15.5.15
    431: "The request header fields are too large.",  # RFC 6585 §5
    505: "The HTTP version is not supported.",  # RFC 9110 §15.6.6
}


def parse_error_response(status: int, request_id: str) -> Reply:
    """The fixed answer to a request that cannot be parsed: never a byte of the request."""
    body = {
        "error": "invalid_request",
        "error_description": _PARSE_ERRORS.get(status, _PARSE_ERRORS[400]),
        "request_id": request_id,
    }
    return Reply(status, _json_headers(request_id), json.dumps(body).encode())


def error_response(error: GatewayError, request_id: str) -> Reply:
    body = {
        "error": error.error,
        "error_description": error.description,
        "request_id": request_id,
    }
    headers = _json_headers(request_id)
    value = challenge(error)
    if value is not None:
        headers.append(("WWW-Authenticate", value))
    if isinstance(error, KeysUnavailable):
        headers.append(("Retry-After", str(error.retry_after_seconds)))
    return Reply(error.status, headers, json.dumps(body).encode())


def internal_error_response(request_id: str) -> Reply:
    body = {**_INTERNAL, "request_id": request_id}
    return Reply(500, _json_headers(request_id), json.dumps(body).encode())


def _json_headers(request_id: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
        ("X-Request-Id", request_id),
        ("Server", SERVER),
    ]
