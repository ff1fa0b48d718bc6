"""One /metrics for N worker processes: their Prometheus texts merged into one exposition.

`run --workers N` scrapes every worker's own (loopback-only) /metrics and serves the merge, so
a scraper sees one gateway whatever N is: the same names, the same labels.

- counters and histograms: summed per series (requests, decisions, buckets, sums, counts);
- gauges, per meaning:
  - `sum`: things each worker holds its own share of (requests in flight, cached tokens);
  - `min`: "is every worker fine?" flags (keys ready, last reload applied) and counts where
    the weakest worker is what matters (usable keys; the oldest successful reload time);
  - `max`: "is any worker in trouble?" (keys stale, key set age) and constants (build info).

Pure: text in, text out. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

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


def merge_expositions(texts: Sequence[str], extra: Iterable[Metric] = ()) -> bytes:
    """The workers' texts as one Prometheus exposition, plus `extra` families (the
    supervisor's own)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            known = families.setdefault(family.name, _empty_like(family))
            series = values.setdefault(family.name, {})
            if known.type != family.type:
                continue  # two workers disagree on a type: keep the first's (never happens)
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                series.setdefault(key, []).append(sample.value)
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


def _empty_like(family: Metric) -> Metric:
    return Metric(family.name, family.documentation, family.type, family.unit)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
