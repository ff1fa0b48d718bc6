"""Waiting for a condition with a hard bound, instead of sleeping a guessed amount."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], within_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + within_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_seconds}s")
        await asyncio.sleep(0.005)
