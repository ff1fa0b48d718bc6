"""One keep-alive connection to the upstream: an asyncio protocol that feeds the bytes it
receives to the exchange in progress, and writes with back-pressure."""

from __future__ import annotations

import asyncio

from m2mgate.errors import BadGateway
from m2mgate.flow_control import WriteFlow
from m2mgate.proxy.upstream_exchange import Exchange


class UpstreamConnection(WriteFlow):
    __slots__ = ("exchange", "idle_since", "transport")

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0

    def closed_error(self) -> Exception:
        return BadGateway("upstream connection closed while sending the request")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            self.close()  # bytes nobody asked for: the connection can no longer be trusted
            return
        self.exchange.feed(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)
        self.release_drain()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise self.closed_error()
        self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if self.transport is None or self.closed:
            raise self.closed_error()
        self.transport.writelines(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def end_exchange(self) -> None:
        """The exchange is over: its parser goes (breaking the parser/exchange cycle)."""
        if self.exchange is not None:
            self.exchange.detach()
            self.exchange = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
