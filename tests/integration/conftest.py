"""Fixtures for the hop-agreement tests: a gateway in front of the h11 recording upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.support.recording_upstream import RecordingUpstream


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    upstream = RecordingUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
def through(make_gateway: GatewayFactory, recorder: RecordingUpstream) -> Callable[..., Any]:
    """through(configure=None) -> a gateway whose upstream is the h11 recorder."""

    async def make(configure: Callable[[dict[str, Any]], None] | None = None) -> RunningGateway:
        def point(config: dict[str, Any]) -> None:
            config["upstream"]["url"] = recorder.url
            if configure is not None:
                configure(config)

        return await make_gateway(point)

    return make
