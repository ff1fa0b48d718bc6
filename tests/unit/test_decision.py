"""The one decision function, with a verifier stub: order of checks and what gets recorded."""

import pytest

from m2mgate.auth.claims import build_principal
from m2mgate.auth.policy import Requirement
from m2mgate.auth.presets import PRESETS
from m2mgate.auth.verifier import Rejected
from m2mgate.decision import Gatekeeper
from m2mgate.errors import (
    CredentialsMissing,
    Expired,
    InsufficientScope,
    InvalidPath,
    Reason,
    RouteDenied,
    RouteNotFound,
)
from m2mgate.request_path import split_target
from m2mgate.routing import Route, RouteTable, compile_pattern


class StubVerifier:
    def __init__(self, scope="read", error=None):
        self.scope = scope
        self.error = error
        self.calls = 0

    async def verify(self, token, observer=None):
        self.calls += 1
        if self.error is not None:
            raise Rejected(self.error, "local")
        claims = {"exp": 1, "scope": self.scope}
        return build_principal(
            claims, PRESETS["generic"].layout, issuer_name="local", issuer="i", client_id="c"
        )


ROUTES = RouteTable(
    (
        Route("public", compile_pattern("/public/**"), None, None),
        Route(
            "admin", compile_pattern("/admin/**"), None, Requirement(scopes=frozenset({"admin"}))
        ),
        Route("api", compile_pattern("/api/**"), frozenset({"GET"}), Requirement()),
        Route("no-delete", compile_pattern("/**"), frozenset({"DELETE"}), None, is_deny=True),
    )
)


async def decide(verifier, method, target, authorization=("Bearer t",)):
    path, query = split_target(target)
    gatekeeper = Gatekeeper(ROUTES, verifier, 8192)
    record = await gatekeeper.decide(method, path, query, list(authorization))
    return record, record.error


async def test_allowed():
    verifier = StubVerifier()
    record, error = await decide(verifier, "GET", "/api/x")
    assert error is None
    assert record.is_allowed
    assert record.reason is Reason.OK
    assert (record.route.name, record.issuer_name, record.principal.client_id) == (
        "api",
        "local",
        "c",
    )


async def test_public_route_never_looks_at_the_token():
    verifier = StubVerifier(error=Expired())
    record, error = await decide(verifier, "GET", "/public/x", ["garbage"])
    assert error is None
    assert record.reason is Reason.PUBLIC
    assert verifier.calls == 0


@pytest.mark.parametrize(
    ("method", "path", "authorization", "expected", "reason"),
    [
        ("GET", "/public/../admin/x", ["Bearer t"], InvalidPath, Reason.INVALID_PATH),
        ("GET", "/nowhere", ["Bearer t"], RouteNotFound, Reason.NO_ROUTE),
        ("POST", "/api/x", ["Bearer t"], RouteNotFound, Reason.NO_ROUTE),
        ("GET", "/api/x", [], CredentialsMissing, Reason.MISSING_TOKEN),
        ("GET", "/admin/x", ["Bearer t"], InsufficientScope, Reason.INSUFFICIENT_SCOPE),
    ],
)
async def test_denials_are_recorded(method, path, authorization, expected, reason):
    verifier = StubVerifier()
    record, error = await decide(verifier, method, path, authorization)
    assert isinstance(error, expected)
    assert record.reason is reason
    assert not record.is_allowed
    if expected in (InvalidPath, RouteNotFound, CredentialsMissing):
        assert verifier.calls == 0  # refused before any token work


async def test_a_deny_route_is_answered_like_no_route_but_recorded_as_itself():
    """`deny: true` carries no requirement, like a public route: it must be refused before the
    public check, never let through. The client sees RouteNotFound; logs and metrics see the
    route and `route_denied`."""
    verifier = StubVerifier()
    record, error = await decide(verifier, "DELETE", "/api/x", [])
    assert type(error) is RouteDenied
    assert isinstance(error, RouteNotFound)  # the same 404 not_found response
    assert (error.status, error.error, error.description) == (
        RouteNotFound.status, RouteNotFound.error, RouteNotFound.description,
    )  # fmt: skip
    assert (record.reason, record.route.name, record.is_allowed) == (
        Reason.ROUTE_DENIED, "no-delete", False,
    )  # fmt: skip
    assert verifier.calls == 0
    record, error = await decide(verifier, "PUT", "/api/x", [])  # other methods pass on
    assert (type(error), record.reason) == (RouteNotFound, Reason.NO_ROUTE)


async def test_verification_failures_carry_the_issuer():
    record, error = await decide(StubVerifier(error=Expired("old")), "GET", "/api/x")
    assert isinstance(error, Expired)
    assert (record.reason, record.issuer_name, record.detail) == (Reason.EXPIRED, "local", "old")
    assert record.principal is None


async def test_the_query_is_checked_as_given_by_the_caller():
    """The handler splits the target once and passes path and query apart."""
    verifier = StubVerifier()
    gatekeeper = Gatekeeper(ROUTES, verifier, 8192)
    decision = await gatekeeper.decide("GET", "/api/x", "_method=DELETE", ["Bearer t"])
    assert (type(decision.error), decision.route, verifier.calls) == (InvalidPath, None, 0)
    decision = await gatekeeper.decide("GET", "/api/x", "a=1", ["Bearer t"])
    assert (decision.is_allowed, decision.detail, decision.route.name) == (True, "", "api")
