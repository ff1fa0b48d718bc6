"""Every metric the gateway exports, declared in one place (names are part of the CONTRACT).

Label values are bounded: route and issuer names come from config (`(none)` when no route or no
issuer applies; config names cannot contain parentheses), methods from a fixed set, reasons and
fetch results from closed sets. Never a path, a token or a claim value.

Each gateway owns its own registry, so several gateways (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from m2mgate import __version__
from m2mgate.auth.token_cache import TokenCacheStats
from m2mgate.keys.cache import KeyCacheStatus
from m2mgate.observability.outcome import Outcome

# `*_created` series double the exposition and no dashboard or alert of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

NO_LABEL = "(none)"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # Labelled children by (metric, labels): a dict hit instead of prometheus_client's
        # labels() (validation and a lock) on every request. Label values are bounded (config
        # names, known methods, status codes), so this stays small.
        self._children: dict[tuple[object, ...], Any] = {}
        r = self.registry
        self.requests = Counter(
            "m2mgate_requests", "Requests answered, by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.auth_decisions = Counter(
            "m2mgate_auth_decisions", "Authentication/authorization decisions and their reason.",
            ["route", "issuer", "decision", "reason"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "m2mgate_request_duration_seconds", "Time from request head to response end.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_duration = Histogram(
            "m2mgate_upstream_duration_seconds", "Time spent on the upstream exchange.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "m2mgate_upstream_errors", "Upstream failures: unavailable, timeout, aborted.",
            ["route", "kind"], registry=r,
        )  # fmt: skip
        self.client_errors = Counter(
            "m2mgate_client_errors", "Connections and requests refused before any routing: "
            "bad_http (the parser refused it), slow_client (head deadline), over_capacity.",
            ["kind"], registry=r,
        )  # fmt: skip
        self.jwks_fetches = Counter(
            "m2mgate_jwks_fetches", "Key set fetches by issuer and result.",
            ["issuer", "result"], registry=r,
        )  # fmt: skip
        self.config_reloads = Counter(
            "m2mgate_config_reloads", "Config reloads by result: ok | invalid.",
            ["result"], registry=r,
        )  # fmt: skip
        self.config_last_reload_successful = Gauge(
            "m2mgate_config_last_reload_successful",
            "1 when the last reload (or the start) applied its config; 0 after a refused one.",
            registry=r,
        )
        self.config_last_reload_successful.set(1)
        self.config_last_reload_timestamp = Gauge(
            "m2mgate_config_last_reload_success_timestamp_seconds",
            "When the config in use was applied (Unix time).",
            registry=r,
        )
        self.config_last_reload_timestamp.set_to_current_time()
        # Read at scrape time from the listener (watch_in_flight): no lock on the hot path.
        self.in_flight = Gauge(
            "m2mgate_requests_in_flight", "Requests being handled now.", registry=r
        )
        Gauge(
            "m2mgate_build_info", "Always 1; the version label says which build runs.",
            ["version"], registry=r,
        ).labels(__version__).set(1)  # fmt: skip

    def record(self, outcome: Outcome) -> None:
        """Count one answered request: every per-request series, in one call."""
        route = outcome.route if outcome.route is not None else NO_LABEL
        child = self.child
        child(self.requests, route, method_label(outcome.method), str(outcome.status)).inc()
        child(self.request_duration, route).observe(outcome.duration_seconds)
        if outcome.reason is not None:
            decision = "allow" if outcome.is_allowed else "deny"
            issuer = outcome.issuer or NO_LABEL
            child(self.auth_decisions, route, issuer, decision, outcome.reason).inc()
        if outcome.upstream_seconds is not None:
            child(self.upstream_duration, route).observe(outcome.upstream_seconds)
        if outcome.upstream_failure is not None:
            child(self.upstream_errors, route, outcome.upstream_failure).inc()

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch_key_caches(self, statuses: Callable[[], Iterable[KeyCacheStatus]]) -> None:
        """Export key cache state read at scrape time (never a stale copy)."""
        self.registry.register(_KeyCacheCollector(statuses))

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        self.in_flight.set_function(count)

    def watch_token_cache(
        self, stats: TokenCacheStats, entries: Callable[[], int], size_bytes: Callable[[], int]
    ) -> None:
        """The verified-token cache counts plain ints on the hot path; exported at scrape."""
        self.registry.register(_TokenCacheCollector(stats, entries, size_bytes))


class _TokenCacheCollector(Collector):
    def __init__(
        self, stats: TokenCacheStats, entries: Callable[[], int], size_bytes: Callable[[], int]
    ) -> None:
        self._stats = stats
        self._entries = entries
        self._size_bytes = size_bytes

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lookups = CounterMetricFamily(
            "m2mgate_token_cache_lookups",
            "Verified-token cache lookups: hit (signature check skipped) or miss.",
            labels=["result"],
        )
        lookups.add_metric(["hit"], self._stats.hits)
        lookups.add_metric(["miss"], self._stats.misses)
        evictions = CounterMetricFamily(
            "m2mgate_token_cache_evictions",
            "Entries dropped because the cache was full (token_cache_entries or _max_bytes).",
        )
        evictions.add_metric([], self._stats.evictions)
        size = GaugeMetricFamily("m2mgate_token_cache_entries", "Tokens in the cache now.")
        size.add_metric([], self._entries())
        size_bytes = GaugeMetricFamily(
            "m2mgate_token_cache_bytes",
            "Estimated memory held by the cache's entries (bounded by token_cache_max_bytes).",
        )
        size_bytes.add_metric([], self._size_bytes())
        yield from (lookups, evictions, size, size_bytes)


class _KeyCacheCollector(Collector):
    def __init__(self, statuses: Callable[[], Iterable[KeyCacheStatus]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        keys = GaugeMetricFamily(
            "m2mgate_jwks_keys", "Usable verification keys per issuer.", labels=["issuer"]
        )
        age = GaugeMetricFamily(
            "m2mgate_jwks_age_seconds",
            "Seconds since the issuer's key set was last fetched successfully (absent: never).",
            labels=["issuer"],
        )
        ready = GaugeMetricFamily(
            "m2mgate_jwks_ready", "1 when the issuer has a usable key set.", labels=["issuer"]
        )
        stale = GaugeMetricFamily(
            "m2mgate_jwks_stale", "1 when the key set is past its TTL (refresh failing).",
            labels=["issuer"],
        )  # fmt: skip
        for status in self._statuses():
            keys.add_metric([status.issuer_name], status.key_count)
            ready.add_metric([status.issuer_name], 1.0 if status.is_ready else 0.0)
            stale.add_metric([status.issuer_name], 1.0 if status.is_stale else 0.0)
            if status.age_seconds is not None:
                age.add_metric([status.issuer_name], status.age_seconds)
        yield from (keys, age, ready, stale)
