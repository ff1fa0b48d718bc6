"""Waiting on a transport, shared by both sides of the proxy: the client listener
(server/http1_connection.py, server/http1_request.py) and the upstream pool
(proxy/upstream_connection.py, proxy/upstream_exchange.py). A writer waits for its transport
to drain; a reader waits for data with a deadline. No I/O of its own: the protocols call
these from their callbacks."""

from __future__ import annotations

import asyncio
from typing import Any

_TIMED_OUT: Any = object()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


def wake(waiter: asyncio.Future[Any] | None) -> None:
    """Resolve a waiter (data arrived, the peer left), if anyone waits and it is not done."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def woken_in_time(waiter: asyncio.Future[Any], seconds: float) -> bool:
    """Wait until `wake(waiter)`, at most `seconds`: False when the time ran out first. One
    timer callback, not asyncio.timeout(): this runs once or twice per request."""
    timer = asyncio.get_running_loop().call_later(seconds, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
    return waiter.result() is not _TIMED_OUT


class WriteFlow(asyncio.Protocol):
    """A protocol's write side: asyncio pauses and resumes it as the transport's buffer
    fills and empties; `drain()` waits until it may write again. `closed` is set by the
    protocol; `closed_error()` says what a writer meets once it is."""

    __slots__ = ("_drain_waiter", "_write_paused", "closed")

    def __init__(self) -> None:
        self.closed = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    def closed_error(self) -> Exception:
        raise NotImplementedError

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self.release_drain()

    def release_drain(self) -> None:
        """Wake a writer waiting in drain() (writing resumed, or the connection was lost)."""
        wake(self._drain_waiter)
        self._drain_waiter = None

    async def drain(self, timeout_seconds: float | None = None) -> None:
        """Wait until the transport may be written again; TimeoutError when the peer has read
        nothing for `timeout_seconds` (None: no bound)."""
        if self.closed:
            raise self.closed_error()
        if self._write_paused:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
            if timeout_seconds is None:
                await waiter
            elif not await woken_in_time(waiter, timeout_seconds):
                self._drain_waiter = None
                raise TimeoutError
            if self.closed:
                raise self.closed_error()
