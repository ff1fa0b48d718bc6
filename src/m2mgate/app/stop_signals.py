"""SIGTERM and SIGINT: how an operator (or Kubernetes, or Ctrl-C) stops a process.

One helper for every serving command: `run` (one gateway, or one worker), the `--workers`
supervisor, `demo` and `issuer` all install their stop handling here.
- `on_stop_signals(callback)`: call it on each SIGTERM/SIGINT.
- `StopRequest`: the first signal asks to stop (`requested`); each later one asks to hurry
  (`repeated`: skip the rest of the shutdown delay), and may be passed on (`on_repeat`).
- `run_until_stop_signal(serve)`: run a coroutine until a signal cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)


class StopRequest:
    def __init__(self, on_repeat: Callable[[], None] | None = None) -> None:
        self.requested = asyncio.Event()
        self.repeated = asyncio.Event()
        self._on_repeat = on_repeat

    def install(self) -> StopRequest:
        on_stop_signals(self._received)
        return self

    def _received(self) -> None:
        if not self.requested.is_set():
            self.requested.set()
            return
        self.repeated.set()
        if self._on_repeat is not None:
            self._on_repeat()


def run_until_stop_signal(serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """`asyncio.run(serve())`, cancelled by SIGTERM/SIGINT (its `finally` cleans up)."""

    async def main() -> None:
        task = asyncio.ensure_future(serve())
        on_stop_signals(task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
