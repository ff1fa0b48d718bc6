"""Bounded HTTP GET of a JSON document (JWKS or discovery): the key side's only network I/O.

aiohttp client errors are translated here into `FetchFailed` with a `result` from a closed set
that labels `m2mgate_jwks_fetches_total`. Limits, each a defence against a broken or hostile IdP
(or whoever sits between us and it):
- no redirects: a redirect to another host would hand key selection to that host;
- a byte cap, checked against Content-Length and again while reading (a lying or absent length);
- one total timeout for connect + headers + body, so a hanging IdP cannot stall a refresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from m2mgate import __version__
from m2mgate.keys.ttl import max_age_from_cache_control

USER_AGENT = f"m2mgate/{__version__}"


class FetchFailed(Exception):
    """`result` is one of: http_error, redirect, timeout, network_error, too_large,
    invalid_json, invalid_jwks, no_usable_keys, invalid_discovery, issuer_mismatch."""

    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail)
        self.result = result
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    body: Any
    max_age: float | None


async def fetch_json(
    session: aiohttp.ClientSession, url: str, *, timeout_seconds: float, max_bytes: int
) -> FetchedDocument:
    try:
        async with session.get(
            url,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            headers={"Accept": "application/json, application/jwk-set+json"},
        ) as response:
            if 300 <= response.status < 400:
                raise FetchFailed("redirect", f"{url} answered {response.status} (redirect)")
            if response.status != 200:
                raise FetchFailed("http_error", f"{url} answered {response.status}")
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise FetchFailed("too_large", f"{url} declared {declared} bytes > {max_bytes}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchFailed("too_large", f"{url} sent more than {max_bytes} bytes")
            max_age = max_age_from_cache_control(response.headers.getall("Cache-Control", ()))
    except TimeoutError:
        raise FetchFailed("timeout", f"{url} did not answer within {timeout_seconds}s") from None
    except (aiohttp.ClientError, OSError) as error:
        raise FetchFailed("network_error", f"{url}: {type(error).__name__}: {error}") from None
    try:
        document = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FetchFailed("invalid_json", f"{url} did not return JSON") from None
    return FetchedDocument(document, max_age)


def new_session() -> aiohttp.ClientSession:
    """The session all key and discovery fetches share (never the upstream pool)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=60),
        headers={"User-Agent": USER_AGENT},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # an ambient HTTP(S)_PROXY must not silently sit between us and the IdP
        raise_for_status=False,
    )
