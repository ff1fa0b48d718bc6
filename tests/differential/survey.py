"""A survey of the differential harness: N random streams, every finding tallied by rule, and the
shortest stream that tripped each rule (no shrinking, no stopping at the first failure). For
reading the state of the gateway rule by rule, e.g. while fixing it:

    PYTHONPATH=src python -m tests.differential.survey --examples 500
"""

from __future__ import annotations

import argparse
import collections
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.differential.harness import DifferentialTarget
from tests.differential.oracle import Exchange, describe, judge
from tests.differential.streams import streams


def survey(examples: int, seed: int | None) -> int:
    target = DifferentialTarget()
    target.start()
    counts: collections.Counter[str] = collections.Counter()
    smallest: dict[str, tuple[int, str]] = {}
    started = time.monotonic()
    try:

        @settings(
            max_examples=examples,
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=seed is not None,
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            stream = data.draw(streams(target.credentials))
            observation = target.exchange(stream.variant, list(stream.chunks), stream.pause_seconds)
            exchange = Exchange(observation, target.credentials, target.upstream_authority)
            findings = judge(exchange)
            for name in {finding.rule for finding in findings}:
                counts[name] += 1
                size = len(stream.data)
                if name not in smallest or size < smallest[name][0]:
                    only = [f for f in findings if f.rule == name]
                    smallest[name] = (size, describe(exchange, only))

        run()
    finally:
        target.stop()
    seconds = time.monotonic() - started
    print(f"survey: {target.exchanges} exchanges in {seconds:.0f}s; findings by rule:")
    for name, count in counts.most_common():
        print(f"  {name}: {count}")
    for name, (_, text) in sorted(smallest.items()):
        print(f"\n=== {name} (shortest stream) ===\n{text}")
    return 1 if counts else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None, help="derandomize (reproducible)")
    arguments = parser.parse_args()
    raise SystemExit(survey(arguments.examples, arguments.seed))


if __name__ == "__main__":
    main()
