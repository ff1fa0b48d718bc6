"""`m2mgate token`: get an access token with the client-credentials grant from any OAuth 2.0
server (the embedded issuer, Auth0, Okta, Keycloak, ...). The token endpoint is found by
discovery (OIDC, then RFC 8414) unless given.

Secrets travel only over https (loopback excepted, or with an explicit opt-in), are sent with
`client_secret_basic` by default (the method RFC 6749 §2.3.1 says every server supports), and
never appear in an error message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from m2mgate.keys.fetch_url import validate_fetch_url
from m2mgate.keys.fetcher import USER_AGENT, FetchFailed, fetch_json
from m2mgate.keys.source import discovery_urls

_TIMEOUT_SECONDS = 15.0
_MAX_BYTES = 256 * 1024


class TokenError(Exception):
    """Getting a token failed; the message is fit for the user (no secret in it)."""


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None  # Auth0-style `audience` parameter
    resource: str | None = None  # RFC 8707 resource indicator
    auth_method: str = "client_secret_basic"  # or client_secret_post


async def discover_token_endpoint(
    session: aiohttp.ClientSession, issuer: str, *, allow_insecure_http: bool
) -> str:
    failures: list[str] = []
    for url in discovery_urls(issuer):
        try:
            document = await fetch_json(
                session, url, timeout_seconds=_TIMEOUT_SECONDS, max_bytes=_MAX_BYTES
            )
        except FetchFailed as error:
            failures.append(error.detail)
            continue
        body = document.body
        if not isinstance(body, dict) or not isinstance(body.get("token_endpoint"), str):
            failures.append(f"{url} has no token_endpoint")
            continue
        # RFC 8414 §3.3: the metadata must be about the issuer we asked for. A trailing slash
        # is tolerated here (users type issuers both ways); the gateway itself is exact.
        if str(body.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise TokenError(f"{url} describes issuer {body.get('issuer')!r}, not {issuer!r}")
        endpoint: str = body["token_endpoint"]
        _check_url(endpoint, allow_insecure_http)
        return endpoint
    raise TokenError("discovery failed: " + "; ".join(failures))


def _check_url(url: str, allow_insecure_http: bool) -> None:
    try:
        validate_fetch_url(url, allow_insecure_http=allow_insecure_http)
    except ValueError as error:
        raise TokenError(f"refusing to send a client secret: {error}") from None


def basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


async def request_token(
    session: aiohttp.ClientSession, token_endpoint: str, credentials: ClientCredentials
) -> dict[str, Any]:
    form = {"grant_type": "client_credentials"}
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if credentials.auth_method == "client_secret_post":
        form["client_id"] = credentials.client_id
        form["client_secret"] = credentials.client_secret
    else:
        headers["Authorization"] = basic_authorization(
            credentials.client_id, credentials.client_secret
        )
    if credentials.scope is not None:
        form["scope"] = credentials.scope
    if credentials.audience is not None:
        form["audience"] = credentials.audience
    if credentials.resource is not None:
        form["resource"] = credentials.resource
    try:
        async with session.post(
            token_endpoint,
            data=form,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS),
        ) as response:
            text = await response.text()
            status = response.status
    except TimeoutError:
        raise TokenError(f"{token_endpoint} did not answer in {_TIMEOUT_SECONDS:.0f}s") from None
    except aiohttp.ClientError as error:
        raise TokenError(f"{token_endpoint}: {type(error).__name__}: {error}") from None
    body = _json_object(text)
    if status != 200 or body is None or not isinstance(body.get("access_token"), str):
        raise TokenError(_describe_failure(status, body))
    return body


def _json_object(text: str) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _describe_failure(status: int, body: dict[str, Any] | None) -> str:
    if body is not None and isinstance(body.get("error"), str):
        description = body.get("error_description")
        detail = f": {description}" if isinstance(description, str) else ""
        return f"{body['error']}{detail} (HTTP {status})"
    return f"the token endpoint answered HTTP {status} without an OAuth error"


async def get_token(
    issuer: str | None,
    token_endpoint: str | None,
    credentials: ClientCredentials,
    *,
    allow_insecure_http: bool = False,
) -> dict[str, Any]:
    async with aiohttp.ClientSession(
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        if token_endpoint is None:
            if issuer is None:
                raise TokenError("give --issuer (for discovery) or --token-endpoint")
            _check_url(issuer, allow_insecure_http)
            token_endpoint = await discover_token_endpoint(
                session, issuer, allow_insecure_http=allow_insecure_http
            )
        _check_url(token_endpoint, allow_insecure_http)
        return await request_token(session, token_endpoint, credentials)
