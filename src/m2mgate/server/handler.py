"""The proxy request handler. It reads top to bottom: pin the config, decide, forward, observe
once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from m2mgate.decision import DecisionRecord
from m2mgate.errors import GatewayError, GatewayTimeout, UpstreamFailure
from m2mgate.observability.logging import AccessLog
from m2mgate.observability.metrics import NO_LABEL, GatewayMetrics, method_label
from m2mgate.proxy.headers import ClientFacts, choose_request_id, upstream_request_headers
from m2mgate.server.exchange import RequestBody, RequestHead, ResponseSink
from m2mgate.server.relay import Relay
from m2mgate.server.responses import Reply, error_response, internal_error_response
from m2mgate.server.runtime import Runtime

_MAX_LOGGED_PATH = 512


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
        record = DecisionRecord()
        timing = Relay()
        runtime = self._current()  # this request finishes under this config, whatever reloads
        runtime.enter()
        try:
            await self._handle(runtime, head, body, response, request_id, record, timing)
        finally:
            runtime.leave()
            # A response never started (cancelled at shutdown) is logged as the 500 it ends as.
            status = response.status if response.head_sent else 500
            self._observe(head, body, request_id, record, timing, status, started)

    async def _handle(
        self,
        runtime: Runtime,
        head: RequestHead,
        body: RequestBody,
        response: ResponseSink,
        request_id: str,
        record: DecisionRecord,
        timing: Relay,
    ) -> None:
        try:
            await runtime.gatekeeper.decide(head.method, head.target, head.authorization, record)
            headers = upstream_request_headers(
                head.headers,
                runtime.settings.forward,
                record.principal,
                request_id,
                ClientFacts(address=head.peer.address, scheme=head.scheme, host=head.authority),
            )
            await timing.forward(
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
            timing.failure = "timeout" if isinstance(error, GatewayTimeout) else "unavailable"
            timing.failure_detail = error.detail
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
        record: DecisionRecord,
        timing: Relay,
        status: int,
        started: float,
    ) -> None:
        duration = time.perf_counter() - started
        route = record.route.name if record.route is not None else NO_LABEL
        issuer = record.issuer_name or NO_LABEL
        decision = "allow" if record.is_allowed else "deny"
        metrics = self.metrics
        child = metrics.child
        child(metrics.requests, route, method_label(head.method), str(status)).inc()
        child(metrics.request_duration, route).observe(duration)
        if record.reason is not None:
            child(metrics.auth_decisions, route, issuer, decision, record.reason.value).inc()
        if timing.upstream_seconds is not None:
            child(metrics.upstream_duration, route).observe(timing.upstream_seconds)
        if timing.failure is not None:
            child(metrics.upstream_errors, route, timing.failure).inc()
        principal = record.principal
        self.access_log.write_request(
            request_id,
            head.method,
            head.path[:_MAX_LOGGED_PATH],
            record.route.name if record.route is not None else None,
            status,
            decision,
            record.reason.value if record.reason is not None else None,
            record.issuer_name,
            # Only a *verified* client id is logged: an unverified one could be anything.
            principal.client_id if principal is not None else None,
            round(duration * 1000, 3),
            round(timing.upstream_seconds * 1000, 3)
            if timing.upstream_seconds is not None
            else None,
            timing.body_bytes,
            record.detail or _body_detail(body, timing),
            timing.failure,
            timing.failure_detail,
            timing.client_gone or None,
            head.peer.address,
        )


def _body_detail(body: RequestBody, timing: Relay) -> str | None:
    """Why the request body ended the exchange (a limit, a stall, the listener's refusal)."""
    if timing.body_error is not None:
        return timing.body_error.detail or None
    if body.refusal is not None:  # refused before anyone read the body
        return f"the request body is malformed ({body.refusal})"
    if timing.client_stalled:
        return "the client read nothing of the response for limits.send_timeout_seconds"
    return None


def _send(response: ResponseSink, reply: Reply) -> None:
    if response.finished:
        return  # the listener has answered already (it refused the body): nothing more to say
    if response.head_sent:
        response.abort()  # the response had started: too late for an error, cut it honestly
    else:
        response.respond(reply.status, reply.headers, reply.body)
