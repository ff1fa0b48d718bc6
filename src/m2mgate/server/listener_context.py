"""What a client connection may know of its listener, and nothing more: the limits, the clock,
the events to report, whether the listener drains, and where a request's handler runs.

The listener (http1_server.py) makes one context and hands it to each connection it accepts;
a connection never holds the listener itself (uvicorn's protocols get a config and a server
state in the same spirit). The context also keeps the connections and handler tasks, so the
listener's sweep and drain can reach them.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from m2mgate.server.exchange import Handler
from m2mgate.server.limits import ConnectionLimits


@dataclass(frozen=True, slots=True)
class ServerEvents:
    """What the listener reports: refused requests, slow clients, refused connections."""

    http_error: Callable[[int, str, str], None]  # status, error class name, request id
    slow_client: Callable[[], None]
    connection_refused: Callable[[], None]


class Deadline(enum.Enum):
    """Which clock a connection runs against; only a late head counts as a slow client."""

    HEAD = "head"  # a request head must be complete within head_timeout_seconds (slowloris)
    IDLE = "idle"  # between requests: keepalive_timeout_seconds
    DISCARD = "discard"  # the rest of an unread body being dropped: head_timeout_seconds


class TrackedConnection(Protocol):
    """What the listener's sweep and drain need of a connection."""

    deadline: float | None

    @property
    def is_busy(self) -> bool: ...

    def expire(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ListenerContext:
    """Shared by every connection of one listener."""

    __slots__ = ("_loop", "connections", "draining", "events", "handler", "limits", "tasks")

    def __init__(
        self,
        handler: Handler,
        limits: ConnectionLimits,
        events: ServerEvents,
    ) -> None:
        self.handler = handler  # called with each request's head, body and response
        self.limits = limits
        self.events = events
        self.draining = False
        self.connections: set[TrackedConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    def opened(self, conn: TrackedConnection) -> bool:
        """Register a new connection; False when it must be refused (over the cap, draining)."""
        if len(self.connections) >= self.limits.max_connections or self.draining:
            self.events.connection_refused()
            return False
        self.connections.add(conn)
        return True

    def closed(self, conn: TrackedConnection) -> None:
        self.connections.discard(conn)

    def spawn(self, request: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a request's handling as a task the drain waits for."""
        task = asyncio.get_running_loop().create_task(request)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
