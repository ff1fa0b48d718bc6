"""The benchmark harness's own arithmetic (bench/bench.py): a wrong parse would publish wrong
numbers, so it is tested like product code (the harness itself runs only under bench/run)."""

from __future__ import annotations

import pytest
from bench.bench import latency, summarize

WRK = """Running 10s test @ http://127.0.0.1:1234/api/user/x
  1 threads and 64 connections
  Latency Distribution
     50%  812.00us
     75%    4.85ms
     90%    9.02ms
     99%    1.20s
  126975 requests in 10.00s, 20.1MB read
Requests/sec:  12697.50
"""


@pytest.mark.parametrize(
    ("percentile", "ms"), [("50%", 0.812), ("75%", 4.85), ("90%", 9.02), ("99%", 1200.0)]
)
def test_latency_units_are_normalised_to_milliseconds(percentile, ms):
    assert latency(WRK, percentile) == pytest.approx(ms)


def test_a_missing_percentile_is_nan_not_zero():
    assert latency("no distribution here", "99%") != latency("no distribution here", "99%")


def test_ratios_and_spread():
    def run(rps: float) -> dict[str, float]:
        return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us_per_request": 10.0}

    samples = {
        ("small", "direct"): [run(100.0), run(300.0)],
        ("small", "envoy"): [run(50.0), run(50.0)],
        ("small", "m2mgate"): [run(20.0), run(30.0)],
    }
    rows = {
        row["target"]: row for row in summarize(samples, ["small"], ["direct", "envoy", "m2mgate"])
    }
    assert rows["direct"]["rps"] == 200.0 and (
        rows["direct"]["rps_min"],
        rows["direct"]["rps_max"],
    ) == (100.0, 300.0)
    assert rows["m2mgate"]["vs_envoy"] == pytest.approx(0.5)
    assert rows["m2mgate"]["vs_direct"] == pytest.approx(0.125)
    assert rows["envoy"]["vs_envoy"] == 1.0
