"""Token verification, cheapest checks first (the order of Envoy's authenticator).

    parse (strict JSON)  ->  issuer by exact `iss`  ->  alg on the issuer's allowlist
    ->  token type  ->  exp / nbf / iat / lifetime  ->  aud  ->  client id allowlist
    ->  principal (scopes, roles, tenant by the claim layout)
    ->  key (cache; may refetch per cooldown)  ->  signature

Nothing before the key step touches the network, so garbage, an unknown issuer, an expired or
misdirected token never causes a fetch. Keys are looked up per issuer: a key of issuer A never
verifies a token claiming issuer B (cross-issuer key substitution).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from m2mgate.auth.claim_checks import TokenTypeGuard, check_audience, check_times, check_token_type
from m2mgate.auth.claim_projection import ClaimProjection
from m2mgate.auth.claims import ClaimLayout, build_principal, read_client_id
from m2mgate.auth.principal import Principal
from m2mgate.auth.token_cache import VerifiedTokenCache, token_digest
from m2mgate.auth.token_parsing import UnverifiedToken, parse_token
from m2mgate.auth.trace import Trace, traced
from m2mgate.detail_text import json_type, quoted, quoted_list
from m2mgate.errors import (
    BadSignature,
    ClientNotAllowed,
    DisallowedAlgorithm,
    GatewayError,
    InvalidToken,
    UnknownIssuer,
)
from m2mgate.jose import VerificationKey, verify_parsed

KeyProvider = Callable[[str, str | None, str], Awaitable[tuple[VerificationKey, ...]]]
"""(issuer name, kid, alg) -> candidate keys; raises KeysUnavailable / UnknownKey."""


@dataclass(frozen=True, slots=True)
class IssuerPolicy:
    name: str
    issuer: str
    audiences: frozenset[str]  # empty: audience check explicitly off
    client_ids: frozenset[str]  # empty: any client
    algorithms: frozenset[str]
    layout: ClaimLayout
    guard: TokenTypeGuard
    leeway_seconds: float
    max_token_lifetime_seconds: float


class TokenVerifier:
    def __init__(
        self,
        issuers: Mapping[str, IssuerPolicy],
        keys: KeyProvider,
        clock: Callable[[], float] = time.time,
        cache: VerifiedTokenCache | None = None,
        kept_claims: ClaimProjection | None = None,
    ) -> None:
        self._issuers = dict(issuers)  # keyed by the exact `iss` string
        self._keys = keys
        self._clock = clock
        self.cache = cache
        # What a principal keeps of the claims (auth/claim_projection.py); None: all of them.
        self._kept_claims = kept_claims

    async def verify(self, token: str, trace: Trace | None = None) -> Principal:
        cache = self.cache if trace is None else None  # explain shows every step: no cache
        if cache is not None:
            digest = token_digest(token)
            cached = cache.get(digest, self._clock())
            if cached is not None:
                return cached
        unverified = traced(trace, "parse", parse_token, token)
        issuer = traced(trace, "issuer", self.issuer_of, unverified)
        try:
            client_id = self.check_claims(unverified, issuer, trace)
            # Reading scopes, roles and tenant needs no key either: a claim of the wrong type
            # is refused before any key lookup (so never causes a fetch), as its own step.
            principal = traced(
                trace, "principal", self.build_principal, unverified, issuer, client_id
            )
            key = await self.check_signature(unverified, issuer, trace)
        except GatewayError as error:
            error.issuer_name = issuer.name  # for metrics and logs: the *claimed* issuer
            raise
        if cache is not None:
            cache.put(digest, principal, key)
        return principal

    def issuer_of(self, token: UnverifiedToken) -> IssuerPolicy:
        iss = token.claims.get("iss")
        # Exact, byte-for-byte comparison: `https://a/` and `https://a` are different issuers.
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise UnknownIssuer(self._unknown_issuer_detail(token.claims))
        return issuer

    def _unknown_issuer_detail(self, claims: Mapping[str, Any]) -> str:
        """The claimed `iss`, bounded and escaped (detail_text.py: it is attacker text), next
        to the configured ones: the usual mistake is one trailing slash."""
        configured = quoted_list(sorted(self._issuers), most=5)
        if "iss" not in claims:
            return f"no iss claim (issuers: {configured})"
        iss = claims["iss"]
        if not isinstance(iss, str):
            return f"iss is {json_type(iss)}, not a string (issuers: {configured})"
        return f"iss {quoted(iss)} is not a configured issuer (issuers: {configured})"

    def check_claims(
        self, token: UnverifiedToken, issuer: IssuerPolicy, trace: Trace | None = None
    ) -> str:
        """Every check that needs no key; returns the client id (for the allowlist)."""
        traced(trace, "algorithm", check_algorithm, token, issuer)
        traced(trace, "token_type", check_token_type, issuer.guard, token.header, token.claims)
        now = self._clock()
        traced(trace, "times", self._check_times, token, issuer, now)
        traced(trace, "audience", check_audience, token.claims, issuer.audiences)
        return traced(trace, "client", check_client, token, issuer)

    def build_principal(
        self, token: UnverifiedToken, issuer: IssuerPolicy, client_id: str
    ) -> Principal:
        """The identity the issuer's claim layout reads; trusted only once the signature is."""
        claims = token.claims
        kept = None if self._kept_claims is None else self._kept_claims.project(claims)
        return build_principal(
            claims,
            issuer.layout,
            issuer_name=issuer.name,
            issuer=issuer.issuer,
            client_id=client_id,
            kept_claims=kept,
        )

    @staticmethod
    def _check_times(token: UnverifiedToken, issuer: IssuerPolicy, now: float) -> float:
        check_times(
            token.claims,
            now=now,
            leeway=issuer.leeway_seconds,
            max_lifetime=issuer.max_token_lifetime_seconds,
        )
        return now

    async def check_signature(
        self, token: UnverifiedToken, issuer: IssuerPolicy, trace: Trace | None = None
    ) -> VerificationKey:
        """The key that verified the token's signature."""
        try:
            candidates = await self._keys(issuer.name, token.key_id, token.algorithm)
        except GatewayError as error:
            if trace is not None:
                trace.failed("key", error)
            raise
        if trace is not None:
            trace.passed("key", candidates)
        return traced(trace, "signature", verify_with_candidates, token, candidates)


def check_algorithm(token: UnverifiedToken, issuer: IssuerPolicy) -> None:
    if token.algorithm not in issuer.algorithms:
        # Covers `none` in any casing and HS* with a public key: never on an allowlist.
        raise DisallowedAlgorithm(
            f"alg {quoted(token.algorithm, 32)} is not on the issuer's allowlist"
            f" {quoted_list(sorted(issuer.algorithms))}"
        )


def check_client(token: UnverifiedToken, issuer: IssuerPolicy) -> str:
    client_id = read_client_id(token.claims, issuer.layout)
    if issuer.client_ids and client_id not in issuer.client_ids:
        # Read before the signature check: what the token claims, not who called. Logged so
        # the operator sees which client to add, labelled so nobody mistakes it for identity.
        raise ClientNotAllowed(
            f"claimed client id {quoted(client_id, 100)} (unverified) is not in client_ids"
        )
    return client_id


def verify_with_candidates(
    token: UnverifiedToken, candidates: tuple[VerificationKey, ...]
) -> VerificationKey:
    """The key that verifies the signature (a kid-less token may need several tries)."""
    failure: InvalidToken = BadSignature("no candidate key verified the signature")
    for key in candidates:
        try:
            verify_parsed(token.signing_input, token.signature, token.algorithm, key)
        except InvalidToken as error:
            failure = error
            continue
        return key
    # Which keys were tried: a kid the IdP reuses across a rotation, or a kid-less token
    # meeting the wrong key, reads differently from a forgery.
    tried = ", ".join(
        f"{quoted(key.kid, 64) if key.kid else '(no kid)'} ({key.algorithm})" for key in candidates
    )
    raise type(failure)(f"{failure.detail}; keys tried: {tried or 'none'}")
