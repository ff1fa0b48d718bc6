"""What the `--workers` supervisor knows of its workers' metrics, and the one /metrics it serves.

The supervisor scrapes every worker in the background, about once a second, and keeps each
slot's latest text. /metrics merges those (no scrape of its own), so every value it serves is
one this book holds, and counters never go backwards:

- **a worker that dies**: its last scrape's counters and histograms join the `retained`
  baseline, added to every merge from then on (its gauges vanish). What it counted after that
  scrape, at most one scrape interval's worth, is lost: the bound is the interval.
- **a scrape that fails** (a worker busy or wedged): its last counters still count; its
  gauges are left out until a scrape succeeds again, rather than served stale.

Why not prometheus-client's multiprocess mode: it takes a lock and writes an mmap file on every
increment on the request path, and it needs a writable directory (the manifests run with a
read-only root). Here the request path stays as it is; the cost is the bounded loss above.

No I/O here: the supervisor feeds it scrapes and deaths (app/supervisor.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

from m2mgate.observability.metrics_merge import (
    NOTHING_RETAINED,
    Cumulative,
    cumulative_samples,
    merge_expositions,
)


class WorkerMetrics:
    def __init__(self, slots: int) -> None:
        self._texts: list[str | None] = [None] * slots  # the latest successful scrape
        self._is_current: list[bool] = [False] * slots  # did the latest scrape succeed?
        self._retained = NOTHING_RETAINED

    def scraped(self, slot: int, text: str | None) -> None:
        """A scrape of the slot's running worker: its text, or None when it failed."""
        if text is None:
            self._is_current[slot] = False
            return
        self._texts[slot] = text
        self._is_current[slot] = True

    def retire(self, slot: int) -> None:
        """The slot's process has exited: keep what it counted, forget its gauges. Call once
        per process, before the slot's next process is scraped."""
        text = self._texts[slot]
        if text is not None:
            self._retained = self._retained.plus(cumulative_samples(text))
        self._texts[slot] = None
        self._is_current[slot] = False

    @property
    def retained(self) -> Cumulative:
        return self._retained

    def exposition(self, extra: Iterable[Metric] = ()) -> bytes:
        current: list[str] = []
        baseline = self._retained
        for text, is_current in zip(self._texts, self._is_current, strict=True):
            if text is None:
                continue
            if is_current:
                current.append(text)
            else:  # counted, but its gauges are not known now
                baseline = baseline.plus(cumulative_samples(text))
        return merge_expositions(current, extra=extra, retained=baseline)
