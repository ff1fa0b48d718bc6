"""Where one issuer's keys come from: a configured `jwks_uri`, or one found by discovery.

Discovery (OpenID Connect Discovery 1.0 §4, then RFC 8414 §3) is cached like keys: the found
`jwks_uri` is reused until its document's TTL passes, and looked up again after a key fetch
fails (the IdP may have moved its keys). The discovery document's `issuer` must equal the
configured issuer byte for byte (RFC 8414 §3.3; OIDC Discovery §4.3): otherwise an attacker who
controls one issuer's metadata could point us at another issuer's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from m2mgate.keys.fetch_url import validate_fetch_url
from m2mgate.keys.fetcher import FetchedDocument, FetchFailed, fetch_json
from m2mgate.keys.keyset import InvalidKeySet, KeySet, build_keyset
from m2mgate.keys.ttl import TtlBounds


@dataclass(frozen=True, slots=True)
class KeySourceSettings:
    issuer: str
    jwks_uri: str | None
    allow_insecure_http: bool
    algorithms: frozenset[str]
    ttl: TtlBounds
    fetch_timeout_seconds: float
    max_response_bytes: int


@dataclass(frozen=True, slots=True)
class FetchedKeys:
    keyset: KeySet
    max_age: float | None
    jwks_uri: str


def discovery_urls(issuer: str) -> tuple[str, str]:
    """The two well-known metadata URLs for an issuer, in the order they are tried."""
    # OIDC Discovery §4: issuer (without trailing slash) + "/.well-known/openid-configuration".
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    # RFC 8414 §3.1: the well-known segment goes *between* the host and the issuer's path.
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    return oidc, rfc8414


class KeySource:
    def __init__(
        self,
        settings: KeySourceSettings,
        session: Callable[[], aiohttp.ClientSession],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._session = session
        self._clock = clock
        self._discovered_uri: str | None = None
        self._discovered_until = 0.0

    async def fetch(self) -> FetchedKeys:
        """Fetch and vet the key set; FetchFailed (with a metric `result`) otherwise."""
        jwks_uri = self.settings.jwks_uri or await self._discovered_jwks_uri()
        try:
            document = await self._get(jwks_uri)
            keyset = build_keyset(document.body, self.settings.algorithms)
        except InvalidKeySet as error:
            self._discovered_until = 0.0  # look the URI up again next time
            raise FetchFailed(error.result, f"{jwks_uri}: {error}") from None
        except FetchFailed:
            self._discovered_until = 0.0
            raise
        return FetchedKeys(keyset, document.max_age, jwks_uri)

    async def _get(self, url: str) -> FetchedDocument:
        return await fetch_json(
            self._session(),
            url,
            timeout_seconds=self.settings.fetch_timeout_seconds,
            max_bytes=self.settings.max_response_bytes,
        )

    async def _discovered_jwks_uri(self) -> str:
        if self._discovered_uri is not None and self._clock() < self._discovered_until:
            return self._discovered_uri
        failure: FetchFailed | None = None
        for url in discovery_urls(self.settings.issuer):
            try:
                document = await self._get(url)
            except FetchFailed as error:
                failure = failure or error
                continue
            jwks_uri = self._vet_discovery(document.body, url)
            self._discovered_uri = jwks_uri
            self._discovered_until = self._clock() + self.settings.ttl.clamp(document.max_age)
            return jwks_uri
        if failure is None:  # pragma: no cover - discovery_urls always yields two URLs
            raise FetchFailed("invalid_discovery", "no discovery URL")
        raise failure

    def _vet_discovery(self, body: object, url: str) -> str:
        if not isinstance(body, dict):
            raise FetchFailed("invalid_discovery", f"{url} is not a JSON object")
        if body.get("issuer") != self.settings.issuer:
            raise FetchFailed("issuer_mismatch", f"{url} names a different issuer")
        jwks_uri = body.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchFailed("invalid_discovery", f"{url} has no jwks_uri")
        try:
            validate_fetch_url(jwks_uri, allow_insecure_http=self.settings.allow_insecure_http)
        except ValueError as error:
            raise FetchFailed("invalid_discovery", f"{url}: jwks_uri refused: {error}") from None
        return jwks_uri
