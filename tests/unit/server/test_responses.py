import json

import pytest

from m2mgate.errors import (
    BadGateway,
    CredentialsMissing,
    Expired,
    GatewayTimeout,
    InsufficientScope,
    InvalidPath,
    KeysUnavailable,
    MalformedAuthorization,
    RouteNotFound,
)
from m2mgate.server.responses import error_response, internal_error_response


@pytest.mark.parametrize(
    ("error", "status", "code", "challenge"),
    [
        (CredentialsMissing(), 401, "unauthorized", 'Bearer realm="m2mgate"'),
        (
            MalformedAuthorization(),
            400,
            "invalid_request",
            'Bearer realm="m2mgate", error="invalid_request"',
        ),
        (InvalidPath(), 400, "invalid_request", None),
        (Expired(), 401, "invalid_token", 'Bearer realm="m2mgate", error="invalid_token"'),
        (
            InsufficientScope(("admin", "x")),
            403,
            "insufficient_scope",
            'Bearer realm="m2mgate", error="insufficient_scope", scope="admin x"',
        ),
        (
            InsufficientScope(()),
            403,
            "insufficient_scope",
            'Bearer realm="m2mgate", error="insufficient_scope"',
        ),
        (RouteNotFound(), 404, "not_found", None),
        (KeysUnavailable(7), 503, "temporarily_unavailable", None),
        (BadGateway(), 502, "bad_gateway", None),
        (GatewayTimeout(), 504, "gateway_timeout", None),
    ],
)
def test_error_table(error, status, code, challenge):
    response = error_response(error, "rid-1")
    assert response.status == status
    assert response.header("WWW-Authenticate") == challenge
    assert response.header("Content-Type") == "application/json"
    assert response.header("Cache-Control") == "no-store"
    assert response.header("X-Request-Id") == "rid-1"
    body = json.loads(response.body)
    assert body == {"error": code, "error_description": error.description, "request_id": "rid-1"}


def test_retry_after():
    assert error_response(KeysUnavailable(7), "r").header("Retry-After") == "7"
    assert error_response(KeysUnavailable(0), "r").header("Retry-After") == "1"


def test_detail_never_reaches_the_client():
    response = error_response(Expired("eyJsecret.token.here exp=123"), "r")
    assert b"eyJ" not in response.body
    assert b"123" not in response.body


def test_internal_error():
    response = internal_error_response("r")
    assert response.status == 500
    assert json.loads(response.body)["error"] == "server_error"
