"""Authorization: does a verified principal satisfy a route's `require` block?

All given conditions must hold. Scopes and roles are compared as sets of whole strings: a token
with scope "read:data-admin" does not hold "admin" (the substring `in` bug of hand-written
checks). Claim rules compare type-strictly: the JSON `true` is not the string "true" nor 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from m2mgate.auth.claims import MISSING, ClaimPath, format_claim_path, lookup_claim
from m2mgate.auth.principal import Principal
from m2mgate.errors import InsufficientScope

ClaimValue = str | int | bool


@dataclass(frozen=True, slots=True)
class ClaimRule:
    path: ClaimPath
    allowed: tuple[ClaimValue, ...]

    def holds(self, claims: object) -> bool:
        value = lookup_claim(claims, self.path)  # type: ignore[arg-type]
        if value is MISSING:
            return False
        # An array claim (`groups: [a, b]`) holds when any element is an allowed value.
        values = value if isinstance(value, list) else [value]
        return any(_same(item, allowed) for item in values for allowed in self.allowed)


def _same(left: object, right: object) -> bool:
    return type(left) is type(right) and left == right


@dataclass(frozen=True, slots=True)
class Requirement:
    scopes: frozenset[str] = frozenset()
    any_scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    any_roles: frozenset[str] = frozenset()
    claims: tuple[ClaimRule, ...] = ()
    issuers: frozenset[str] = frozenset()  # issuer names; empty: any configured issuer
    # RFC 6750 §3 `scope` attribute of the 403 challenge: the all-of scopes, then the any-of
    # ones, in config order.
    challenge_scopes: tuple[str, ...] = ()


def authorize(requirement: Requirement, principal: Principal) -> None:
    """Return if every condition holds; InsufficientScope naming the first failure otherwise."""
    failure = first_failure(requirement, principal)
    if failure is not None:
        raise InsufficientScope(requirement.challenge_scopes, failure)


def first_failure(requirement: Requirement, principal: Principal) -> str | None:
    """Which condition fails, for the log (names from config only, never token values)."""
    if requirement.issuers and principal.issuer_name not in requirement.issuers:
        return "issuer not allowed on this route"
    if not requirement.scopes <= principal.scope_set:
        return "missing required scopes"
    if requirement.any_scopes and requirement.any_scopes.isdisjoint(principal.scope_set):
        return "none of any_scopes"
    if not requirement.roles <= principal.role_set:
        return "missing required roles"
    if requirement.any_roles and requirement.any_roles.isdisjoint(principal.role_set):
        return "none of any_roles"
    for rule in requirement.claims:
        if not rule.holds(principal.claims):
            return f"claim rule {format_claim_path(rule.path)} not met"
    return None
