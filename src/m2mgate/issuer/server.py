"""The dev issuer's HTTP edge (aiohttp): token endpoint, JWKS, discovery, and its lifecycle.

POST /oauth/token                              client-credentials grant (RFC 6749 §4.4)
GET  /.well-known/jwks.json                    signing keys (current, next, retired)
GET  /.well-known/openid-configuration         discovery (OIDC Discovery 1.0)
GET  /.well-known/oauth-authorization-server   discovery (RFC 8414)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from m2mgate.issuer.client_secrets import DECOY_HASH, verify_secret
from m2mgate.issuer.config import Client, IssuerSettings
from m2mgate.issuer.grant import OAuthError, grant_token, invalid_client, parse_token_request
from m2mgate.issuer.keyring import KeyRing
from m2mgate.jose import sign_token
from m2mgate.listen_address import ListenAddress

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path
JWKS_PATH = "/.well-known/jwks.json"
_JWKS_MAX_AGE_SECONDS = 300
_MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


class DevIssuer:
    def __init__(
        self,
        settings: IssuerSettings,
        *,
        log: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.log = log
        self._clock = clock
        self.keys = KeyRing(settings.algorithm, clock)
        self.issuer = settings.issuer or ""
        self._runner: web.AppRunner | None = None
        self._rotation: asyncio.Task[None] | None = None

    # --- HTTP -----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_post(TOKEN_PATH, self.token)
        app.router.add_get(JWKS_PATH, self.jwks)
        app.router.add_get("/.well-known/openid-configuration", self.metadata)
        app.router.add_get("/.well-known/oauth-authorization-server", self.metadata)
        return app

    async def token(self, request: web.Request) -> web.Response:
        try:
            return await self._token(request)
        except OAuthError as error:
            self.log.info("token_refused", error=error.error, detail=error.description)
            headers = dict(_NO_STORE)
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="m2mgate-issuer"'
            body = {"error": error.error, "error_description": error.description}
            return web.json_response(body, status=error.status, headers=headers)

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            raise OAuthError(
                "invalid_request", "the body must be application/x-www-form-urlencoded"
            )
        form = await request.post()
        fields = [(name, value) for name, value in form.items() if isinstance(value, str)]
        token_request = parse_token_request(fields, request.headers.getall("Authorization", ()))
        client = await self._authenticate(token_request.client_id, token_request.client_secret)
        grant = grant_token(token_request, client, issuer=self.issuer, now=self._clock())
        access_token = sign_token(grant.claims, self.keys.current)
        self.log.info(
            "token_issued",
            client_id=client.client_id,
            scope=" ".join(grant.scopes),
            audience=grant.claims["aud"],
            jti=grant.claims["jti"],
            auth_method=token_request.auth_method,
            kid=self.keys.current.kid,
        )
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
        }
        if grant.scopes:
            body["scope"] = " ".join(grant.scopes)
        return web.json_response(body, headers=_NO_STORE)

    async def _authenticate(self, client_id: str, secret: str) -> Client:
        client = self.settings.clients.get(client_id)
        # PBKDF2 is slow on purpose: run it off the event loop (hashlib releases the GIL).
        # An unknown client is checked against a decoy hash so both failures take as long.
        encoded = client.secret_hash if client is not None else DECOY_HASH
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(None, verify_secret, secret, encoded)
        if client is None or not matches:
            raise invalid_client("client authentication failed")
        return client

    async def jwks(self, _: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps(self.keys.jwks()).encode(),
            content_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={_JWKS_MAX_AGE_SECONDS}"},
        )

    async def metadata(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "token_endpoint": self.issuer + TOKEN_PATH,
                "jwks_uri": self.issuer + JWKS_PATH,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": sorted(
                    {scope for client in self.settings.clients.values() for scope in client.scopes}
                ),
                "response_types_supported": ["token"],
            },
            headers={"Cache-Control": f"public, max-age={_JWKS_MAX_AGE_SECONDS}"},
        )

    # --- keys -----------------------------------------------------------------------------------

    def rotate_keys(self) -> None:
        """Sign with the pre-published next key from now on; keep the old one published until
        every token it signed has expired."""
        longest = max(client.token_lifetime_seconds for client in self.settings.clients.values())
        previous = self.keys.current.kid
        self.keys.rotate(keep_retired_seconds=longest)
        self.log.info("keys_rotated", previous_kid=previous, kid=self.keys.current.kid)

    async def _rotate_forever(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            self.rotate_keys()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, address: ListenAddress | None = None) -> None:
        address = address or self.settings.listen
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address.host, address.port, reuse_address=True)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        if not self.issuer:
            shown = f"[{host}]" if ":" in host else host
            self.issuer = f"http://{shown}:{port}"
        if self.settings.key_rotation_seconds is not None:
            loop = asyncio.get_running_loop()
            self._rotation = loop.create_task(
                self._rotate_forever(self.settings.key_rotation_seconds)
            )
        self.log.info("issuer_started", issuer=self.issuer, clients=sorted(self.settings.clients))

    async def stop(self) -> None:
        if self._rotation is not None:
            self._rotation.cancel()
            await asyncio.gather(self._rotation, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def token_endpoint(self) -> str:
        return self.issuer + TOKEN_PATH

    @property
    def jwks_uri(self) -> str:
        return self.issuer + JWKS_PATH
