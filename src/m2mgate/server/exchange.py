"""The protocol-neutral exchange: what a handler sees of one request, whatever the listener.

A handler gets a request head (what was asked, by whom), a body stream and a response sink.
Nothing here is HTTP/1-specific: HTTP/1.1 (request_cycle.py) is the first implementation;
HTTP/2 streams, gRPC and check-only endpoints (ext_authz, auth_request) are the next ones, and
a check-only listener simply never hands the body to an upstream. The types are Protocols, so
an implementation may be one object per request (as HTTP/1.1's is, to keep allocations down)
or several.
"""

from __future__ import annotations

from typing import Protocol

Headers = list[tuple[str, str]]


class RequestHead(Protocol):
    """What was asked, and by whom. `target` is the exact request-target the client sent
    (path and query); `headers` the fields in order, as received."""

    method: str
    target: str
    headers: Headers
    host: str | None  # the authority the client named (Host, or :authority)
    scheme: str
    remote: str | None  # the peer's address
    authorization: list[str]  # every Authorization field, in order (the decision refuses two)
    request_ids: list[str]  # every X-Request-Id field, in order


class RequestBody(Protocol):
    """The request body as a stream with back-pressure (reading pauses while it is buffered)."""

    content_length: int | None  # the declared length; None when chunked or absent
    has_body: bool
    refusal: str | None  # why the listener refused the body (its parser error), if it did

    def send_continue(self) -> None:
        """The request is authorized: a client waiting to send its body may now send it."""

    async def read_body(self, idle_seconds: float) -> bytes:
        """The next body bytes; b"" at the end. TimeoutError when idle for `idle_seconds`,
        ConnectionError when the client left, BodyRefused when the listener refused it."""
        ...


class ResponseSink(Protocol):
    """Where the response goes; the implementation owns the framing."""

    method: str  # of the request answered: a HEAD response has no body
    status: int
    request_id: str | None
    head_sent: bool
    finished: bool

    def respond(self, status: int, headers: Headers, body: bytes, *, add_date: bool = True) -> None:
        """A whole response in one write."""

    def start(self, status: int, headers: Headers, content_length: int | None) -> None:
        """The head of a streamed response."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait until the client can take more; TimeoutError when it reads nothing too long."""

    def finish(self) -> None: ...

    def abort(self) -> None:
        """Cut the exchange: a response that cannot be completed honestly."""


class Exchange(RequestHead, RequestBody, ResponseSink, Protocol):
    """One request and its response, as the handler is called with it."""
