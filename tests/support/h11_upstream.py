"""An upstream that records exactly what reached it, parsed by h11: a strict HTTP/1.1 parser
that is not llhttp, so what it reads is what an independent server would read, not what the
gateway's own parser thinks it sent."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import h11


@dataclass
class Received:
    """One request as the upstream's parser saw it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    complete: bool = False  # h11 saw the end of the message

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class H11Upstream:
    """Answers every complete request `200` (or `101` with `switch`), keep-alive."""

    switch: bool = False
    requests: list[Received] = field(default_factory=list)
    raw: list[bytearray] = field(default_factory=list)  # per connection, in order
    errors: list[str] = field(default_factory=list)  # h11 could not parse what arrived
    url: str = ""
    _server: asyncio.Server | None = None

    async def start(self) -> H11Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def complete(self) -> list[Received]:
        return [request for request in self.requests if request.complete]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = h11.Connection(h11.SERVER)
        raw = bytearray()
        self.raw.append(raw)
        current: Received | None = None
        try:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    raw.extend(data)
                    parser.receive_data(data)
                    if not data:
                        break
                    continue
                if isinstance(event, h11.Request):
                    current = Received(
                        event.method.decode(),
                        event.target.decode("latin-1"),
                        [(k.decode(), v.decode("latin-1")) for k, v in event.headers],
                    )
                    self.requests.append(current)
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += event.data
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    current.complete = True
                    writer.write(self._answer(parser, len(self.complete)))
                    await writer.drain()
                    if self.switch or parser.our_state is h11.MUST_CLOSE:
                        break
                    parser.start_next_cycle()
                    current = None
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except h11.RemoteProtocolError as error:
            self.errors.append(str(error))
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _answer(self, parser: h11.Connection, number: int) -> bytes:
        if self.switch:
            return b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
        body = str(number).encode()
        head = h11.Response(
            status_code=200,
            headers=[("Content-Length", str(len(body))), ("X-Upstream-Request", str(number))],
        )
        return (
            (parser.send(head) or b"")
            + (parser.send(h11.Data(data=body)) or b"")
            + (parser.send(h11.EndOfMessage()) or b"")
        )
