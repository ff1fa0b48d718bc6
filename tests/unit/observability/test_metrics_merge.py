"""Merging the workers' expositions: counters and histograms sum, gauges by meaning."""

from prometheus_client import generate_latest

from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.metrics_merge import (
    NOTHING_RETAINED,
    cumulative_samples,
    gauge_rule,
    merge_expositions,
)
from tests.integration.test_key_lifecycle import metric


def exposition(requests: int, in_flight: int, ready: int, age: float) -> str:
    metrics = GatewayMetrics()
    for _ in range(requests):
        metrics.requests.labels("user", "GET", "200").inc()
        metrics.request_duration.labels("user").observe(0.002)
    metrics.in_flight.set(in_flight)
    text = generate_latest(metrics.registry).decode()
    # Key cache gauges come from a scrape-time collector; add them as a worker would show them.
    return text + (
        "# HELP m2mgate_jwks_ready r\n# TYPE m2mgate_jwks_ready gauge\n"
        f'm2mgate_jwks_ready{{issuer="a"}} {ready}\n'
        "# HELP m2mgate_jwks_age_seconds a\n# TYPE m2mgate_jwks_age_seconds gauge\n"
        f'm2mgate_jwks_age_seconds{{issuer="a"}} {age}\n'
    )


def test_counters_and_histograms_sum_gauges_follow_their_meaning():
    merged = merge_expositions([exposition(3, 1, 1, 10.0), exposition(4, 2, 0, 30.0)]).decode()
    assert metric(merged, "m2mgate_requests_total", route="user", status="200") == 7
    assert metric(merged, "m2mgate_request_duration_seconds_count", route="user") == 7
    assert metric(merged, "m2mgate_request_duration_seconds_bucket", route="user", le="0.0025") == 7
    assert metric(merged, "m2mgate_requests_in_flight") == 3  # sum
    assert metric(merged, "m2mgate_jwks_ready", issuer="a") == 0  # min: one worker is not ready
    assert metric(merged, "m2mgate_jwks_age_seconds", issuer="a") == 30  # max: the oldest
    assert metric(merged, "m2mgate_build_info") == 1  # max, not 2
    assert "# TYPE m2mgate_requests_total counter" in merged


def test_flags_and_constants_never_sum():
    for name in ("m2mgate_jwks_ready", "m2mgate_jwks_keys", "m2mgate_build_info",
                 "m2mgate_config_last_reload_successful", "m2mgate_jwks_stale",
                 "m2mgate_jwks_age_seconds"):  # fmt: skip
        assert gauge_rule(name) in ("min", "max"), name
    assert gauge_rule("m2mgate_requests_in_flight") == "sum"


def test_retained_counters_and_histograms_are_added_and_gauges_are_not():
    """A dead worker's last counters (cumulative_samples) are a baseline the merge adds."""
    dead = cumulative_samples(exposition(3, 5, 1, 99.0))
    merged = merge_expositions([exposition(4, 2, 1, 10.0)], retained=dead).decode()
    assert metric(merged, "m2mgate_requests_total", route="user", status="200") == 7
    assert metric(merged, "m2mgate_request_duration_seconds_count", route="user") == 7
    assert metric(merged, "m2mgate_request_duration_seconds_sum", route="user") == 7 * 0.002
    assert metric(merged, "m2mgate_request_duration_seconds_bucket", route="user", le="+Inf") == 7
    assert metric(merged, "m2mgate_requests_in_flight") == 2  # the live worker's only
    assert metric(merged, "m2mgate_jwks_age_seconds", issuer="a") == 10  # not the dead 99
    assert merged.count("# TYPE m2mgate_requests_total counter") == 1


def test_a_series_only_a_dead_worker_had_keeps_its_name_and_type():
    metrics = GatewayMetrics()
    metrics.requests.labels("admin", "POST", "403").inc(2)
    dead = cumulative_samples(generate_latest(metrics.registry).decode())
    merged = merge_expositions([exposition(1, 0, 1, 1.0)], retained=dead).decode()
    assert metric(merged, "m2mgate_requests_total", route="admin", status="403") == 2
    assert metric(merged, "m2mgate_requests_total", route="user", status="200") == 1
    # No live worker at all: the retained counters are still there, typed.
    alone = merge_expositions([], retained=dead).decode()
    assert "# TYPE m2mgate_requests_total counter" in alone
    assert metric(alone, "m2mgate_requests_total", route="admin") == 2
    assert "m2mgate_requests_in_flight" not in alone


def test_cumulative_samples_add_up_and_leave_gauges_out():
    one, two = (
        cumulative_samples(exposition(3, 1, 1, 1.0)),
        cumulative_samples(exposition(4, 1, 1, 1.0)),
    )
    both = one.plus(two)
    assert "m2mgate_requests_in_flight" not in both.headers
    assert "m2mgate_jwks_ready" not in both.headers
    assert both.headers["m2mgate_request_duration_seconds"].type == "histogram"
    key = ("m2mgate_requests_total", (("method", "GET"), ("route", "user"), ("status", "200")))
    assert both.values["m2mgate_requests"][key] == 7
    assert one.values["m2mgate_requests"][key] == 3  # plus() returns a new value
    assert NOTHING_RETAINED.plus(one) == one
