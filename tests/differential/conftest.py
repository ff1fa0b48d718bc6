"""One gateway pair and one recording upstream for the whole differential package: every
example and every regression reuses them (starting them costs more than a hundred exchanges)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.harness import DifferentialTarget


@pytest.fixture(scope="package")
def target() -> Iterator[DifferentialTarget]:
    running = DifferentialTarget()
    running.start()
    yield running
    running.stop()
