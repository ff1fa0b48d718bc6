"""The gateway's decision for one request: route, then token, then policy. No HTTP here.

The proxy handler and `m2mgate explain` both call `Gatekeeper.decide`: there is one function that
decides, so what `explain` reports is what the gateway does.

    path policy (400)  ->  route match (404, default deny)  ->  public? allow
    ->  Bearer extraction (401/400)  ->  token verification (401/503)  ->  route policy (403)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from m2mgate.auth.bearer import extract_bearer_token
from m2mgate.auth.policy import authorize
from m2mgate.auth.principal import Principal
from m2mgate.auth.verifier import TokenVerifier
from m2mgate.errors import GatewayError, Reason, RouteNotFound
from m2mgate.request_path import normalize_request_path
from m2mgate.routing import Route, RouteTable


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
        raw_path: str,
        authorization: Sequence[str],
        record: DecisionRecord,
    ) -> None:
        """Return when the request may pass (facts in `record`); raise the GatewayError else."""
        try:
            await self._decide(method, raw_path, authorization, record)
        except GatewayError as error:
            record.reason = error.reason
            record.detail = error.detail
            record.issuer_name = record.issuer_name or error.issuer_name
            raise

    async def _decide(
        self, method: str, raw_path: str, authorization: Sequence[str], record: DecisionRecord
    ) -> None:
        route = self.routes.match(method, normalize_request_path(raw_path))
        if route is None:
            raise RouteNotFound()
        record.route = route
        if route.requirement is None:  # public route: no token needed, none inspected
            record.reason = Reason.PUBLIC
            return
        token = extract_bearer_token(authorization, max_bytes=self.max_token_bytes)
        principal = await self.verifier.verify(token)
        record.principal = principal
        record.issuer_name = principal.issuer_name
        authorize(route.requirement, principal)
        record.reason = Reason.OK
