"""One request on an HTTP/1.1 client connection: its head (a value), its body as a stream with
back-pressure (HTTP/1.1's RequestBody, exchange.py), and its response (http1_response.py).
The connection (http1_connection.py) feeds the body and answers its requests in order.

The request body ends one of three ways (`BodyState`): complete, refused by the listener (a bad
chunk: `read_body` raises BodyRefused, so nobody can mistake a refused body for a whole one and
finish an upstream request with it), or lost with the connection (ConnectionResetError).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Any, Protocol

from m2mgate.errors import BodyRefused
from m2mgate.flow_control import wake, woken_in_time
from m2mgate.server.exchange import RequestHead
from m2mgate.server.http1_response import Http1Response

_PAUSE_ABOVE = 256 * 1024  # buffered request body bytes before reading from the client pauses


class BodyConnection(Protocol):
    """What a request body uses of its connection (http1_connection.py implements it)."""

    closed: bool

    def write(self, data: bytes) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class BodyState(enum.Enum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    REFUSED = "refused"  # the listener answered for a malformed body; nothing of it may pass


# Enum members read per request are bound to module names: on CPython 3.11 a member read
# through its class costs about four times a global (85 ns against 20, measured).
_BODY_COMPLETE = BodyState.COMPLETE
_BODY_RECEIVING = BodyState.RECEIVING
_BODY_REFUSED = BodyState.REFUSED


class Http1Request:
    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_continue_sent",
        "_paused",
        "_state",
        "_waiter",
        "head",
        "keep_alive",
        "refusal",
        "response",
    )  # fmt: skip

    def __init__(
        self, conn: BodyConnection, head: RequestHead, response: Http1Response, keep_alive: bool
    ) -> None:
        self._conn = conn
        self.head = head
        self.response = response
        self.keep_alive = keep_alive  # llhttp's reading: more requests may follow this one
        self.refusal: str | None = None  # why the listener refused the body (parser error)
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._state = _BODY_RECEIVING
        self._paused = False
        self._waiter: asyncio.Future[Any] | None = None
        self._continue_sent = False

    # --- fed by the connection ----------------------------------------------------------------

    @property
    def body_complete(self) -> bool:
        return self._state is _BODY_COMPLETE

    def feed_body(self, data: bytes) -> None:
        if self.head.expect_continue and not self._continue_sent:
            # The client sent its body without waiting: no `100 Continue` is due any more
            # (RFC 9110 §10.1.1 lets a server omit it). One arriving after the body is a
            # response nobody asked for, a known desync gadget for a proxy in front.
            self._continue_sent = True
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_ABOVE and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def end_body(self) -> None:
        if self._state is _BODY_RECEIVING:
            self._state = _BODY_COMPLETE
        self._wake()

    def connection_lost(self) -> None:
        self._wake()

    def discard_body(self) -> int:
        """Drop what is buffered (the handler is done with the request); bytes dropped."""
        dropped = self._buffered
        self._chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self._conn.resume_reading()
        return dropped

    def refuse(self, status: int, error: str) -> None:
        """The listener answered for this request: its body could not be parsed (`error` is
        the parser error's class name). Whoever reads the body from now on gets BodyRefused;
        what was buffered is dropped."""
        self.response.refused(status)
        self.refusal = error
        self._state = _BODY_REFUSED
        self._chunks.clear()
        self._buffered = 0
        self._wake()

    def _wake(self) -> None:
        wake(self._waiter)

    @property
    def body_expected(self) -> bool:
        """Will the client send (the rest of) its body? Not when it waits for a 100 Continue
        that was never sent (RFC 9110 §10.1.1)."""
        return self._state is _BODY_RECEIVING and (
            not self.head.expect_continue or self._continue_sent
        )

    # --- read by the handler (RequestBody) ----------------------------------------------------

    def send_continue(self) -> None:
        """RFC 9110 §10.1.1: `100 Continue`, sent only once the request is authorized, so an
        unauthorized client never uploads its body."""
        if self.head.expect_continue and not self._continue_sent and not self.response.head_sent:
            self._continue_sent = True
            self._conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def read_body(self, idle_seconds: float) -> bytes:
        """The next body bytes as they arrived (one chunk, never a joined copy); b"" at the
        end. TimeoutError when the client sends nothing for `idle_seconds`;
        ConnectionResetError when it has left; BodyRefused when the listener refused the body
        (what was buffered of it is never handed out)."""
        while not self._chunks or self._state is _BODY_REFUSED:
            if self._state is _BODY_REFUSED:
                raise BodyRefused(f"the request body is malformed ({self.refusal})")
            if self._state is _BODY_COMPLETE:
                return b""
            if self._conn.closed:
                raise ConnectionResetError("the client closed the connection")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                in_time = await woken_in_time(waiter, idle_seconds)
            finally:
                self._waiter = None
            if not in_time and not self._chunks and self._state is _BODY_RECEIVING:
                raise TimeoutError
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered <= _PAUSE_ABOVE:
            self._paused = False
            self._conn.resume_reading()
        return data
