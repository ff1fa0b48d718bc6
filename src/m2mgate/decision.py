"""The gateway's decision for one request: route, then token, then policy. No HTTP here.

The proxy handler and `m2mgate explain` both call `Gatekeeper.decide`: there is one function that
decides, so what `explain` reports is what the gateway does.

    path policy (400)  ->  route match (404, default deny)  ->  deny route? 404  ->  public? allow
    ->  Bearer extraction (401/400)  ->  token verification (401/503)  ->  route policy (403)
"""

from __future__ import annotations

from collections.abc import Sequence

from m2mgate.auth.bearer import extract_bearer_token
from m2mgate.auth.policy import authorize
from m2mgate.auth.principal import Principal
from m2mgate.auth.trace import Observer, Step, observed
from m2mgate.auth.verifier import Rejected, TokenVerifier
from m2mgate.errors import GatewayError, InvalidPath, Reason, RouteDenied, RouteNotFound
from m2mgate.request_path import check_query, normalize_request_path
from m2mgate.routing import PathConfusion, Route, RouteTable

# The steps and reasons every request reads, bound to module names: on CPython 3.11 an
# enum member read through its class costs about four times a global.
_REASON_OK = Reason.OK
_REASON_PUBLIC = Reason.PUBLIC
_STEP_CREDENTIALS = Step.CREDENTIALS
_STEP_PATH = Step.PATH
_STEP_POLICY = Step.POLICY
_STEP_ROUTE = Step.ROUTE


class Decision:
    """What the gateway decided for one request: read by the handler (answer or forward), the
    access log and the metrics, and by `explain`.

    `error` is None when the request may pass; else the refusal to answer with. `issuer_name`
    is the issuer the token *claims* when it was refused (a bounded label, not an identity).
    """

    __slots__ = ("error", "issuer_name", "principal", "reason", "route")

    def __init__(
        self,
        route: Route | None,
        principal: Principal | None,
        reason: Reason,
        error: GatewayError | None = None,
        issuer_name: str | None = None,
    ) -> None:
        self.route = route
        self.principal = principal
        self.reason = reason
        self.error = error
        self.issuer_name = issuer_name

    @property
    def is_allowed(self) -> bool:
        return self.error is None

    @property
    def detail(self) -> str:
        """Why it was refused, for the log only ("" when allowed)."""
        return "" if self.error is None else self.error.detail


class Gatekeeper:
    def __init__(self, routes: RouteTable, verifier: TokenVerifier, max_token_bytes: int) -> None:
        self.routes = routes
        self.verifier = verifier
        self.max_token_bytes = max_token_bytes

    async def decide(
        self,
        method: str,
        path: str,
        query: str,
        authorization: Sequence[str],
        observer: Observer | None = None,
    ) -> Decision:
        """The decision for one request. `path` and `query` are the request-target split once
        by the caller (`request_path.split_target`), still percent-encoded.

        `observer` (from `m2mgate explain`) is told every step; the proxy passes none.
        """
        route: Route | None = None
        principal: Principal | None = None
        try:
            routed = observed(observer, _STEP_PATH, _routed_path, path, query)
            route = observed(observer, _STEP_ROUTE, self._route, method, routed)
            if route.is_deny:  # before the public check: a deny route has no requirement either
                raise RouteDenied(f"denied by route {route.name}")
            if route.requirement is None:  # public route: no token needed, none inspected
                return Decision(route, None, _REASON_PUBLIC)
            token = observed(observer, _STEP_CREDENTIALS, self._token, authorization)
            principal = await self.verifier.verify(token, observer)
            observed(observer, _STEP_POLICY, authorize, route.requirement, principal)
        except Rejected as rejected:
            error = rejected.error
            return Decision(route, None, error.reason, error, rejected.issuer_name)
        except GatewayError as error:
            issuer_name = principal.issuer_name if principal is not None else None
            return Decision(route, principal, error.reason, error, issuer_name)
        return Decision(route, principal, _REASON_OK, None, principal.issuer_name)

    def _route(self, method: str, path: str) -> Route:
        try:
            route = self.routes.match(method, path)
        except PathConfusion as confusion:  # letter case or trailing slash: see routing.py
            raise InvalidPath(str(confusion)) from None
        if route is None:
            raise RouteNotFound()
        return route

    def _token(self, authorization: Sequence[str]) -> str:
        return extract_bearer_token(authorization, max_bytes=self.max_token_bytes)


def _routed_path(raw_path: str, query: str) -> str:
    """The decoded path the route is matched on; the query is forwarded as is, never routed on,
    once it is known not to override the method."""
    if query:
        check_query(query)
    return normalize_request_path(raw_path)
