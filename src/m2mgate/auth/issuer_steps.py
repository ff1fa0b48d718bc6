"""One issuer's verification steps, compiled once into `(Step, check)` pairs.

Each check reads what the steps before it found from the `Verification` (the one per-token
state) and returns its own result (what an observer is told). Cheap checks come first; only
the key step may touch the network, and it runs after every claim check has passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from m2mgate.auth.claim_checks import TokenTypeGuard, check_audience, check_times, check_token_type
from m2mgate.auth.claim_projection import ClaimProjection
from m2mgate.auth.claims import ClaimLayout, build_principal, read_client_id
from m2mgate.auth.principal import Principal
from m2mgate.auth.token_parsing import UnverifiedToken
from m2mgate.auth.trace import Step
from m2mgate.detail_text import quoted, quoted_list
from m2mgate.errors import BadSignature, ClientNotAllowed, DisallowedAlgorithm, InvalidToken
from m2mgate.jose import VerificationKey, verify_parsed

KeyProvider = Callable[[str, str | None, str], Awaitable[tuple[VerificationKey, ...]]]
"""(issuer name, kid, alg) -> candidate keys; raises KeysUnavailable / UnknownKey."""

Check = Callable[["Verification"], Any]
CompiledSteps = tuple[tuple[Step, Check, bool], ...]
"""(step, check, is_async): whether the loop awaits the check's result is known at compile
time, so the loop never inspects a value to find out."""


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


class Verification:
    """What the steps found so far, for one token (each attribute is set by its step)."""

    __slots__ = ("candidates", "client_id", "issuer", "key", "principal", "text", "token")

    token: UnverifiedToken
    issuer: IssuerSteps
    client_id: str
    principal: Principal
    candidates: tuple[VerificationKey, ...]
    key: VerificationKey

    def __init__(self, text: str) -> None:
        self.text = text


class IssuerSteps:
    """The compiled checks of one issuer, in order."""

    def __init__(
        self,
        policy: IssuerPolicy,
        keys: KeyProvider,
        clock: Callable[[], float],
        kept_claims: ClaimProjection | None,
    ) -> None:
        self.policy = policy
        self._keys = keys
        self._clock = clock
        # What a principal keeps of the claims (auth/claim_projection.py); None: all of them.
        self._kept_claims = kept_claims
        self.steps: CompiledSteps = (
            (Step.ALGORITHM, self._algorithm, False),
            (Step.TOKEN_TYPE, self._token_type, False),
            (Step.TIMES, self._times, False),
            (Step.AUDIENCE, self._audience, False),
            (Step.CLIENT, self._client, False),
            # Reading scopes, roles and tenant needs no key either: a claim of the wrong type
            # is refused before any key lookup (so never causes a fetch), as its own step.
            (Step.PRINCIPAL, self._principal, False),
            (Step.KEY, self._key, True),
            (Step.SIGNATURE, _signature, False),
        )

    def _algorithm(self, verification: Verification) -> None:
        check_algorithm(verification.token, self.policy)

    def _token_type(self, verification: Verification) -> None:
        token = verification.token
        check_token_type(self.policy.guard, token.header, token.claims)

    def _times(self, verification: Verification) -> float:
        """The time the token was judged at (explain shows exp and iat relative to it)."""
        now = self._clock()
        policy = self.policy
        check_times(
            verification.token.claims,
            now=now,
            leeway=policy.leeway_seconds,
            max_lifetime=policy.max_token_lifetime_seconds,
        )
        return now

    def _audience(self, verification: Verification) -> None:
        check_audience(verification.token.claims, self.policy.audiences)

    def _client(self, verification: Verification) -> str:
        verification.client_id = client_id = check_client(verification.token, self.policy)
        return client_id

    def _principal(self, verification: Verification) -> Principal:
        """The identity the issuer's claim layout reads; trusted only once the signature is."""
        claims = verification.token.claims
        policy = self.policy
        kept = None if self._kept_claims is None else self._kept_claims.project(claims)
        verification.principal = principal = build_principal(
            claims,
            policy.layout,
            issuer_name=policy.name,
            issuer=policy.issuer,
            client_id=verification.client_id,
            kept_claims=kept,
        )
        return principal

    async def _key(self, verification: Verification) -> tuple[VerificationKey, ...]:
        token = verification.token
        candidates = await self._keys(self.policy.name, token.key_id, token.algorithm)
        verification.candidates = candidates
        return candidates


def _signature(verification: Verification) -> VerificationKey:
    """The key that verified the token's signature."""
    verification.key = key = verify_with_candidates(verification.token, verification.candidates)
    return key


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
