"""One request on a client connection and the response to it: HTTP/1.1's implementation of
the protocol-neutral exchange (exchange.py), made by http1_connection.py and used by the
handler and the relay.

The request side is what the parser saw: method, the raw request-target, the header fields in
order, and the body as a stream (`read_body`). The response side writes HTTP/1.1 straight to
the transport: `respond` for a whole response in one write, or `start` / `write` / `finish` to
stream one. Framing is decided here, once, from what the response declares:

- a HEAD request, 1xx, 204 and 304 carry no body (RFC 9110 §6.4.1); their headers go as given;
- a body of known length keeps its `Content-Length` and is written as is;
- a body of unknown length is chunked for HTTP/1.1 clients, and delimited by closing the
  connection for HTTP/1.0 ones (RFC 9112 §6.3).
A streamed body that ends short of its declared length (the upstream failed) is never made to
look complete: `abort` cuts the connection.

Every response says `HTTP/1.1`, whatever version the request named (RFC 9112 §2.3: a server
answers with the highest version it conforms to whose major is not above the request's); the
framing still follows the request's version (no chunked coding to an HTTP/1.0 client).

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
from m2mgate.server.response_head import encode_head, http_date

Headers = list[tuple[str, str]]


class ClientConnection(Protocol):
    """What a request cycle uses of its connection (http1_connection.py implements it): the
    transport's writes and flow control, and whether the connection outlives a response."""

    remote: str | None
    closed: bool
    must_close: bool  # the response being written ends the connection
    send_timeout_seconds: float

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: tuple[bytes, ...]) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    async def drain(self, timeout_seconds: float | None = None) -> None: ...

    def abort(self) -> None: ...

    def keeps(self, cycle: RequestCycle) -> bool: ...


_NO_BODY = frozenset({204, 304})
_PAUSE_ABOVE = 256 * 1024  # buffered request body bytes before reading from the client pauses


class BodyState(enum.Enum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    REFUSED = "refused"  # the listener answered for a malformed body; nothing of it may pass


class RequestCycle:
    __slots__ = (
        "_body",
        "_buffered",
        "_chunked",
        "_chunks",
        "_conn",
        "_continue_sent",
        "_left",
        "_paused",
        "_waiter",
        "authorization",
        "content_length",
        "expect_continue",
        "finished",
        "has_body",
        "head_sent",
        "headers",
        "host",
        "keep_alive",
        "method",
        "refusal",
        "remote",
        "request_id",
        "request_ids",
        "scheme",
        "status",
        "target",
        "version",
    )  # fmt: skip

    def __init__(
        self,
        conn: ClientConnection,
        method: str,
        target: str,
        version: str,
        headers: Headers,
        keep_alive: bool,
    ) -> None:
        self._conn = conn
        self.method = method
        self.target = target  # the exact bytes the client sent (path and query), latin-1
        self.version = version
        self.headers = headers  # (name, value) in order, latin-1: the client's exact bytes
        self.keep_alive = keep_alive
        self.remote = conn.remote
        self.scheme = "http"
        # Filled by the connection while it reads the head:
        self.authorization: list[str] = []
        self.request_ids: list[str] = []
        self.host: str | None = None
        self.expect_continue = False
        self.content_length: int | None = None
        self.has_body = False
        # Body, fed by the connection:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._body = BodyState.RECEIVING
        self._paused = False
        self._waiter: asyncio.Future[Any] | None = None
        self._continue_sent = False
        # Response:
        self.status = 0
        self.request_id: str | None = None  # set by the handler when it starts
        self.refusal: str | None = None  # why the listener refused the body (parser error)
        self.head_sent = False
        self.finished = False
        self._chunked = False
        self._left: int | None = None  # bytes still owed under a declared Content-Length

    # --- the request body ---------------------------------------------------------------------

    @property
    def body_complete(self) -> bool:
        return self._body is BodyState.COMPLETE

    def feed_body(self, data: bytes) -> None:
        if self.expect_continue and not self._continue_sent:
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
        if self._body is BodyState.RECEIVING:
            self._body = BodyState.COMPLETE
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

    def _wake(self) -> None:
        wake(self._waiter)

    def send_continue(self) -> None:
        """RFC 9110 §10.1.1: `100 Continue`, sent only once the request is authorized, so an
        unauthorized client never uploads its body."""
        if self.expect_continue and not self._continue_sent and not self.head_sent:
            self._continue_sent = True
            self._conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    @property
    def body_expected(self) -> bool:
        """Will the client send (the rest of) its body? Not when it waits for a 100 Continue
        that was never sent (RFC 9110 §10.1.1)."""
        return self._body is BodyState.RECEIVING and (
            not self.expect_continue or self._continue_sent
        )

    async def read_body(self, idle_seconds: float) -> bytes:
        """The next body bytes as they arrived (one chunk, never a joined copy); b"" at the
        end. TimeoutError when the client sends nothing for `idle_seconds`;
        ConnectionResetError when it has left; BodyRefused when the listener refused the body
        (what was buffered of it is never handed out)."""
        while not self._chunks or self._body is BodyState.REFUSED:
            if self._body is BodyState.REFUSED:
                raise BodyRefused(f"the request body is malformed ({self.refusal})")
            if self._body is BodyState.COMPLETE:
                return b""
            if self._conn.closed:
                raise ConnectionResetError("the client closed the connection")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                in_time = await woken_in_time(waiter, idle_seconds)
            finally:
                self._waiter = None
            if not in_time and not self._chunks and self._body is BodyState.RECEIVING:
                raise TimeoutError
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered <= _PAUSE_ABOVE:
            self._paused = False
            self._conn.resume_reading()
        return data

    # --- the response -------------------------------------------------------------------------

    def respond(self, status: int, headers: Headers, body: bytes, *, add_date: bool = True) -> None:
        """A whole response in one write. `headers` must not carry Content-Length or framing
        fields: the length is the body's."""
        self.status = status
        framing = [f"Date: {http_date()}\r\n"] if add_date else []
        if status not in _NO_BODY and status >= 200:
            framing.append(f"Content-Length: {len(body)}\r\n")
        framing.append(self._connection_field())
        data = encode_head(status, headers, framing)
        if body and self.method != "HEAD" and status not in _NO_BODY:
            data += body
        self.head_sent = self.finished = True
        self._conn.write(data)

    def start(self, status: int, headers: Headers, content_length: int | None) -> None:
        """The head of a streamed response. `headers` carry no Content-Length: the declared
        length, if any, is `content_length` (for HEAD, the length a GET would have)."""
        self.status = status
        self.head_sent = True
        framing = []
        if content_length is not None and status >= 200 and status != 204:
            framing.append(f"Content-Length: {content_length}\r\n")
        has_body = self.method != "HEAD" and status not in _NO_BODY and status >= 200
        if has_body and content_length is not None:
            self._left = content_length
        elif has_body and self.version == "1.1":
            self._chunked = True
            framing.append("Transfer-Encoding: chunked\r\n")
        elif has_body:
            self._conn.must_close = True  # HTTP/1.0, length unknown: the close ends the body
        if not has_body:
            self._left = 0
        framing.append(self._connection_field())
        self._conn.write(encode_head(status, headers, framing))

    def _connection_field(self) -> str:
        """`Connection: close` when the connection ends after this response; `keep-alive`
        for an HTTP/1.0 client whose connection stays (1.1 persists by default)."""
        if not self._conn.keeps(self):
            return "Connection: close\r\n"
        return "Connection: keep-alive\r\n" if self.version == "1.0" else ""

    def write(self, data: bytes) -> None:
        if self._conn.closed:
            raise ConnectionResetError("the client closed the connection")
        if not data or (self._left == 0 and not self._chunked):
            return
        if self._chunked:
            self._conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))  # no copy of data
            return
        if self._left is not None:
            if len(data) > self._left:
                data = data[: self._left]  # never more than declared (framing)
            self._left -= len(data)
        self._conn.write(data)

    async def drain(self) -> None:
        """Wait until the client can take more. TimeoutError when it has read nothing for
        `limits.send_timeout_seconds`. Threat (#8 review): a client that stops reading a large
        response held its upstream connection (a pool slot) forever; enough of them starved
        every other request."""
        await self._conn.drain(self._conn.send_timeout_seconds)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        elif self._left:
            self.abort()  # short of the declared length: a truncated body must not pass

    def refuse(self, status: int, error: str) -> None:
        """The listener answered for this request: its body could not be parsed (`error` is
        the parser error's class name). Whoever reads the body from now on gets BodyRefused;
        what was buffered is dropped."""
        self.status = status
        self.refusal = error
        self.head_sent = self.finished = True
        self._body = BodyState.REFUSED
        self._chunks.clear()
        self._buffered = 0
        self._wake()

    def abort(self) -> None:
        """Cut the connection (a response that cannot be completed honestly)."""
        self.finished = True
        self._conn.abort()
