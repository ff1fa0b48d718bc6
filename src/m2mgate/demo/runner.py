"""The demo: the CONTRACT's demo clients, routes and ports, composed from the real components.

The gateway runs from an ordinary YAML config (`DEMO_CONFIG`, printed by
`m2mgate demo --print-config`) through the same validation and compiling as any user file; the
issuer is the real `DevIssuer`; nothing here is a shortcut a production config could not take.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from aiohttp import web

from m2mgate.app import Gateway
from m2mgate.config.compiling import Settings, compile_settings, validate_tree
from m2mgate.config.loading import parse_yaml
from m2mgate.demo.echo import echo_app
from m2mgate.issuer.client_secrets import hash_secret
from m2mgate.issuer.config import IssuerConfigSchema, IssuerSettings, compile_issuer
from m2mgate.issuer.server import DevIssuer

AUDIENCE = "https://api.example"
DEMO_CLIENTS = (
    ("demo-reader", "demo-reader-secret", ("read:data",)),
    ("demo-admin", "demo-admin-secret", ("read:data", "admin")),
)

DEMO_CONFIG = """\
# The m2mgate demo's gateway config. Same format as any config: m2mgate check accepts it.
listen: {host}:{gateway}
admin_listen: {host}:{admin}
upstream:
  url: http://{host}:{upstream}        # the demo's echo upstream
issuers:
  - name: demo
    issuer: http://{host}:{issuer}     # the embedded dev issuer
    jwks_uri: http://{host}:{issuer}/.well-known/jwks.json
    audiences: [{audience}]
    algorithms: [ES256]
    preset: rfc9068
routes:
  - name: public
    path: /public/**
    public: true
  - name: user
    path: /api/user/**
    require:
      scopes: [read:data]
  - name: admin
    path: /api/admin/**
    require:
      scopes: [admin]
"""


@dataclass(frozen=True, slots=True)
class DemoPorts:
    gateway: int = 8080
    admin: int = 9901
    issuer: int = 8081
    upstream: int = 8082


def demo_config_text(ports: DemoPorts, host: str = "127.0.0.1") -> str:
    return DEMO_CONFIG.format(
        host=host,
        gateway=ports.gateway,
        admin=ports.admin,
        issuer=ports.issuer,
        upstream=ports.upstream,
        audience=AUDIENCE,
    )


def demo_gateway_settings(ports: DemoPorts) -> Settings:
    return compile_settings(validate_tree(parse_yaml(demo_config_text(ports))))


def demo_issuer_settings(port: int) -> IssuerSettings:
    clients = [
        {
            "client_id": client_id,
            # Hashed at start-up: even the demo issuer holds no plain secret.
            "client_secret_hash": hash_secret(secret),
            "scopes": list(scopes),
            "audiences": [AUDIENCE],
        }
        for client_id, secret, scopes in DEMO_CLIENTS
    ]
    schema = IssuerConfigSchema.model_validate(
        {"listen": f"127.0.0.1:{port}", "algorithm": "ES256", "clients": clients}
    )
    return compile_issuer(schema)


class Demo:
    def __init__(self, ports: DemoPorts, *, log: Any, log_stream: TextIO | None = None) -> None:
        self.requested = ports
        self.log = log
        self._log_stream = log_stream
        self.issuer = DevIssuer(demo_issuer_settings(ports.issuer), log=log)
        self.gateway: Gateway | None = None
        self._upstream: web.AppRunner | None = None
        self.ports = ports

    async def start(self) -> None:
        await self.issuer.start()
        self._upstream = web.AppRunner(echo_app(), access_log=None)
        await self._upstream.setup()
        await web.TCPSite(self._upstream, "127.0.0.1", self.requested.upstream).start()
        issuer_port = int(self.issuer.issuer.rsplit(":", 1)[1])
        upstream_port = int(self._upstream.addresses[0][1])
        settings = demo_gateway_settings(
            DemoPorts(self.requested.gateway, self.requested.admin, issuer_port, upstream_port)
        )
        self.gateway = Gateway(settings, log_stream=self._log_stream)
        await self.gateway.start()
        self.ports = DemoPorts(
            gateway=self.gateway.proxy_address[1],
            admin=self.gateway.admin_address[1],
            issuer=issuer_port,
            upstream=upstream_port,
        )

    async def wait_ready(self, timeout_seconds: float = 10.0) -> bool:
        return self.gateway is not None and await self.gateway.wait_ready(timeout_seconds)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        if self._upstream is not None:
            await self._upstream.cleanup()
        await self.issuer.stop()


def port_flags(ports: DemoPorts) -> str:
    return (
        f"--port {ports.gateway} --admin-port {ports.admin} "
        f"--issuer-port {ports.issuer} --upstream-port {ports.upstream}"
    )


def instructions(ports: DemoPorts, program: str | None = None) -> str:
    """The copy-paste walkthrough printed when the demo starts."""
    m2mgate = program or f"{shlex.quote(sys.executable)} -m m2mgate"
    gateway = f"http://127.0.0.1:{ports.gateway}"
    issuer = f"http://127.0.0.1:{ports.issuer}"
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    token_of = (
        "curl -s -u {client}:{client}-secret -d grant_type=client_credentials "
        f"{issuer}/oauth/token | {extract}"
    )
    return f"""\
m2mgate demo is running.
  gateway   {gateway}   (admin: http://127.0.0.1:{ports.admin}/metrics, /readyz)
  issuer    {issuer}   (POST /oauth/token, /.well-known/jwks.json)
  upstream  http://127.0.0.1:{ports.upstream}   (echo: answers with what it received)
  clients   demo-reader / demo-reader-secret   scope read:data
            demo-admin  / demo-admin-secret    scopes read:data admin

Try the whole flow (copy and paste into another terminal):

# 1. Get a token for demo-reader (client-credentials grant, RFC 6749 §4.4)
TOKEN=$({token_of.format(client="demo-reader")})

# 2. Call /api/user: 200. The echo shows X-Client-Id and X-Scopes arriving.
curl -s -H "Authorization: Bearer $TOKEN" {gateway}/api/user/profile

# 3. Call /api/admin with the reader's token: 403 insufficient_scope
curl -si -H "Authorization: Bearer $TOKEN" {gateway}/api/admin/stats

# 4. Get a token for demo-admin and call /api/admin again: 200
ADMIN_TOKEN=$({token_of.format(client="demo-admin")})
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {gateway}/api/admin/stats

# 5. No token: 401. A spoofed identity header never reaches the upstream.
curl -si {gateway}/api/user/profile
curl -s -H "Authorization: Bearer $TOKEN" -H "X-Client-Id: someone-else" {gateway}/api/user/profile

# Ask the gateway why, without sending traffic:
{m2mgate} demo --print-config {port_flags(ports)} > demo.yaml
{m2mgate} explain --config demo.yaml --method GET --path /api/admin/stats --token "$TOKEN"

# The same token with m2mgate itself (discovery finds the token endpoint):
{m2mgate} token --issuer {issuer} --client-id demo-reader \\
    --client-secret demo-reader-secret --decode

Stop with Ctrl-C.
"""


async def serve_demo(ports: DemoPorts, *, log: Any, out: TextIO) -> None:
    """Run until cancelled (the CLI cancels on SIGINT/SIGTERM)."""
    demo = Demo(ports, log=log, log_stream=sys.stderr)
    await demo.start()
    try:
        await demo.wait_ready()
        print(instructions(demo.ports), file=out, flush=True)
        await asyncio.Event().wait()
    finally:
        await demo.stop()
