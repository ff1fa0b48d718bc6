"""The upstream seam, httpx-style: `send(UpstreamRequest) -> UpstreamResponse`.

The caller (the server's relay) hands over a request whose body is an async iterator of bytes
with its declared length; the transport (http1_client.py) owns the framing, the connection and
its reuse, and knows nothing about who asked: it never sees a client, never answers one, never
catches a client's error. When the body iterator raises (a limit, a stall, a client gone), the
transport aborts the upstream exchange without completing it and re-raises that same exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from m2mgate.errors import GatewayTimeout

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class UpstreamRequest:
    """One request for the upstream.

    `target`: the exact bytes the client sent, path and query (never re-quoted). `headers`
    carry no framing fields (any are dropped: the transport writes the framing). `body`: None
    for no body; else its bytes, exactly `content_length` of them, or chunked when
    `content_length` is None. `on_head_sent` is called once the request head has been written:
    from then on the upstream may act on the request, whatever fails after."""

    method: str
    target: str
    headers: Headers
    body: AsyncIterator[bytes] | None = None
    content_length: int | None = None
    on_head_sent: Callable[[], None] | None = None

    @property
    def is_head_only(self) -> bool:
        """HEAD: the response has no body, whatever its headers say (RFC 9112 §6.3)."""
        return self.method == "HEAD"


class UpstreamResponse(Protocol):
    """The response head, and its body to stream; release() must be called once done."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def content_length(self) -> int | None:
        """The declared body length; None when chunked or delimited by the close."""

    async def read(self) -> bytes:
        """The next body bytes as they arrived; b"" at the end."""

    def whole_body(self) -> bytes | None:
        """The entire body if it has already arrived, else None (then stream it)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None:
        """Back to the pool if the exchange completed cleanly; closed otherwise."""


class Upstream(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...


class RequestBodyUnfinished(GatewayTimeout):
    """The response head did not come in time while the request body was still being sent:
    an upstream reads a body before it answers, so the caller may hold the body's sender
    (not the upstream) responsible for the wait."""
