"""Shared fixtures: keys minted per session, real loopback servers, a running gateway."""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import settings

from m2mgate.app import Gateway
from m2mgate.config.compiling import compile_settings, validate_tree
from tests.support.servers import EchoUpstream, JwksServer
from tests.support.tokens import SigningKey, claims_for, ec_key, rsa_key

# Hypothesis: a bounded profile for CI (the default) and the long run behind scripts/fuzz.
settings.register_profile("ci", max_examples=150, print_blob=True)
settings.register_profile("fuzz", max_examples=50_000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def rsa_signer() -> SigningKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="session")
def ec_signer() -> SigningKey:
    return ec_key("ec-1")


@pytest.fixture(scope="session")
def spare_rsa_signer() -> SigningKey:
    """A second key: the 'next' key of a rotation, or an attacker's key."""
    return rsa_key("rsa-2")


@pytest.fixture
async def jwks(
    aiohttp_server: Any, rsa_signer: SigningKey, ec_signer: SigningKey
) -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.keys = [rsa_signer, ec_signer]
    running = await aiohttp_server(server.app())
    server.url = str(running.make_url("")).rstrip("/")
    yield server
    server.release_hanging()


@pytest.fixture
async def upstream(aiohttp_server: Any) -> AsyncIterator[EchoUpstream]:
    echo = EchoUpstream()
    running = await aiohttp_server(echo.app())
    echo.url = str(running.make_url("")).rstrip("/")
    yield echo
    echo.release.set()


def base_config(jwks: JwksServer, upstream: EchoUpstream) -> dict[str, Any]:
    """The CONTRACT example, pointed at the test servers, on free ports."""
    return {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "upstream": {"url": upstream.url, "connect_timeout_seconds": 1, "timeout_seconds": 5},
        "issuers": [
            {
                "name": "local",
                "issuer": jwks.issuer,
                "jwks_uri": jwks.jwks_uri,
                "audiences": ["https://api.example"],
                "algorithms": ["RS256", "ES256"],
                "preset": "rfc9068",
                "leeway_seconds": 5,
            }
        ],
        "routes": [
            {"name": "public", "path": "/public/**", "public": True},
            {
                "name": "admin",
                "path": "/api/admin/**",
                "methods": ["GET", "POST"],
                "require": {"scopes": ["admin"]},
            },
            {
                "name": "user",
                "path": "/api/user/**",
                "require": {"any_scopes": ["read:data", "admin"]},
            },
            {"name": "api", "path": "/api/**", "require": {}},
        ],
        "shutdown_grace_seconds": 5,
    }


@dataclass
class RunningGateway:
    gateway: Gateway
    url: str
    admin_url: str
    stream: io.StringIO
    http: aiohttp.ClientSession

    @property
    def log_stream(self) -> io.StringIO:
        """Everything logged so far: request lines held in the access log's batch included."""
        self.gateway.access_log.flush()
        return self.stream

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_stream.getvalue().splitlines() if line]

    def access_events(self) -> list[dict[str, Any]]:
        return [event for event in self.log_events() if event.get("event") == "request"]

    async def get(
        self, path: str, token: str | None = None, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.get(self.url + path, headers=headers, **kwargs)
        await response.read()
        return response

    async def metrics_text(self) -> str:
        async with self.http.get(self.admin_url + "/metrics") as response:
            return await response.text()


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def make_gateway(jwks: JwksServer, upstream: EchoUpstream) -> AsyncIterator[GatewayFactory]:
    running: list[RunningGateway] = []

    async def make(
        configure: Callable[[dict[str, Any]], None] | None = None,
        *,
        wait_ready: bool = True,
        **gateway_kwargs: Any,
    ) -> RunningGateway:
        config = copy.deepcopy(base_config(jwks, upstream))
        if configure is not None:
            configure(config)
        settings = compile_settings(validate_tree(config))
        log_stream = io.StringIO()
        gateway = Gateway(settings, log_stream=log_stream, **gateway_kwargs)
        await gateway.start()
        host, port = gateway.proxy_address
        admin_host, admin_port = gateway.admin_address
        http = aiohttp.ClientSession(auto_decompress=False)
        instance = RunningGateway(
            gateway, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", log_stream, http
        )
        running.append(instance)
        if wait_ready:
            assert await gateway.wait_ready(10), "gateway did not load its keys"
        return instance

    yield make
    for instance in running:
        await instance.http.close()
        await instance.gateway.stop()


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> RunningGateway:
    """A gateway on the CONTRACT example config, keys loaded."""
    return await make_gateway()


@pytest.fixture
def mint(jwks: JwksServer, rsa_signer: SigningKey) -> Callable[..., str]:
    """mint(scope="admin", ...) -> a valid RS256 token for the test issuer (overrides claims)."""

    def make(
        signer: SigningKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        return (signer or rsa_signer).sign(claims_for(jwks.issuer, **claims), header=header)

    return make
