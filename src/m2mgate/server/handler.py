"""The proxy request handler. It reads top to bottom: pin the config, decide, forward, observe
once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from m2mgate.decision import Decision
from m2mgate.errors import GatewayError, GatewayTimeout, UpstreamFailure
from m2mgate.observability.logging import AccessLog
from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.outcome import Outcome
from m2mgate.proxy.forwarder import ForwardTiming
from m2mgate.proxy.headers import ClientFacts, choose_request_id, upstream_request_headers
from m2mgate.request_path import split_target
from m2mgate.server.request_cycle import RequestCycle
from m2mgate.server.responses import Reply, error_response, internal_error_response
from m2mgate.server.runtime import Runtime


class ProxyHandler:
    def __init__(
        self,
        current: Callable[[], Runtime],
        metrics: GatewayMetrics,
        log: Any,
        access_log: AccessLog,
    ) -> None:
        self._current = current  # the runtime of the newest config (reload swaps it)
        self.metrics = metrics
        self.log = log
        self.access_log = access_log

    async def __call__(self, request: RequestCycle) -> None:
        started = time.perf_counter()
        request_id = request.request_id = choose_request_id(request.request_ids)
        path, query = split_target(request.target)  # once: routed on, then logged
        decision: Decision | None = None
        timing = ForwardTiming()
        runtime = self._current()  # this request finishes under this config, whatever reloads
        runtime.enter()
        try:
            decision = await self._decide(runtime, request, request_id, path, query)
            if decision is not None:
                await self._handle(runtime, request, request_id, decision, timing)
        finally:
            runtime.leave()
            # A response never started (cancelled at shutdown) is logged as the 500 it ends as.
            status = request.status if request.head_sent else 500
            self._observe(request, path, request_id, decision, timing, status, started)

    async def _decide(
        self, runtime: Runtime, request: RequestCycle, request_id: str, path: str, query: str
    ) -> Decision | None:
        try:
            return await runtime.gatekeeper.decide(
                request.method, path, query, request.authorization
            )
        except Exception:
            # Not a gateway decision: a bug. 500, logged with its trace; never a silent 401.
            self.log.exception("unhandled_error", request_id=request_id)
            _send(request, internal_error_response(request_id))
            return None

    async def _handle(
        self,
        runtime: Runtime,
        request: RequestCycle,
        request_id: str,
        decision: Decision,
        timing: ForwardTiming,
    ) -> None:
        if decision.error is not None:
            _send(request, error_response(decision.error, request_id))
            return
        try:
            headers = upstream_request_headers(
                request.headers,
                runtime.settings.forward,
                decision.principal,
                request_id,
                ClientFacts(address=request.remote, scheme=request.scheme, host=request.host),
            )
            await runtime.forwarder.forward(
                request, headers, request_id, timing, runtime.settings.body_limits
            )
            return
        except UpstreamFailure as error:
            timing.failure = "timeout" if isinstance(error, GatewayTimeout) else "unavailable"
            timing.failure_detail = error.detail
            reply = error_response(error, request_id)
        except GatewayError as error:
            reply = error_response(error, request_id)
        except Exception:
            # Not a gateway decision: a bug. 500, logged with its trace; never a silent 401.
            self.log.exception("unhandled_error", request_id=request_id)
            reply = internal_error_response(request_id)
        _send(request, reply)

    def _observe(
        self,
        request: RequestCycle,
        path: str,
        request_id: str,
        decision: Decision | None,
        timing: ForwardTiming,
        status: int,
        started: float,
    ) -> None:
        if decision is None:  # a bug before any decision: no route, no reason
            route = reason = issuer = client_id = None
            is_allowed, detail = False, ""
        else:
            route = decision.route.name if decision.route is not None else None
            reason, issuer = decision.reason.value, decision.issuer_name
            principal = decision.principal
            client_id = principal.client_id if principal is not None else None
            is_allowed, detail = decision.is_allowed, decision.detail
        outcome = Outcome(
            request_id,
            request.method,
            path,
            request.remote,
            status,
            time.perf_counter() - started,
            route,
            is_allowed,
            reason,
            issuer,
            client_id,
            detail or _body_detail(request, timing),
            timing.upstream_seconds,
            timing.body_bytes,
            timing.failure,
            timing.failure_detail,
            timing.client_gone,
        )
        self.metrics.record(outcome)
        self.access_log.record(outcome)


def _body_detail(request: RequestCycle, timing: ForwardTiming) -> str | None:
    """Why the request body ended the exchange (a limit, a stall, the listener's refusal)."""
    if timing.body_error is not None:
        return timing.body_error.detail or None
    if request.refusal is not None:  # refused before anyone read the body
        return f"the request body is malformed ({request.refusal})"
    if timing.client_stalled:
        return "the client read nothing of the response for limits.send_timeout_seconds"
    return None


def _send(request: RequestCycle, reply: Reply) -> None:
    if request.finished:
        return  # the listener has answered already (it refused the body): nothing more to say
    if request.head_sent:
        request.abort()  # the response had started: too late for an error, cut it honestly
    else:
        request.respond(reply.status, reply.headers, reply.body)
