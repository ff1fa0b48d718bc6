"""The one error tree of the gateway.

Every way a request can be refused is a class here, carrying its HTTP status, its RFC 6750 / RFC
6749 error code, a fixed client-facing description and a `Reason` from a closed set. The same
reason labels the `m2mgate_auth_decisions_total` metric and the access log, so a dashboard, a log
query and a test all speak of one thing.

    GatewayError
    ├── RequestRejected              400 invalid_request
    │   ├── MalformedAuthorization       reason malformed       (two headers, bad syntax)
    │   ├── InvalidPath                  reason invalid_path    (dot segments, %2F, ...)
    │   └── BodyRefused                  reason malformed       (the listener refused the body)
    ├── CredentialsMissing           401 (no error code, RFC 6750 §3.1)  reason missing_token
    ├── InvalidToken                 401 invalid_token
    │   ├── MalformedToken               malformed_token
    │   ├── TokenTooLarge                token_too_large
    │   ├── UnknownIssuer                unknown_issuer
    │   ├── DisallowedAlgorithm          disallowed_alg
    │   ├── WrongTokenType               wrong_token_type
    │   ├── Expired                      expired
    │   ├── NotYetValid                  not_yet_valid
    │   ├── InvalidClaim                 invalid_claim          (wrong type, lifetime too long)
    │   ├── MissingClaim                 missing_claim
    │   ├── WrongAudience                wrong_audience
    │   ├── ClientNotAllowed             client_not_allowed
    │   ├── UnknownKey                   unknown_kid
    │   └── BadSignature                 bad_signature
    ├── InsufficientScope            403 insufficient_scope (scope, role, claim or issuer rule)
    ├── RouteNotFound                404 not_found          (default deny)
    │   └── RouteDenied                  route_denied           (a `deny: true` route matched)
    ├── KeysUnavailable              503 temporarily_unavailable + Retry-After
    ├── RequestTooLarge              413 request_too_large  (limits.max_body_bytes)
    ├── ClientTimeout                408 request_timeout    (the client stalled its body)
    ├── ClientClosedRequest          499 client_closed      (the client left mid-body; logged only)
    └── UpstreamFailure
        ├── BadGateway                   502 bad_gateway
        └── GatewayTimeout               504 gateway_timeout

Domain code raises these; only `server/responses.py` turns them into HTTP. `detail` is for the
log only: it may name a library message, never a token; values from the token enter it only
through `detail_text.py` (bounded, escaped). Nothing here is ever echoed to a client except the
class's fixed `description`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Reason(StrEnum):
    """Closed set of decision reasons: metric label values and log field values."""

    OK = "ok"
    PUBLIC = "public"
    MISSING_TOKEN = "missing_token"
    MALFORMED = "malformed"
    INVALID_PATH = "invalid_path"
    MALFORMED_TOKEN = "malformed_token"
    TOKEN_TOO_LARGE = "token_too_large"
    UNKNOWN_ISSUER = "unknown_issuer"
    DISALLOWED_ALG = "disallowed_alg"
    WRONG_TOKEN_TYPE = "wrong_token_type"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    INVALID_CLAIM = "invalid_claim"
    MISSING_CLAIM = "missing_claim"
    WRONG_AUDIENCE = "wrong_audience"
    CLIENT_NOT_ALLOWED = "client_not_allowed"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    KEYS_UNAVAILABLE = "keys_unavailable"
    NO_ROUTE = "no_route"
    ROUTE_DENIED = "route_denied"
    BODY_TOO_LARGE = "body_too_large"
    CLIENT_TIMEOUT = "client_timeout"
    CLIENT_GONE = "client_gone"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"


class GatewayError(Exception):
    """A request the gateway refuses. Subclasses fix status, code, description and reason."""

    status: ClassVar[int] = 500
    error: ClassVar[str] = "server_error"
    description: ClassVar[str] = "The gateway could not handle the request."
    reason: ClassVar[Reason]

    def __init__(self, detail: str = "") -> None:
        # `detail` goes to the log only (it may quote a library message); never to the client.
        super().__init__(detail or self.description)
        self.detail = detail


# --- 400 ----------------------------------------------------------------------------------------


class RequestRejected(GatewayError):
    status = 400
    error = "invalid_request"
    description = "The request is malformed."
    reason = Reason.MALFORMED


class MalformedAuthorization(RequestRejected):
    description = "The Authorization header is malformed."
    reason = Reason.MALFORMED


class InvalidPath(RequestRejected):
    description = "The request path is not acceptable."
    reason = Reason.INVALID_PATH


class BodyRefused(RequestRejected):
    """The listener found the request body malformed mid-stream (a bad chunk, oversized
    trailers) and answered the client itself. Raised to whoever reads the body, so an upstream
    exchange that carries it is cut, never completed (no terminating chunk)."""

    description = "The request body is malformed."
    reason = Reason.MALFORMED


# --- 401 ----------------------------------------------------------------------------------------


class CredentialsMissing(GatewayError):
    # RFC 6750 §3.1: "If the request lacks any authentication information ... the resource server
    # SHOULD NOT include an error code": the challenge carries only the realm.
    status = 401
    error = "unauthorized"
    description = "A Bearer access token is required."
    reason = Reason.MISSING_TOKEN


class InvalidToken(GatewayError):
    status = 401
    error = "invalid_token"
    description = "The access token is invalid."
    reason = Reason.BAD_SIGNATURE


class MalformedToken(InvalidToken):
    description = "The access token is not a well-formed signed JWT."
    reason = Reason.MALFORMED_TOKEN


class TokenTooLarge(InvalidToken):
    description = "The access token is too large."
    reason = Reason.TOKEN_TOO_LARGE


class UnknownIssuer(InvalidToken):
    description = "The access token was issued by an issuer this gateway does not trust."
    reason = Reason.UNKNOWN_ISSUER


class DisallowedAlgorithm(InvalidToken):
    description = "The access token is signed with an algorithm that is not allowed."
    reason = Reason.DISALLOWED_ALG


class WrongTokenType(InvalidToken):
    description = "The token is not an access token."
    reason = Reason.WRONG_TOKEN_TYPE


class Expired(InvalidToken):
    description = "The access token has expired."
    reason = Reason.EXPIRED


class NotYetValid(InvalidToken):
    description = "The access token is not valid yet."
    reason = Reason.NOT_YET_VALID


class InvalidClaim(InvalidToken):
    description = "The access token carries a claim with an invalid value."
    reason = Reason.INVALID_CLAIM


class MissingClaim(InvalidToken):
    description = "The access token lacks a required claim."
    reason = Reason.MISSING_CLAIM


class WrongAudience(InvalidToken):
    description = "The access token is not intended for this audience."
    reason = Reason.WRONG_AUDIENCE


class ClientNotAllowed(InvalidToken):
    description = "The client that obtained the access token is not allowed."
    reason = Reason.CLIENT_NOT_ALLOWED


class UnknownKey(InvalidToken):
    description = "The access token is signed with an unknown key."
    reason = Reason.UNKNOWN_KID


class BadSignature(InvalidToken):
    description = "The access token signature is invalid."
    reason = Reason.BAD_SIGNATURE


# --- 403 / 404 ----------------------------------------------------------------------------------


class InsufficientScope(GatewayError):
    status = 403
    error = "insufficient_scope"
    description = "The access token does not grant access to this resource."
    reason = Reason.INSUFFICIENT_SCOPE

    def __init__(self, required_scopes: tuple[str, ...], detail: str = "") -> None:
        super().__init__(detail)
        # Scope names come from the route config (validated as RFC 6749 scope-tokens), never
        # from the token, so they may appear in the challenge (RFC 6750 §3 `scope` attribute).
        self.required_scopes = required_scopes


class RouteNotFound(GatewayError):
    status = 404
    error = "not_found"
    description = "No route matches this request."
    reason = Reason.NO_ROUTE


class RouteDenied(RouteNotFound):
    """A `deny: true` route matched. The client gets exactly the unmatched-path answer (status,
    code, description): a deny route must not tell a prober which paths exist behind it. Only
    the reason differs, so logs and metrics say which route refused."""

    reason = Reason.ROUTE_DENIED


# --- after the decision: the request body -------------------------------------------------------


class RequestTooLarge(GatewayError):
    status = 413
    error = "request_too_large"
    description = "The request body is too large."
    reason = Reason.BODY_TOO_LARGE


class ClientTimeout(GatewayError):
    status = 408
    error = "request_timeout"
    description = "The request body did not arrive in time."
    reason = Reason.CLIENT_TIMEOUT


class ClientClosedRequest(GatewayError):
    """The client's connection failed while it sent its body. Nobody reads the answer; the
    status (nginx's 499) is for the access log and metrics, not a bug (never a 500)."""

    status = 499
    error = "client_closed_request"
    description = "The client closed the connection."
    reason = Reason.CLIENT_GONE


# --- 5xx ----------------------------------------------------------------------------------------


class KeysUnavailable(GatewayError):
    status = 503
    error = "temporarily_unavailable"
    description = "The signing keys of the token issuer are not available yet."
    reason = Reason.KEYS_UNAVAILABLE

    def __init__(self, retry_after_seconds: int, detail: str = "") -> None:
        super().__init__(detail)
        self.retry_after_seconds = max(1, retry_after_seconds)


class UpstreamFailure(GatewayError):
    reason = Reason.UPSTREAM_UNAVAILABLE


class BadGateway(UpstreamFailure):
    status = 502
    error = "bad_gateway"
    description = "The upstream service could not be reached."
    reason = Reason.UPSTREAM_UNAVAILABLE


class GatewayTimeout(UpstreamFailure):
    status = 504
    error = "gateway_timeout"
    description = "The upstream service did not answer in time."
    reason = Reason.UPSTREAM_TIMEOUT


class ConfigError(Exception):
    """The configuration is invalid. Carries every problem found, each as (yaml path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
