"""The response to one HTTP/1.1 request, written straight to the transport: HTTP/1.1's
response sink (exchange.py). `respond` writes a whole response in one write; `start` /
`write` / `finish` stream one. Framing is decided here, once, from what the response declares:

- a HEAD request, 1xx, 204 and 304 carry no body (RFC 9110 §6.4.1); their headers go as given;
- a body of known length keeps its `Content-Length` and is written as is;
- a body of unknown length is chunked for HTTP/1.1 clients, and delimited by closing the
  connection for HTTP/1.0 ones (RFC 9112 §6.3).
A streamed body that ends short of its declared length (the upstream failed) is never made to
look complete: `abort` cuts the connection.

Every response says `HTTP/1.1`, whatever version the request named (RFC 9112 §2.3: a server
answers with the highest version it conforms to whose major is not above the request's); the
framing still follows the request's version (no chunked coding to an HTTP/1.0 client).
"""

from __future__ import annotations

from typing import Protocol

from m2mgate.server.response_head import Headers, encode_head, http_date

_NO_BODY = frozenset({204, 304})


class ResponseConnection(Protocol):
    """What a response uses of its connection (http1_connection.py implements it)."""

    closed: bool
    must_close: bool  # the response being written ends the connection
    send_timeout_seconds: float

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: tuple[bytes, ...]) -> None: ...

    async def drain(self, timeout_seconds: float | None = None) -> None: ...

    def abort(self) -> None: ...

    def keeps_current(self) -> bool:
        """Does the connection stay open after the response being written?"""


class Http1Response:
    __slots__ = (
        "_chunked",
        "_conn",
        "_is_head",
        "_left",
        "_version",
        "finished",
        "head_sent",
        "request_id",
        "status",
    )  # fmt: skip

    def __init__(self, conn: ResponseConnection, is_head: bool, version: str) -> None:
        self._conn = conn
        self._is_head = is_head  # a HEAD request: no body, whatever the response declares
        self._version = version  # the request's: it decides the framing
        self.status = 0
        self.request_id: str | None = None  # set by the handler when it starts
        self.head_sent = False
        self.finished = False
        self._chunked = False
        self._left: int | None = None  # bytes still owed under a declared Content-Length

    def respond(self, status: int, headers: Headers, body: bytes, *, add_date: bool = True) -> None:
        """A whole response in one write. `headers` must not carry Content-Length or framing
        fields: the length is the body's."""
        self.status = status
        framing = [f"Date: {http_date()}\r\n"] if add_date else []
        if status not in _NO_BODY and status >= 200:
            framing.append(f"Content-Length: {len(body)}\r\n")
        framing.append(self._connection_field())
        data = encode_head(status, headers, framing)
        if body and not self._is_head and status not in _NO_BODY:
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
        has_body = not self._is_head and status not in _NO_BODY and status >= 200
        if has_body and content_length is not None:
            self._left = content_length
        elif has_body and self._version == "1.1":
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
        if not self._conn.keeps_current():
            return "Connection: close\r\n"
        return "Connection: keep-alive\r\n" if self._version == "1.0" else ""

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

    def refused(self, status: int) -> None:
        """The listener answered for this request itself (its body could not be parsed)."""
        self.status = status
        self.head_sent = self.finished = True

    def abort(self) -> None:
        """Cut the connection (a response that cannot be completed honestly)."""
        self.finished = True
        self._conn.abort()
