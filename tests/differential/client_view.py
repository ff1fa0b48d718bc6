"""The client's reading of what the gateway sent back: h11 as a client.

Response i is read as the answer to the client's request i (its method decides whether a body
follows: HEAD), exactly as a client would pair them. Each response is read with a fresh h11
connection over the bytes left by the one before, so that an HTTP/1.0 keep-alive response (which
h11 would close after) does not end the reading; whether the gateway announced a close is
judged here from the response itself (RFC 9112 §9.3, §9.6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11

from tests.differential.reference import connection_tokens

Fields = list[tuple[bytes, bytes]]

_SWITCHING = re.compile(rb"(?:^|\n)HTTP/\d\.\d 101[ \r]")


@dataclass
class ClientResponse:
    status: int
    http_version: bytes
    headers: Fields
    body: bytes = b""
    interim: list[int] = field(default_factory=list)  # 1xx before it
    complete: bool = False

    def value(self, name: bytes) -> bytes | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def request_id(self) -> str | None:
        value = self.value(b"x-request-id")
        return value.decode("latin-1") if value is not None else None

    @property
    def announces_close(self) -> bool:
        tokens = connection_tokens(self.headers)
        return b"close" in tokens or (self.http_version == b"1.0" and b"keep-alive" not in tokens)


@dataclass
class ClientView:
    responses: list[ClientResponse]
    error: str | None = None  # the gateway's bytes are not valid HTTP/1.1 responses
    leftover: bytes = b""  # bytes after the last response that could be read

    def describe(self) -> str:
        lines = [
            f"  {r.http_version.decode('latin-1')} {r.status}"
            f"{' (after ' + ','.join(map(str, r.interim)) + ')' if r.interim else ''}"
            f" id={r.request_id}{'' if r.complete else ' INCOMPLETE'}"
            for r in self.responses
        ]
        if self.error:
            lines.append(f"  unreadable: {self.error}")
        if self.leftover:
            lines.append(f"  leftover: {self.leftover[:120]!r}")
        return "\n".join(lines) or "  (no response)"


def read_responses(received: bytes, methods: list[bytes], closed: bool) -> ClientView:
    """`methods`: the client's requests in order (more responses than requests are read as
    answers to GETs). `closed`: the gateway closed the connection after `received`."""
    view = ClientView([])
    rest = received
    while rest:
        method = methods[len(view.responses)] if len(view.responses) < len(methods) else b"GET"
        conn = h11.Connection(h11.CLIENT)
        headers = [(b"host", b"gateway")]
        if _SWITCHING.search(rest):
            # h11 reads a 101 only as the answer to a proposed upgrade: propose one, so that
            # the 101 is seen (and judged) instead of being an unreadable stream.
            headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
        conn.send(h11.Request(method=method, target=b"/", headers=headers))
        conn.send(h11.EndOfMessage())
        conn.receive_data(rest)
        if closed:
            conn.receive_data(b"")
        response: ClientResponse | None = None
        interim: list[int] = []
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                    break
                if event is h11.PAUSED:
                    # A 2xx to CONNECT: what follows is a tunnel, not HTTP/1.1.
                    if response is not None:
                        response.complete = True
                        view.responses.append(response)
                    view.leftover = bytes(conn.trailing_data[0])
                    return view
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    # Switched protocols: what follows is not HTTP/1.1.
                    headers = list(event.headers.raw_items())
                    view.responses.append(
                        ClientResponse(
                            101, event.http_version, headers, interim=interim, complete=True
                        )
                    )
                    view.leftover = bytes(conn.trailing_data[0])
                    return view
                if isinstance(event, h11.InformationalResponse):
                    interim.append(event.status_code)
                elif isinstance(event, h11.Response):
                    response = ClientResponse(
                        event.status_code,
                        event.http_version,
                        list(event.headers.raw_items()),
                        interim=interim,
                    )
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
        except h11.RemoteProtocolError as error:
            if response is not None:
                response.body = bytes(body)
                view.responses.append(response)
            view.error = str(error)
            view.leftover = rest
            return view
        if response is None:
            view.leftover = rest
            return view
        response.body = bytes(body)
        response.complete = isinstance(event, h11.EndOfMessage)
        view.responses.append(response)
        if not response.complete:
            return view
        rest = bytes(conn.trailing_data[0])
    return view
