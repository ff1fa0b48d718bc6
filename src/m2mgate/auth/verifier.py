"""Token verification, cheapest checks first (the order of Envoy's authenticator).

    parse (strict JSON)  ->  issuer by exact `iss`  ->  alg on the issuer's allowlist
    ->  token type  ->  exp / nbf / iat / lifetime  ->  aud  ->  client id allowlist
    ->  principal (scopes, roles, tenant by the claim layout)
    ->  key (cache; may refetch per cooldown)  ->  signature

Nothing before the key step touches the network, so garbage, an unknown issuer, an expired or
misdirected token never causes a fetch. Keys are looked up per issuer: a key of issuer A never
verifies a token claiming issuer B (cross-issuer key substitution).

Each issuer is compiled once into its `(Step, check)` pairs (auth/issuer_steps.py); a token
runs them in one loop, which tells an optional observer (`m2mgate explain`) each step's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from m2mgate.auth.claim_projection import ClaimProjection
from m2mgate.auth.issuer_steps import (
    CompiledSteps,
    IssuerPolicy,
    IssuerSteps,
    KeyProvider,
    Verification,
)
from m2mgate.auth.principal import Principal
from m2mgate.auth.token_cache import VerifiedTokenCache, token_digest
from m2mgate.auth.token_parsing import UnverifiedToken, parse_token
from m2mgate.auth.trace import Observer, Step
from m2mgate.detail_text import json_type, quoted, quoted_list
from m2mgate.errors import GatewayError, UnknownIssuer

__all__ = ["IssuerPolicy", "KeyProvider", "Rejected", "TokenVerifier"]


class Rejected(Exception):
    """A token refused at one step: the gateway error, with the issuer the token *claims*
    (None when refused before the issuer step). The claimed issuer is a bounded label for
    metrics and logs, never an identity: the token was not verified."""

    def __init__(self, error: GatewayError, issuer_name: str | None) -> None:
        super().__init__(error)
        self.error = error
        self.issuer_name = issuer_name


class TokenVerifier:
    def __init__(
        self,
        issuers: Mapping[str, IssuerPolicy],
        keys: KeyProvider,
        clock: Callable[[], float] = time.time,
        cache: VerifiedTokenCache | None = None,
        kept_claims: ClaimProjection | None = None,
    ) -> None:
        # Keyed by the exact `iss` string; each issuer's checks compiled once, here.
        self._issuers: dict[str, IssuerSteps] = {
            iss: IssuerSteps(policy, keys, clock, kept_claims) for iss, policy in issuers.items()
        }
        self._clock = clock
        self.cache = cache
        # The steps every token takes before its issuer is known.
        self._front: CompiledSteps = (
            (Step.PARSE, _parse, False),
            (Step.ISSUER, self._select_issuer, False),
        )

    async def verify(self, token: str, observer: Observer | None = None) -> Principal:
        """The verified principal; raises `Rejected` with the step's error.

        The verified-token cache answers for a repeat token on every path, observed or not:
        an observer is told `Step.CACHED` (explain builds its stack without a cache, so it
        shows every step)."""
        cache = self.cache
        if cache is not None:
            digest = token_digest(token)
            cached = cache.get(digest, self._clock())
            if cached is not None:
                if observer is not None:
                    observer(Step.CACHED, cached, None)
                return cached
        verification = Verification(token)
        await _run(self._front, verification, observer, None)
        issuer = verification.issuer
        await _run(issuer.steps, verification, observer, issuer.policy.name)
        if cache is not None:
            cache.put(digest, verification.principal, verification.key)
        return verification.principal

    def _select_issuer(self, verification: Verification) -> IssuerPolicy:
        claims = verification.token.claims
        iss = claims.get("iss")
        # Exact, byte-for-byte comparison: `https://a/` and `https://a` are different issuers.
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise UnknownIssuer(self._unknown_issuer_detail(claims))
        verification.issuer = issuer
        return issuer.policy

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


def _parse(verification: Verification) -> UnverifiedToken:
    verification.token = token = parse_token(verification.text)
    return token


async def _run(
    steps: CompiledSteps,
    verification: Verification,
    observer: Observer | None,
    issuer_name: str | None,
) -> None:
    """The one loop every token goes through. Without an observer, each step is a plain call
    (a zero-cost `try`, no call per step to anything but the check)."""
    for step, check, is_async in steps:
        try:
            value = check(verification)
            if is_async:
                value = await value
        except GatewayError as error:
            if observer is not None:
                observer(step, None, error)
            raise Rejected(error, issuer_name) from error
        if observer is not None:
            observer(step, value, None)
