"""The supervisor's book of its workers' metrics: counters survive a worker's death."""

from prometheus_client.core import GaugeMetricFamily

from m2mgate.server.worker_metrics import WorkerMetrics
from tests.integration.test_key_lifecycle import metric
from tests.unit.observability.test_metrics_merge import exposition


def requests(book: WorkerMetrics) -> float:
    return metric(book.exposition().decode(), "m2mgate_requests_total", route="user")


def test_counters_never_go_backwards_across_a_death_and_a_restart():
    book = WorkerMetrics(2)
    book.scraped(0, exposition(3, 1, 1, 1.0))
    book.scraped(1, exposition(4, 1, 1, 1.0))
    served = [requests(book)]
    book.retire(0)  # worker 0 died: its 3 are kept
    served.append(requests(book))
    book.scraped(0, exposition(0, 0, 1, 1.0))  # its replacement, from zero
    served.append(requests(book))
    book.scraped(0, exposition(2, 0, 1, 1.0))
    served.append(requests(book))
    book.retire(1)  # and the other one, later
    served.append(requests(book))
    assert served == [7, 7, 7, 9, 9]
    text = book.exposition().decode()
    assert metric(text, "m2mgate_request_duration_seconds_count", route="user") == 9
    assert metric(text, "m2mgate_requests_in_flight") == 0  # only the running worker's gauge


def test_a_failed_scrape_keeps_the_counters_and_drops_the_gauges():
    book = WorkerMetrics(2)
    book.scraped(0, exposition(3, 5, 1, 1.0))
    book.scraped(1, exposition(4, 2, 1, 1.0))
    book.scraped(1, None)  # worker 1 did not answer this time
    text = book.exposition().decode()
    assert metric(text, "m2mgate_requests_total", route="user") == 7
    assert metric(text, "m2mgate_requests_in_flight") == 5  # worker 0's only
    book.scraped(1, exposition(6, 2, 1, 1.0))
    assert requests(book) == 9


def test_the_supervisors_own_families_are_added():
    book = WorkerMetrics(1)
    running = GaugeMetricFamily("m2mgate_workers", "Worker processes running now.")
    running.add_metric([], 1)
    assert metric(book.exposition(extra=[running]).decode(), "m2mgate_workers") == 1
