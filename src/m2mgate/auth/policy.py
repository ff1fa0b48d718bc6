"""Authorization: does a verified principal satisfy a route's `require` block?

All given conditions must hold. Scopes and roles are compared as sets of whole strings: a token
with scope "read:data-admin" does not hold "admin" (the substring `in` bug of hand-written
checks). Claim rules compare type-strictly: the JSON `true` is not the string "true" nor 1.

Each requirement compiles its conditions once into (label, predicate) pairs; the request path
stops at the first failure, `m2mgate explain` evaluates them all. Same list, same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from m2mgate.auth.claims import MISSING, ClaimPath, format_claim_path, lookup_claim
from m2mgate.auth.principal import Principal
from m2mgate.detail_text import quoted_list
from m2mgate.errors import InsufficientScope

ClaimValue = str | int | bool
Condition = tuple[str, Callable[[Principal], bool]]


@dataclass(frozen=True, slots=True)
class ClaimRule:
    path: ClaimPath
    allowed: tuple[ClaimValue, ...]

    def holds(self, principal: Principal) -> bool:
        value = lookup_claim(principal.claims, self.path)
        if value is MISSING:
            return False
        # An array claim (`groups: [a, b]`) holds when any element is an allowed value.
        values = value if isinstance(value, list) else [value]
        return any(_same(item, allowed) for item in values for allowed in self.allowed)


def _same(left: object, right: object) -> bool:
    return type(left) is type(right) and left == right


def _listed(values: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


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
    conditions: tuple[Condition, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        conditions: list[Condition] = []
        if self.issuers:
            conditions.append(
                (f"issuer in {_listed(self.issuers)}", lambda p: p.issuer_name in self.issuers)
            )
        if self.scopes:
            conditions.append(
                (f"scopes all of {_listed(self.scopes)}", lambda p: self.scopes <= p.scope_set)
            )
        if self.any_scopes:
            conditions.append(
                (
                    f"any_scopes one of {_listed(self.any_scopes)}",
                    lambda p: not self.any_scopes.isdisjoint(p.scope_set),
                )
            )
        if self.roles:
            conditions.append(
                (f"roles all of {_listed(self.roles)}", lambda p: self.roles <= p.role_set)
            )
        if self.any_roles:
            conditions.append(
                (
                    f"any_roles one of {_listed(self.any_roles)}",
                    lambda p: not self.any_roles.isdisjoint(p.role_set),
                )
            )
        for rule in self.claims:
            shown = ", ".join(repr(value) for value in rule.allowed)
            conditions.append((f"claim {format_claim_path(rule.path)} in [{shown}]", rule.holds))
        object.__setattr__(self, "conditions", tuple(conditions))


def authorize(requirement: Requirement, principal: Principal) -> None:
    """Return if every condition holds; InsufficientScope naming the first failure otherwise.

    The log detail adds what the (verified) token did hold, bounded: "needs admin" alone does
    not say whether the client asked its IdP for the wrong scopes or the IdP ignored it."""
    failure = first_failure(requirement, principal)
    if failure is not None:
        held = (
            f"token scopes {quoted_list(principal.scopes, most=20, limit=64)},"
            f" roles {quoted_list(principal.roles, most=20, limit=64)}"
        )
        raise InsufficientScope(
            requirement.challenge_scopes, f"requirement not met: {failure}; {held}"
        )


def first_failure(requirement: Requirement, principal: Principal) -> str | None:
    """The label of the first condition that fails (config names only, never token values)."""
    for label, holds in requirement.conditions:
        if not holds(principal):
            return label
    return None


def evaluate(requirement: Requirement, principal: Principal) -> list[tuple[str, bool]]:
    """Every condition with its outcome, for `m2mgate explain`."""
    return [(label, holds(principal)) for label, holds in requirement.conditions]
