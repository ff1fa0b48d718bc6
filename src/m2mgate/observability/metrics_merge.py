"""One /metrics for N worker processes: their Prometheus texts merged into one exposition.

`run --workers N` scrapes every worker's own (loopback-only) /metrics and serves the merge, so
a scraper sees one gateway whatever N is: the same names, the same labels.

- counters and histograms: summed per series (requests, decisions, buckets, sums, counts);
- gauges, per meaning:
  - `sum`: things each worker holds its own share of (requests in flight, cached tokens);
  - `min`: "is every worker fine?" flags (keys ready, last reload applied) and counts where
    the weakest worker is what matters (usable keys; the oldest successful reload time);
  - `max`: "is any worker in trouble?" (keys stale, key set age) and constants (build info).

A worker that dies takes its counters with it, and the merged counters would go backwards
(#8: `m2mgate_requests_total` 20 -> 11), which Prometheus reads as a counter reset: `rate()` and
`increase()` lie. So what a dead worker had counted (`cumulative_samples` of its last scrape:
counters and histogram buckets, sums and counts, never gauges) is kept as a `retained`
baseline, added to every merge from then on. Its gauges vanish with it, as they should.

Pure: text in, text out. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

_GAUGE_RULES = {
    "m2mgate_requests_in_flight": "sum",
    "m2mgate_token_cache_entries": "sum",
    "m2mgate_token_cache_bytes": "sum",
    "m2mgate_jwks_ready": "min",
    "m2mgate_jwks_keys": "min",
    "m2mgate_config_last_reload_successful": "min",
    "m2mgate_config_last_reload_success_timestamp_seconds": "min",
    "m2mgate_jwks_stale": "max",
    "m2mgate_jwks_age_seconds": "max",
    "m2mgate_build_info": "max",
}
_COMBINE: dict[str, Callable[[list[float]], float]] = {"sum": sum, "min": min, "max": max}


def gauge_rule(name: str) -> str:
    """How a gauge family is merged; an unknown gauge (a future one) sums, like counters."""
    return _GAUGE_RULES.get(name, "sum")


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels
CUMULATIVE_TYPES = frozenset({"counter", "histogram"})  # values that only ever grow


@dataclass(frozen=True, slots=True)
class Cumulative:
    """Counter and histogram samples (summed over any number of expositions), each family
    with the header it is exposed under. Immutable: `plus` returns a new one."""

    headers: Mapping[str, Metric] = field(default_factory=dict)  # name -> empty family
    values: Mapping[str, Mapping[SeriesKey, float]] = field(default_factory=dict)

    def plus(self, other: Cumulative) -> Cumulative:
        headers = {**other.headers, **self.headers}
        values: dict[str, dict[SeriesKey, float]] = {
            name: dict(series) for name, series in self.values.items()
        }
        for name, series in other.values.items():
            if name in self.headers and self.headers[name].type != other.headers[name].type:
                continue  # two workers disagree on a type: keep the first's (never happens)
            into = values.setdefault(name, {})
            for key, value in series.items():
                into[key] = into.get(key, 0.0) + value
        return Cumulative(headers, values)


NOTHING_RETAINED = Cumulative()


def cumulative_samples(text: str) -> Cumulative:
    """The counters and histograms of one exposition: what outlives the worker that wrote it."""
    headers: dict[str, Metric] = {}
    values: dict[str, dict[SeriesKey, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in CUMULATIVE_TYPES or family.name in headers:
            continue
        headers[family.name] = _empty_like(family)
        values[family.name] = {_key(sample): sample.value for sample in family.samples}
    return Cumulative(headers, values)


def merge_expositions(
    texts: Sequence[str],
    extra: Iterable[Metric] = (),
    retained: Cumulative = NOTHING_RETAINED,
) -> bytes:
    """The workers' texts as one Prometheus exposition, plus the counters `retained` from
    workers no longer running, plus `extra` families (the supervisor's own)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[SeriesKey, list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            known = families.setdefault(family.name, _empty_like(family))
            series = values.setdefault(family.name, {})
            if known.type != family.type:
                continue  # two workers disagree on a type: keep the first's (never happens)
            for sample in family.samples:
                series.setdefault(_key(sample), []).append(sample.value)
    for name, header in retained.headers.items():
        known = families.setdefault(name, _empty_like(header))
        if known.type != header.type:
            continue
        series = values.setdefault(name, {})
        for key, value in retained.values[name].items():
            series.setdefault(key, []).append(value)
    merged: list[Metric] = []
    for name, family in families.items():
        combine = _COMBINE[gauge_rule(name) if family.type == "gauge" else "sum"]
        for (sample_name, labels), found in values[name].items():
            family.samples.append(Sample(sample_name, dict(labels), float(combine(found))))
        merged.append(family)
    merged.extend(extra)
    registry = CollectorRegistry()
    registry.register(_Fixed(merged))
    return generate_latest(registry)


def _key(sample: Sample) -> SeriesKey:
    return sample.name, tuple(sorted(sample.labels.items()))


def _empty_like(family: Metric) -> Metric:
    return Metric(family.name, family.documentation, family.type, family.unit)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
