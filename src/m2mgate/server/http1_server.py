"""The proxy listener: a lean HTTP/1.1 server on asyncio protocols, parsing with llhttp.

Why not aiohttp's server here: on the request path its Request and StreamResponse machinery
cost more than everything the gateway itself does (bench/RESULTS.md: 18.7 µs per request for
aiohttp's low-level server alone, 6.3 µs for a protocol on httptools). The admin listener,
which is not on the request path, stays on aiohttp.

Parsing is llhttp's (through `httptools`, the binding uvicorn uses), in its strict default mode,
never hand-written code. llhttp refuses the request-smuggling shapes: Content-Length with
Transfer-Encoding, duplicate or list-valued Content-Length, obs-fold, bad chunk sizes, bare LF,
NUL and other control bytes in fields, whitespace before the colon. The listener adds what a
gateway on the request path needs around it (this module: the socket, deadlines and drain;
listener_context.py: what a connection knows of the listener; http1_connection.py: one
connection's parsing side; http1_framing.py: where its byte stream is within a message;
http1_refusal.py: what refusing an unparsable request does; http1_answering.py: its requests
answered in order, and whether it stays after each; http1_head_reader.py: the head within its
size limits; request_head.py: the head rules; http1_request.py / http1_response.py: a
request's body stream and response writer):

- **two Host fields, and a Transfer-Encoding that is not exactly `chunked`, are refused**
  (RFC 9112 §3.2: 400 for more than one Host; §6.1: a server may refuse codings it does not
  know, and a proxy must never guess where a body ends);
- **parse errors answer in JSON, never echoing the request.** A parser message quotes the
  offending bytes, possibly a credential. The status says what was wrong (400, 414 request line
  too long, 431 header fields too large) and the connection is closed (RFC 9112 §9.6: after a
  framing error the connection cannot be trusted);
- **size limits on the head**: the request line, each header field line, the number of fields,
  and the head as a whole (so no single field can grow without bound while it trickles in);
- **deadlines**: a request head must arrive within `head_timeout_seconds` of its first byte (or
  of connecting) however it trickles (slowloris); an idle keep-alive connection is closed after
  `keepalive_timeout_seconds`. One sweep per server checks every connection's deadline, rather
  than a timer armed and cancelled on every request;
- **a cap on concurrent connections**, so fds stay bounded whatever clients do;
- **one request at a time per connection**: pipelined requests are answered in order, and
  reading pauses while one waits;
- **graceful drain**: on shutdown the listener stops accepting, idle connections close, and
  requests in flight finish (bounded by the grace period) with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib

from m2mgate.server.exchange import Handler
from m2mgate.server.http1_connection import HttpConnection
from m2mgate.server.limits import ConnectionLimits
from m2mgate.server.listener_context import ListenerContext, ServerEvents

__all__ = ["Handler", "HttpServer", "ServerEvents"]


class HttpServer:
    """The listening socket, its connections, their deadlines, and graceful drain."""

    def __init__(self, handler: Handler, limits: ConnectionLimits, events: ServerEvents) -> None:
        # What each connection gets instead of this server: limits, clock, events, draining.
        self.context = ListenerContext(handler, limits, events)
        self.limits = limits
        self.events = events
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep_seconds = max(
            0.05, min(1.0, limits.head_timeout_seconds / 5, limits.keepalive_timeout_seconds / 5)
        )

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.context.bind(loop)
        context = self.context
        self._server = await loop.create_server(
            lambda: HttpConnection(context),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        self._sweeper = loop.call_later(self._sweep_seconds, self._sweep)

    @property
    def address(self) -> tuple[str, int] | None:
        if self._server is None or not self._server.sockets:
            return None
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    @property
    def is_listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def draining(self) -> bool:
        return self.context.draining

    @property
    def open_connections(self) -> int:
        return len(self.context.connections)

    @property
    def requests_in_flight(self) -> int:
        return len(self.context.tasks)

    def now(self) -> float:
        return self.context.now()

    def _sweep(self) -> None:
        now = self.now()
        expired = [
            c for c in self.context.connections if c.deadline is not None and c.deadline < now
        ]
        for conn in expired:
            conn.expire()
        if self._loop is not None:
            self._sweeper = self._loop.call_later(self._sweep_seconds, self._sweep)

    # --- shutdown -----------------------------------------------------------------------------

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting; close idle connections; let requests in flight finish within the
        grace period, then cut what is left."""
        context = self.context
        context.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(context.connections):
            if not conn.is_busy:
                conn.close()
        if context.tasks:
            await asyncio.wait(set(context.tasks), timeout=grace_seconds)
        for task in list(context.tasks):
            task.cancel()
        if context.tasks:
            await asyncio.wait(set(context.tasks), timeout=1.0)
        for conn in list(context.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
