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
from m2mgate.proxy.forwarded import ClientFacts
from m2mgate.proxy.headers import choose_request_id, upstream_request_headers
from m2mgate.server.exchange import RequestBody, RequestHead, ResponseSink
from m2mgate.server.relay import Relay
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

    async def __call__(self, head: RequestHead, body: RequestBody, response: ResponseSink) -> None:
        started = time.perf_counter()
        request_id = response.request_id = choose_request_id(head.request_ids)
        decision: Decision | None = None
        relay = Relay()
        runtime = self._current()  # this request finishes under this config, whatever reloads
        runtime.enter()
        try:
            decision = await self._decide(runtime, head, response, request_id)
            if decision is not None:
                await self._handle(runtime, head, body, response, request_id, decision, relay)
        finally:
            runtime.leave()
            # A response never started (cancelled at shutdown) is logged as the 500 it ends as.
            status = response.status if response.head_sent else 500
            self._observe(head, body, request_id, decision, relay, status, started)

    async def _decide(
        self, runtime: Runtime, head: RequestHead, response: ResponseSink, request_id: str
    ) -> Decision | None:
        try:
            # The target was split once, by the listener: routed on here, then logged.
            return await runtime.gatekeeper.decide(
                head.method, head.path, head.query, head.authorization
            )
        except Exception:
            # Not a gateway decision: a bug. 500, logged with its trace; never a silent 401.
            self.log.exception("unhandled_error", request_id=request_id)
            _send(response, internal_error_response(request_id))
            return None

    async def _handle(
        self,
        runtime: Runtime,
        head: RequestHead,
        body: RequestBody,
        response: ResponseSink,
        request_id: str,
        decision: Decision,
        relay: Relay,
    ) -> None:
        if decision.error is not None:
            _send(response, error_response(decision.error, request_id))
            return
        try:
            headers = upstream_request_headers(
                head.headers,
                runtime.settings.forward,
                decision.principal,
                request_id,
                ClientFacts(address=head.peer.address, scheme=head.scheme, host=head.authority),
            )
            await relay.forward(
                head,
                body,
                response,
                runtime.forwarder,
                headers,
                request_id,
                runtime.settings.body_limits,
            )
            return
        except UpstreamFailure as error:
            relay.failure = "timeout" if isinstance(error, GatewayTimeout) else "unavailable"
            relay.failure_detail = error.detail
            reply = error_response(error, request_id)
        except GatewayError as error:
            reply = error_response(error, request_id)
        except Exception:
            # Not a gateway decision: a bug. 500, logged with its trace; never a silent 401.
            self.log.exception("unhandled_error", request_id=request_id)
            reply = internal_error_response(request_id)
        _send(response, reply)

    def _observe(
        self,
        head: RequestHead,
        body: RequestBody,
        request_id: str,
        decision: Decision | None,
        relay: Relay,
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
            head.method,
            head.path,
            head.peer.address,
            status,
            time.perf_counter() - started,
            route,
            is_allowed,
            reason,
            issuer,
            client_id,
            detail or _body_detail(body, relay),
            relay.upstream_seconds,
            relay.body_bytes,
            relay.failure,
            relay.failure_detail,
            relay.client_gone,
        )
        self.metrics.record(outcome)
        self.access_log.record(outcome)


def _body_detail(body: RequestBody, relay: Relay) -> str | None:
    """Why the request body ended the exchange (a limit, a stall, the listener's refusal)."""
    if relay.body_error is not None:
        return relay.body_error.detail or None
    if body.refusal is not None:  # refused before anyone read the body
        return f"the request body is malformed ({body.refusal})"
    if relay.client_stalled:
        return "the client read nothing of the response for limits.send_timeout_seconds"
    return None


def _send(response: ResponseSink, reply: Reply) -> None:
    if response.finished:
        return  # the listener has answered already (it refused the body): nothing more to say
    if response.head_sent:
        response.abort()  # the response had started: too late for an error, cut it honestly
    else:
        response.respond(reply.status, reply.headers, reply.body)
