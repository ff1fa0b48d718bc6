"""Real aiohttp servers on loopback: a JWKS server that can misbehave, an echo upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.tokens import SigningKey


@dataclass
class JwksBehaviour:
    """What the JWKS endpoint does next. Tests flip these between requests."""

    mode: str = "ok"  # ok | status500 | html | truncated | empty | no_keys | huge | redirect | hang
    max_age: int | None = 600
    extra_keys: list[dict[str, Any]] = field(default_factory=list)


class JwksServer:
    """Serves /.well-known/jwks.json and discovery for `keys`; counts and signals fetches."""

    def __init__(self, jwks_path: str = "/.well-known/jwks.json") -> None:
        self.jwks_path = jwks_path  # providers publish keys at their own paths
        self.keys: list[SigningKey] = []
        self.behaviour = JwksBehaviour()
        self.fetches = 0
        self.discovery_fetches = 0
        self.discovery_issuer: str | None = None  # None: the real issuer
        self.url = ""
        self._fetched = asyncio.Condition()
        self._release = asyncio.Event()

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}{self.jwks_path}"

    def document(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys] + self.behaviour.extra_keys}

    async def wait_for_fetches(self, count: int, within_seconds: float = 10.0) -> None:
        async with self._fetched:
            await asyncio.wait_for(
                self._fetched.wait_for(lambda: self.fetches >= count), within_seconds
            )

    def release_hanging(self) -> None:
        self._release.set()

    async def handle_jwks(self, _: web.Request) -> web.StreamResponse:
        self.fetches += 1
        async with self._fetched:
            self._fetched.notify_all()
        mode = self.behaviour.mode
        headers = {}
        if self.behaviour.max_age is not None:
            headers["Cache-Control"] = f"public, max-age={self.behaviour.max_age}"
        if mode == "status500":
            return web.Response(status=500, text="boom")
        if mode == "html":
            return web.Response(text="<html><body>login</body></html>", content_type="text/html")
        if mode == "truncated":
            return web.Response(
                text=json.dumps(self.document())[:40], content_type="application/json"
            )
        if mode == "empty":
            return web.json_response({"keys": []})
        if mode == "no_keys":
            return web.json_response({"issuer": "x"})
        if mode == "huge":
            return web.Response(
                body=b" " * (2 * 1024 * 1024) + b"{}", content_type="application/json"
            )
        if mode == "redirect":
            raise web.HTTPFound("http://127.0.0.1:9/keys")
        if mode == "hang":
            await self._release.wait()
        return web.json_response(self.document(), headers=headers)

    async def handle_discovery(self, _: web.Request) -> web.Response:
        self.discovery_fetches += 1
        return web.json_response(
            {
                "issuer": self.discovery_issuer or self.issuer,
                "jwks_uri": self.jwks_uri,
                "token_endpoint": f"{self.url}/oauth/token",
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.jwks_path, self.handle_jwks)
        app.router.add_get("/.well-known/openid-configuration", self.handle_discovery)
        return app


class EchoUpstream:
    """Answers with what it received, as JSON. `?behaviour=` selects a misbehaviour."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        behaviour = request.query.get("behaviour")
        if behaviour == "sleep":
            await asyncio.sleep(float(request.query.get("seconds", "1")))
        if behaviour == "hang":
            self.entered.set()
            await self.release.wait()
        if behaviour == "big":
            size = int(request.query.get("bytes", str(1024 * 1024)))
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await response.prepare(request)
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                await response.write(piece)
                sent += len(piece)
            await response.write_eof()
            return response
        if behaviour == "abort":
            response = web.StreamResponse(headers={"Content-Length": "100000"})
            await response.prepare(request)
            await response.write(b"partial")
            await asyncio.sleep(0)
            assert request.transport is not None
            request.transport.close()
            return response
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            length += len(chunk)
        seen = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[name, value] for name, value in request.headers.items()],
            "body_length": length,
            "body_sha256": digest.hexdigest(),
        }
        self.requests.append(seen)
        headers = {"X-Upstream": "echo"}
        if behaviour == "cookies":
            response = web.json_response(seen, headers=headers)
            response.headers.add("Set-Cookie", "a=1")
            response.headers.add("Set-Cookie", "b=2")
            return response
        if behaviour == "hop":
            headers.update({"Connection": "X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "5"})
        return web.json_response(seen, headers=headers)

    def app(self) -> web.Application:
        # auto_decompress off: the echo must report the bytes that arrived, not their inflation.
        app = web.Application(
            client_max_size=8 * 1024 * 1024, handler_args={"auto_decompress": False}
        )
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def header_values(seen: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in seen["headers"] if key.lower() == name.lower()]
