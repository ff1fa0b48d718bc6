"""One `Outcome` per request, recorded in one call each by the metrics and the access log."""

import io
import json

from m2mgate.observability.logging import AccessLog
from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.outcome import Outcome
from tests.integration.test_key_lifecycle import metric
from tests.unit.observability.test_logging import request_fields


def outcome(**changes):
    fields = {
        "request_id": "rid-1", "method": "GET", "path": "/x", "remote": "127.0.0.1",
        "status": 200, "duration_seconds": 0.00125, "route": "user", "is_allowed": True,
        "reason": "ok", "issuer": "local", "client_id": "svc", "detail": None,
        "upstream_seconds": 0.0005, "body_bytes": None, "upstream_failure": None,
        "upstream_detail": None, "client_gone": False,
    }  # fmt: skip
    fields.update(changes)
    return Outcome(**fields)


def line(write):
    stream = io.StringIO()
    write(AccessLog(stream, "info"))
    return json.loads(stream.getvalue())


def test_the_access_log_records_an_outcome_as_its_request_line():
    recorded = line(lambda log: log.record(outcome()))
    written = line(lambda log: log.write_request(**request_fields()))
    recorded.pop("timestamp"), written.pop("timestamp")
    assert recorded == written


def test_the_access_log_bounds_the_path_and_shows_denials():
    recorded = line(
        lambda log: log.record(
            outcome(
                path="/a" * 400, status=499, is_allowed=False, reason="expired", client_id=None,
                upstream_seconds=None, client_gone=True, detail="old",
            )
        )
    )  # fmt: skip
    assert len(recorded["path"]) == 512
    assert (recorded["decision"], recorded["reason"], recorded["detail"]) == (
        "deny",
        "expired",
        "old",
    )
    assert (recorded["upstream_ms"], recorded["client_gone"]) == (None, True)


def test_metrics_record_every_series_of_an_outcome():
    from prometheus_client import generate_latest

    metrics = GatewayMetrics()
    metrics.record(outcome())
    metrics.record(
        outcome(
            route=None, method="BREW", status=504, is_allowed=False, reason="no_route",
            issuer=None, upstream_failure="timeout",
        )
    )  # fmt: skip
    metrics.record(
        outcome(reason=None, is_allowed=False, upstream_seconds=None)
    )  # a bug: no decision
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "m2mgate_requests_total", route="user", method="GET", status="200") == 2
    assert metric(text, "m2mgate_requests_total", route="(none)", method="OTHER") == 1
    assert metric(text, "m2mgate_auth_decisions_total", route="user", decision="allow") == 1
    assert (
        metric(
            text, "m2mgate_auth_decisions_total", route="(none)", issuer="(none)", reason="no_route"
        )
        == 1
    )
    assert metric(text, "m2mgate_upstream_duration_seconds_count", route="user") == 1
    assert metric(text, "m2mgate_upstream_errors_total", route="(none)", kind="timeout") == 1
    assert metric(text, "m2mgate_request_duration_seconds_count", route="user") == 2
