"""A recording upstream on loopback that parses what arrives with h11, not llhttp.

The gateway parses its clients with llhttp and frames what it sends upstream itself; an upstream
built on the same parser would share its blind spots. h11 is an independent, strict HTTP/1.1
implementation: when it cannot parse what the gateway sent, the gateway emitted malformed or
ambiguous HTTP/1.1. Every request is recorded as it arrived (method, target, header fields in
order with their original case, body bytes, trailers), with the raw bytes of each connection for
failure messages. Each request is answered with a small fixed response that names it
(`X-Upstream-Seq`, and the same counter in a JSON body); keep-alive is honoured; a parse error
closes the connection.

Two behaviours of real upstreams, chosen by the path:
- `/switch`: answered `101 Switching Protocols` (as a WebSocket server would), then the
  connection closes; the gateway must never relay it to a client that asked for no upgrade;
- `/early`: answered as soon as the head has arrived, before the body (as many servers answer a
  GET without reading its body); the body is still read, and the connection kept. A body the
  gateway declares but never sends then swallows the next request on that pooled connection;
- `/trailers`: the response is chunked and ends with a trailer field, `X-Upstream-Trailer`,
  that a client must never find among the response's header fields.
And a CONNECT is answered as a CONNECT-capable server would (RFC 9110 §9.3.6): `200` with no
framing, then the connection is a tunnel; bytes after it are recorded as tunnelled, not parsed,
until the tunnel closes 50 ms later.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import h11

Fields = list[tuple[bytes, bytes]]

SWITCH_MARK = b"/switch"
EARLY_MARK = b"/early"
TRAILERS_MARK = b"/trailers"
TRAILER_FIELD = b"X-Upstream-Trailer"
TUNNEL_SECONDS = 0.05


@dataclass
class ReceivedRequest:
    """One request as the upstream's parser saw it."""

    seq: int  # arrival order over all connections, from 0
    connection: int
    method: bytes
    target: bytes
    http_version: bytes
    headers: Fields  # original case, in order (h11's raw_items)
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields = field(default_factory=list)
    complete: bool = False  # EndOfMessage seen: the upstream acts on it
    answered_early: bool = False  # answered before its body had arrived (`/early`)

    def values(self, name: bytes) -> list[bytes]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def text(self, name: str) -> list[str]:
        """`values` as text (latin-1, as the gateway decodes header bytes)."""
        return [value.decode("latin-1") for value in self.values(name.encode("latin-1"))]

    @property
    def path(self) -> str:
        return self.target.decode("latin-1")


@dataclass
class UpstreamConnection:
    number: int
    raw: bytearray = field(default_factory=bytearray)
    error: str | None = None  # h11's RemoteProtocolError: the gateway sent malformed HTTP/1.1
    unparsed: bytes = b""  # what h11 held when it gave up
    truncated: bool = False  # closed mid-message (the gateway cut an exchange: not an error)
    tunnelled: bytearray = field(default_factory=bytearray)  # sent after a CONNECT's 200
    tunnel: bool = False
    closed: bool = False


class _Protocol(asyncio.Protocol):
    def __init__(self, upstream: RecordingUpstream) -> None:
        self._upstream = upstream
        self._h11 = h11.Connection(h11.SERVER)
        self.record = upstream.new_connection()
        self._current: ReceivedRequest | None = None
        self._answered_early = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._upstream.touch()
        self.record.raw += data
        if self.record.tunnel:
            self.record.tunnelled += data
            return
        self._h11.receive_data(data)
        self._drain()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self._upstream.touch()
        self.record.closed = True
        if self.record.error is not None or self.record.tunnel:
            return
        if self._h11.their_state is h11.ERROR:
            return
        self._h11.receive_data(b"")
        self._drain(at_close=True)

    def _drain(self, at_close: bool = False) -> None:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                if at_close and self._h11.their_state is not h11.IDLE:
                    self.record.truncated = True  # the gateway cut it mid-message
                else:
                    self.record.error = str(error)
                    self.record.unparsed = bytes(self._h11.trailing_data[0])
                self.close()
                return
            if self.record.tunnel or not isinstance(event, h11.Event):
                return  # NEED_DATA, PAUSED, or the connection is a tunnel now
            if isinstance(event, h11.ConnectionClosed):
                return
            self._on_event(event)

    def _on_event(self, event: h11.Event) -> None:
        if isinstance(event, h11.Request):
            self._current = self._upstream.new_request(
                self.record.number,
                event.method,
                event.target,
                event.http_version,
                list(event.headers.raw_items()),
            )
            if EARLY_MARK in event.target:
                self._answered_early = self._current.answered_early = True
                self._answer(self._current)
        elif isinstance(event, h11.Data) and self._current is not None:
            self._current.body += event.data
        elif isinstance(event, h11.EndOfMessage) and self._current is not None:
            self._current.trailers = list(event.headers.raw_items())
            self._current.complete = True
            if self._answered_early:
                self._answered_early = False
                self._next_cycle()
            else:
                self._answer(self._current)

    @property
    def mid_request(self) -> bool:
        if self.record.tunnel:
            return True  # a tunnel swallows whatever comes next: never left for the next one
        return self._h11.their_state not in (h11.IDLE, h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _answer(self, request: ReceivedRequest) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if request.method == b"CONNECT":
            self._transport.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            self.record.tunnel = True
            self.record.tunnelled += bytes(self._h11.trailing_data[0])
            # The tunnel's far end hangs up soon (the gateway would otherwise wait out its
            # upstream timeout on every CONNECT); what arrives until then is recorded.
            asyncio.get_running_loop().call_later(TUNNEL_SECONDS, self.close)
            return
        if SWITCH_MARK in request.target:
            # h11 would refuse to send a 101 nobody asked for: written by hand, then closed.
            self._transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\n"
                b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            self._transport.close()
            return
        body = json.dumps({"seq": request.seq, "connection": request.connection}).encode()
        headers = [("Content-Type", "application/json"), ("X-Upstream-Seq", str(request.seq))]
        trailers = []
        if TRAILERS_MARK in request.target and request.method != b"HEAD":
            headers += [("Transfer-Encoding", "chunked"), ("Trailer", TRAILER_FIELD.decode())]
            trailers = [(TRAILER_FIELD, b"from-trailer")]
        else:
            headers.append(("Content-Length", str(len(body))))
        data = self._h11.send(h11.Response(status_code=200, headers=headers)) or b""
        if request.method != b"HEAD":  # RFC 9110 §9.3.2: the length a GET would have, no body
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage(headers=trailers)) or b""
        self._transport.write(data)
        if self._h11.our_state is h11.MUST_CLOSE:
            self._transport.close()
            return
        if not self._answered_early:
            self._next_cycle()

    def _next_cycle(self) -> None:
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()


class RecordingUpstream:
    """The server; `requests` and `connections` only grow (callers keep their own offsets)."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.connections: list[UpstreamConnection] = []
        self.last_activity = 0.0
        self._server: asyncio.Server | None = None
        self._protocols: list[_Protocol] = []
        self.url = ""

    @property
    def complete(self) -> list[ReceivedRequest]:
        """The requests whose end arrived: those the upstream acts on."""
        return [request for request in self.requests if request.complete]

    @property
    def errors(self) -> list[str]:
        """What h11 could not parse, per connection that failed."""
        return [c.error for c in self.connections if c.error is not None]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _protocol(self) -> _Protocol:
        protocol = _Protocol(self)
        self._protocols.append(protocol)
        return protocol

    def close_mid_request(self) -> list[int]:
        """Close every connection left in the middle of a request (the numbers closed). A
        harness calls it between exchanges: a connection desynchronised by one exchange must
        not make the next one fail."""
        closed = []
        for protocol in self._protocols:
            if protocol.mid_request and not protocol.record.closed:
                closed.append(protocol.record.number)
                protocol.close()
        self._protocols = [p for p in self._protocols if not p.record.closed]
        return closed

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    def new_connection(self) -> UpstreamConnection:
        record = UpstreamConnection(len(self.connections))
        self.connections.append(record)
        return record

    def new_request(
        self, connection: int, method: bytes, target: bytes, version: bytes, headers: Fields
    ) -> ReceivedRequest:
        request = ReceivedRequest(len(self.requests), connection, method, target, version, headers)
        self.requests.append(request)
        return request
