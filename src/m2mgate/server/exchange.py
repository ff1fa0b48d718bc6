"""The protocol-neutral exchange: what a handler sees of one request, whatever the listener.

A handler is called with a request head (what was asked, by whom: a value), a body stream and
a response sink. Nothing here is HTTP/1-specific: HTTP/1.1 (http1_request.py,
http1_response.py) is the first implementation; HTTP/2 streams, gRPC and check-only endpoints
(ext_authz, auth_request) are the next ones. A check-only listener is a handler that decides
and answers through the sink, and never hands the body to an upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PeerFacts:
    """Who is at the other end of the connection (one per connection, shared by its
    requests). `tls`: the TLS facts (version, SNI, client certificate) once a listener
    terminates TLS; None on plain connections."""

    address: str | None
    tls: object | None = None


@dataclass(slots=True)
class RequestHead:
    """What was asked. `target` is the exact request-target the client sent, split once into
    `path` (still percent-encoded) and `query`; `headers` are the fields in order, as received
    (latin-1: the client's exact bytes). The framing facts say whether a body follows."""

    method: str
    target: str
    path: str
    query: str
    headers: Headers
    authority: str | None  # the authority the client named (Host, or :authority)
    scheme: str
    peer: PeerFacts
    authorization: list[str]  # every Authorization field, in order (the decision refuses two)
    request_ids: list[str]  # every X-Request-Id field, in order
    content_length: int | None = None  # the declared length; None when chunked or absent
    has_body: bool = False
    expect_continue: bool = False  # the client waits for `100 Continue` before its body


class RequestBody(Protocol):
    """The request body as a stream with back-pressure (reading pauses while it is buffered)."""

    @property
    def refusal(self) -> str | None:
        """Why the listener refused the body (its parser error's name), if it did."""

    def send_continue(self) -> None:
        """The request is authorized: a client waiting to send its body may now send it."""

    async def read_body(self, idle_seconds: float) -> bytes:
        """The next body bytes; b"" at the end. TimeoutError when idle for `idle_seconds`,
        ConnectionError when the client left, BodyRefused when the listener refused it."""
        ...


class ResponseSink(Protocol):
    """Where the response goes; the implementation owns the framing (length or chunks, the
    connection's fate, HEAD, Date)."""

    request_id: str | None  # the id the response carries, once the handler chose it

    @property
    def status(self) -> int: ...

    @property
    def head_sent(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

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


Handler = Callable[[RequestHead, RequestBody, ResponseSink], Awaitable[None]]
