"""The gateway's decision for one request: route, then token, then policy. No HTTP here.

The proxy handler and `m2mgate explain` both call `Gatekeeper.decide`: there is one function that
decides, so what `explain` reports is what the gateway does.

    path policy (400)  ->  route match (404, default deny)  ->  deny route? 404  ->  public? allow
    ->  Bearer extraction (401/400)  ->  token verification (401/503)  ->  route policy (403)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from m2mgate.auth.bearer import extract_bearer_token
from m2mgate.auth.policy import authorize
from m2mgate.auth.principal import Principal
from m2mgate.auth.trace import Trace, traced
from m2mgate.auth.verifier import TokenVerifier
from m2mgate.errors import GatewayError, InvalidPath, Reason, RouteDenied, RouteNotFound
from m2mgate.request_path import check_query, normalize_request_path, split_target
from m2mgate.routing import PathConfusion, Route, RouteTable


@dataclass(slots=True)
class DecisionRecord:
    """What became known while deciding; read once by the access log and the metrics."""

    route: Route | None = None
    issuer_name: str | None = None
    principal: Principal | None = None
    reason: Reason | None = None
    detail: str = ""

    @property
    def is_allowed(self) -> bool:
        return self.reason in (Reason.OK, Reason.PUBLIC)


class Gatekeeper:
    def __init__(self, routes: RouteTable, verifier: TokenVerifier, max_token_bytes: int) -> None:
        self.routes = routes
        self.verifier = verifier
        self.max_token_bytes = max_token_bytes

    async def decide(
        self,
        method: str,
        target: str,
        authorization: Sequence[str],
        record: DecisionRecord,
        trace: Trace | None = None,
    ) -> None:
        """Return when the request may pass (facts in `record`); raise the GatewayError else.

        `target` is the request-target as received (path and query, still percent-encoded).

        `trace` (from `m2mgate explain`) records every step; the proxy passes none.
        """
        try:
            await self._decide(method, target, authorization, record, trace)
        except GatewayError as error:
            record.reason = error.reason
            record.detail = error.detail
            record.issuer_name = record.issuer_name or error.issuer_name
            raise

    async def _decide(
        self,
        method: str,
        target: str,
        authorization: Sequence[str],
        record: DecisionRecord,
        trace: Trace | None,
    ) -> None:
        path = traced(trace, "path", _routed_path, target)
        route = traced(trace, "route", self._route, method, path)
        record.route = route
        if route.is_deny:  # before the public check: a deny route has no requirement either
            raise RouteDenied(f"denied by route {route.name}")
        if route.requirement is None:  # public route: no token needed, none inspected
            record.reason = Reason.PUBLIC
            return
        token = traced(trace, "credentials", self._token, authorization)
        principal = await self.verifier.verify(token, trace)
        record.principal = principal
        record.issuer_name = principal.issuer_name
        traced(trace, "policy", authorize, route.requirement, principal)
        record.reason = Reason.OK

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


def _routed_path(target: str) -> str:
    """The decoded path the route is matched on; the query is forwarded as is, never routed on,
    once it is known not to override the method."""
    raw_path, query = split_target(target)
    if query:
        check_query(query)
    return normalize_request_path(raw_path)
