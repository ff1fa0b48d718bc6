"""A client connection's transport side, in one place for reading and writing: writes that
stop once the connection is closed, read pausing that is idempotent, and the two ways to end
(close after what is written, or abort). The connection's protocol logic sits on top of it."""

from __future__ import annotations

import asyncio

from m2mgate.flow_control import WriteFlow


class ClientTransport(WriteFlow):
    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None
        self._read_paused = False

    def closed_error(self) -> Exception:
        return ConnectionResetError("the client closed the connection")

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if not self.closed and self.transport is not None:
            self.transport.writelines(data)

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.closed and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Close after what is written has been sent."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()
