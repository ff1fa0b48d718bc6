"""Merging the workers' expositions: counters and histograms sum, gauges by meaning."""

from prometheus_client import generate_latest

from m2mgate.observability.metrics import GatewayMetrics
from m2mgate.observability.metrics_merge import gauge_rule, merge_expositions
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
