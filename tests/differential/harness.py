"""The differential harness's running parts: the real gateway (two config variants) in front of
the recording h11 upstream, on an event loop in a background thread (as in tests/fuzz), and one
exchange at a time over a real client socket.

`DifferentialTarget.exchange(variant, chunks, pause_seconds)` writes the chunks with a pause
between writes (so the gateway's parser sees the stream split where the chunks split), waits
until everything has settled (no request in flight at the gateway, nothing new from either
side), closes, and returns an `Observation`: the bytes the client got back, what the upstream
received and the gateway's `request` and `http_error` log events for that exchange. Exchanges
never overlap, so everything that happened between its start and its end belongs to it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from m2mgate.app import Gateway
from m2mgate.config.compiling import compile_settings, validate_tree
from tests.support.recording_upstream import ReceivedRequest, RecordingUpstream
from tests.support.servers import JwksServer
from tests.support.tokens import SigningKey, claims_for, rsa_key

VARIANTS = ("default", "passthrough")
SCOPE = "read:data"
CLIENT_ID = "svc-diff"
SUBJECT = "sub-diff"
TOKEN_LIFETIME_SECONDS = 12 * 3600  # outlives the longest scripts/fuzz run
_QUIET_SECONDS = 0.03  # nothing new from either side for this long: the exchange has settled
_EXCHANGE_SECONDS = 6.0  # the hard bound on one exchange (the gateway's own timeouts are 1-2 s)


@dataclass(frozen=True)
class Credentials:
    """Tokens minted at test time for the module's issuer."""

    issuer: str
    valid: str  # carries SCOPE: passes /api/**
    no_scope: str  # valid signature, lacks SCOPE: 403
    forged: str  # signed by a key the issuer never published: 401

    def expected_identity(self) -> dict[str, str]:
        """What the gateway sends for `valid` (CONTRACT, "What the upstream receives")."""
        return {
            "X-Client-Id": CLIENT_ID,
            "X-Scopes": SCOPE,
            "X-Roles": "",
            "X-Issuer": self.issuer,
            "X-Subject": SUBJECT,
        }


@dataclass
class Observation:
    """Everything seen during one exchange."""

    variant: str
    chunks: list[bytes]
    sent: bytes  # what the client managed to write (the gateway may close early)
    received: bytes  # what the client got back
    closed_by_gateway: bool  # the client read EOF before closing itself
    upstream_requests: list[ReceivedRequest]
    upstream_raw: dict[int, bytes]  # upstream connection -> bytes it received in this exchange
    upstream_errors: dict[int, tuple[str, bytes]]  # connection -> (h11 error, unparsed bytes)
    upstream_open: set[int]  # upstream connections still open when the exchange ended
    upstream_tunnelled: dict[int, bytes]  # bytes sent into a tunnel a CONNECT opened upstream
    requests_logged: list[dict[str, Any]]  # the gateway's `request` events, in order
    http_errors: list[dict[str, Any]]  # its `http_error` events (requests the parser refused)
    unhandled: list[str] = field(default_factory=list)
    timed_out: bool = False  # the exchange hit _EXCHANGE_SECONDS

    @property
    def stream(self) -> bytes:
        return b"".join(self.chunks)


class _Collect(logging.Handler):
    """Errors logged by asyncio and aiohttp: an exception that escaped a protocol callback
    (asyncio's "Fatal error: protocol.data_received() call failed") is a bug too."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().splitlines()[0]
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            frames = traceback.extract_tb(error.__traceback__)
            where = f" in {frames[-2].name}" if len(frames) > 1 else ""
            text += f" {type(error).__name__}: {error}{where} ({record.name})"
        self.lines.append(text)


class _EventLines(io.StringIO):
    """The gateway's log sink: keeps the events the oracle reads, parsed once."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.http_errors: list[dict[str, Any]] = []
        self.unhandled: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if '"event": "request"' in line:
                self.requests.append(json.loads(line))
            elif '"event": "http_error"' in line:
                self.http_errors.append(json.loads(line))
            elif "unhandled_error" in line:
                self.unhandled.append(line)
        return len(text)


def _config(upstream_url: str, jwks: JwksServer, variant: str) -> dict[str, Any]:
    passthrough = variant == "passthrough"
    return {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "upstream": {
            "url": upstream_url,
            "connect_timeout_seconds": 1,
            "timeout_seconds": 1,  # an upstream left waiting for a body shows as a 504 soon
            # Trailer merging showed up with these two (issue #8): the passthrough variant.
            "preserve_host": passthrough,
        },
        "issuers": [
            {
                "name": "diff",
                "issuer": jwks.issuer,
                "jwks_uri": jwks.jwks_uri,
                "audiences": ["https://api.example"],
                "algorithms": ["RS256"],
                "preset": "rfc9068",
                "max_token_lifetime_seconds": TOKEN_LIFETIME_SECONDS * 2,
                "jwks": {"refetch_cooldown_seconds": 3600},
            }
        ],
        "forward": {"authorization": passthrough},
        "routes": [
            {"name": "public", "path": "/public/**", "public": True},
            {"name": "api", "path": "/api/**", "require": {"scopes": [SCOPE]}},
        ],
        "limits": {
            "head_timeout_seconds": 2,
            "body_idle_timeout_seconds": 1,
            "keepalive_timeout_seconds": 5,
        },
        "shutdown_grace_seconds": 1,
    }


class DifferentialTarget:
    """The gateway variants and the recording upstream, driven from the test thread."""

    def __init__(self) -> None:
        self.key: SigningKey = rsa_key("diff-1")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.upstream = RecordingUpstream()
        self.gateways: dict[str, Gateway] = {}
        self.logs: dict[str, _EventLines] = {}
        self._runners: list[web.AppRunner] = []
        self._errors = _Collect()
        self._errors_seen = 0
        self.exchanges = 0

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for name in ("asyncio", "aiohttp"):
            logging.getLogger(name).addHandler(self._errors)
        self.thread.start()
        self._call(self._start(), 60)

    def _library_errors(self) -> list[str]:
        new = self._errors.lines[self._errors_seen :]
        self._errors_seen = len(self._errors.lines)
        return new

    def _call(self, coroutine: Any, seconds: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds)

    async def _start(self) -> None:
        jwks = JwksServer()
        jwks.keys = [self.key]
        runner = web.AppRunner(jwks.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        jwks.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        await self.upstream.start()
        for variant in VARIANTS:
            log = self.logs[variant] = _EventLines()
            config = _config(self.upstream.url, jwks, variant)
            gateway = Gateway(compile_settings(validate_tree(config)), log_stream=log)
            await gateway.start()
            assert await gateway.wait_ready(10), "the gateway did not load its keys"
            self.gateways[variant] = gateway
        self.credentials = self._mint(jwks.issuer)
        self.upstream_authority = self.upstream.url.removeprefix("http://")

    def _mint(self, issuer: str) -> Credentials:
        lifetime = {"exp": int(time.time()) + TOKEN_LIFETIME_SECONDS}
        stranger = rsa_key("diff-1")  # same kid, another key: the signature cannot verify
        return Credentials(
            issuer=issuer,
            valid=self.key.sign(
                claims_for(issuer, client_id=CLIENT_ID, sub=SUBJECT, scope=SCOPE, **lifetime)
            ),
            no_scope=self.key.sign(
                claims_for(issuer, client_id=CLIENT_ID, sub=SUBJECT, scope="other", **lifetime)
            ),
            forged=stranger.sign(claims_for(issuer, client_id="admin", scope=SCOPE, **lifetime)),
        )

    def stop(self) -> None:
        async def stop() -> None:
            for gateway in self.gateways.values():
                await gateway.stop()
            await self.upstream.stop()
            for runner in self._runners:
                await runner.cleanup()

        self._call(stop(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        for name in ("asyncio", "aiohttp"):
            logging.getLogger(name).removeHandler(self._errors)

    # --- one exchange ---------------------------------------------------------------------------

    def exchange(
        self,
        variant: str,
        chunks: list[bytes],
        pause_seconds: float = 0.002,
        *,
        isolate: bool = True,
    ) -> Observation:
        """One client connection. `isolate=False` leaves an upstream connection the gateway
        left mid-request as it is, for a test of what it does to the next exchange."""
        self.exchanges += 1
        return self._call(  # type: ignore[no-any-return]
            self._exchange(variant, chunks, pause_seconds, isolate), _EXCHANGE_SECONDS + 10
        )

    def _in_flight(self, gateway: Gateway) -> float:
        return float(gateway.metrics.in_flight.collect()[0].samples[0].value)

    async def _exchange(
        self, variant: str, chunks: list[bytes], pause_seconds: float, isolate: bool
    ) -> Observation:
        gateway = self.gateways[variant]
        log = self.logs[variant]
        await self._settled(gateway, None, time.monotonic() + _EXCHANGE_SECONDS)
        gateway.access_log.flush()
        marks = (len(self.upstream.requests), len(log.requests), len(log.http_errors))
        raw_marks = {c.number: len(c.raw) for c in self.upstream.connections}
        connections_before = len(self.upstream.connections)
        unhandled_before = len(log.unhandled)
        self._library_errors()  # what came before this exchange is not its doing

        deadline = time.monotonic() + _EXCHANGE_SECONDS
        host, port = gateway.proxy_address
        reader, writer = await asyncio.open_connection(host, port)
        client = _ClientReader(reader)
        reading = asyncio.ensure_future(client.run())
        sent = bytearray()
        try:
            for index, chunk in enumerate(chunks):
                if client.eof or writer.is_closing():
                    break
                writer.write(chunk)
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                sent += chunk
                client.last_activity = asyncio.get_running_loop().time()  # our write counts
                if index < len(chunks) - 1 and pause_seconds:
                    await asyncio.sleep(pause_seconds)
            timed_out = not await self._settled(gateway, client, deadline)
            closed_by_gateway = client.eof
        finally:
            writer.close()
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        # After the close: whatever the gateway still does (a cancelled upstream exchange) is
        # part of this exchange too.
        timed_out = not await self._closed(gateway, deadline) or timed_out
        gateway.access_log.flush()

        open_now = {c.number for c in self.upstream.connections if not c.closed}
        # A connection the gateway left mid-request would swallow the next exchange's request.
        if isolate and self.upstream.close_mid_request():
            await asyncio.sleep(0.01)  # the gateway's pool sees the close before the next one
        touched = [c for c in self.upstream.connections if len(c.raw) > raw_marks.get(c.number, 0)]
        touched += [c for c in self.upstream.connections[connections_before:] if c not in touched]
        return Observation(
            variant=variant,
            chunks=list(chunks),
            sent=bytes(sent),
            received=bytes(client.data),
            closed_by_gateway=closed_by_gateway,
            # Copies: a record left mid-request keeps growing in a later exchange.
            upstream_requests=[
                replace(r, body=bytearray(r.body)) for r in self.upstream.requests[marks[0] :]
            ],
            upstream_raw={c.number: bytes(c.raw[raw_marks.get(c.number, 0) :]) for c in touched},
            upstream_errors={
                c.number: (c.error, c.unparsed) for c in touched if c.error is not None
            },
            upstream_open={c.number for c in touched if c.number in open_now},
            upstream_tunnelled={c.number: bytes(c.tunnelled) for c in touched if c.tunnelled},
            requests_logged=list(log.requests[marks[1] :]),
            http_errors=list(log.http_errors[marks[2] :]),
            unhandled=list(log.unhandled[unhandled_before:]) + self._library_errors(),
            timed_out=timed_out,
        )

    async def _settled(
        self, gateway: Gateway, client: _ClientReader | None, deadline: float
    ) -> bool:
        """Wait until no request is in flight and neither side has sent anything for a short
        while (or the client connection was closed by the gateway); False at the deadline."""
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            now = loop.time()
            quiet = now - self.upstream.last_activity > _QUIET_SECONDS and (
                client is None or client.eof or now - client.last_activity > _QUIET_SECONDS
            )
            if quiet and self._in_flight(gateway) == 0:
                return True
            await asyncio.sleep(0.005)
        return False

    async def _closed(self, gateway: Gateway, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if gateway.open_connections == 0 and self._in_flight(gateway) == 0:
                return await self._settled(gateway, None, deadline)
            await asyncio.sleep(0.005)
        return False


class _ClientReader:
    """Reads everything the gateway sends back, noting when it last did and whether it closed."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.data = bytearray()
        self.eof = False
        self.last_activity = asyncio.get_running_loop().time()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self._reader.read(65536)
                self.last_activity = loop.time()
                if not data:
                    break
                self.data += data
        except ConnectionError:
            pass
        self.eof = True
