"""The answering side of a client connection: its requests are answered one at a time, in
order (a pipelined one waits with reading paused), and after each response this decides whether
the connection stays (keep-alive, an unread body drained within a bound, a client still waiting
for `100 Continue`), and which deadline it then runs against.

The parsing side (http1_connection.py) is built on top of it and hands it each Http1Request it
completes; nothing here reads bytes or knows llhttp, and nothing here calls up into the parsing
side (the same layering as client_transport.py, which this builds on).
"""

from __future__ import annotations

import asyncio
import collections

from m2mgate.server.client_transport import ClientTransport
from m2mgate.server.http1_request import Http1Request
from m2mgate.server.listener_context import Deadline, ListenerContext

# Enum members read per request are bound to module names: on CPython 3.11 a member read
# through its class costs about four times a global (85 ns against 20, measured).
_DEADLINE_DISCARD = Deadline.DISCARD
_DEADLINE_HEAD = Deadline.HEAD
_DEADLINE_IDLE = Deadline.IDLE

MAX_DISCARDED_BYTES = 1024 * 1024  # an unread request body drained to keep the connection


class RequestAnswering(ClientTransport):
    """One request handled at a time; what happens to the connection after each response."""

    def __init__(self, context: ListenerContext) -> None:
        super().__init__()
        self._context = context
        self._limits = context.limits
        self.send_timeout_seconds = context.limits.send_timeout_seconds
        self.must_close = False  # the response being written ends the connection
        self.deadline: float | None = None
        self.deadline_kind = _DEADLINE_HEAD  # a head deadline counts as a slow client
        self._active: Http1Request | None = None  # the request being answered
        self._task: asyncio.Task[None] | None = None  # its handler
        self._queue: collections.deque[Http1Request] = collections.deque()
        self._discarding = 0  # bytes of an unread body dropped after its response

    def _begin(self, cycle: Http1Request) -> None:
        self._active = cycle
        self._task = self._context.spawn(self._run(cycle))

    async def _run(self, cycle: Http1Request) -> None:
        try:
            await self._context.handler(cycle.head, cycle, cycle.response)
        finally:
            self.cycle_done(cycle)

    def cycle_done(self, cycle: Http1Request) -> None:
        """The handler of `cycle` returned (its response written, or the connection cut)."""
        self._active = self._task = None
        if self.closed:
            return
        if not cycle.response.finished:
            # The handler never completed its response: nothing can be trusted.
            cycle.response.abort()
            return
        if not self.keeps(cycle):
            self.close()
            return
        # Whatever body the handler left unread is dropped; reading resumes if it had paused.
        dropped = cycle.discard_body()
        if not cycle.body_complete:
            if not cycle.body_expected:
                self.close()  # it waits for a 100 Continue: its body may or may not follow
                return
            # Read and drop the rest of the body (bounded), so the connection stays usable.
            if self._discard(dropped):
                return
        if self._queue:
            self._begin(self._queue.popleft())
            if not self._queue:
                self._resume_reading()
        elif cycle.body_complete:
            self._idle()

    def _idle(self) -> None:
        self.deadline = self._context.now() + self._limits.keepalive_timeout_seconds
        self.deadline_kind = _DEADLINE_IDLE
        if self._context.draining:
            self.close()

    def _discard(self, size: int) -> bool:
        """Count dropped body bytes; True when too many (the connection is closed)."""
        self._discarding += size
        if self._discarding > MAX_DISCARDED_BYTES:
            self.close()
            return True
        self._resume_reading()
        if self.deadline is None:
            self.deadline = self._context.now() + self._limits.head_timeout_seconds
            self.deadline_kind = _DEADLINE_DISCARD
        return False

    @property
    def is_busy(self) -> bool:
        return self._active is not None

    def keeps_current(self) -> bool:
        """Does the connection stay open after the response being written (the active
        request's: only its handler writes)?"""
        active = self._active
        return active is not None and self.keeps(active)

    def keeps(self, cycle: Http1Request) -> bool:
        """Does the connection stay open after this response? Not when the client still waits
        for a 100 Continue it will never get: whether its body follows is anyone's guess."""
        return (
            cycle.keep_alive
            and not self.must_close
            and not self._context.draining
            and (cycle.body_complete or cycle.body_expected)
        )

    # --- the body's read pausing (its back-pressure) ------------------------------------------

    def pause_reading(self) -> None:
        self._pause_reading()

    def resume_reading(self) -> None:
        if not self._queue:
            self._resume_reading()  # pipelined requests wait with reading paused

    def expire(self) -> None:
        """The sweep found this connection past its deadline."""
        self.deadline = None
        if self.deadline_kind is _DEADLINE_HEAD and self._active is None:
            self._context.events.slow_client()
        self.close()
