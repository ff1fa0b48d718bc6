"""The named steps of a decision, and an observer that sees each one (`m2mgate explain`).

The proxy passes no observer (None): the steps run as plain calls. `explain` passes a `Trace`,
which records each step's result, so what it reports is what the gateway's own code did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from m2mgate.errors import GatewayError


class Step(StrEnum):
    """Every check of a decision, in the order the gateway runs them; the value is the name
    `explain` prints."""

    PATH = "path"
    ROUTE = "route"
    CREDENTIALS = "credentials"
    PARSE = "parse"
    ISSUER = "issuer"
    ALGORITHM = "algorithm"
    TOKEN_TYPE = "token_type"  # noqa: S105 - a step name, not a secret
    TIMES = "times"
    AUDIENCE = "audience"
    CLIENT = "client"
    PRINCIPAL = "principal"
    KEY = "key"
    SIGNATURE = "signature"
    # A repeat token: the verified-token cache answered for every token step above.
    CACHED = "cached"
    POLICY = "policy"


class Observer(Protocol):
    def __call__(self, step: Step, value: Any, error: GatewayError | None) -> None:
        """One step ran: what it produced (`error` None), or the error it refused with."""


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    value: Any = None  # what the step produced (a route, an issuer, keys, ...)
    error: GatewayError | None = None

    @property
    def is_ok(self) -> bool:
        return self.error is None

    @property
    def name(self) -> str:
        return self.step.value


@dataclass
class Trace:
    """An observer that keeps every step's result, in order."""

    steps: list[StepResult] = field(default_factory=list)

    def __call__(self, step: Step, value: Any, error: GatewayError | None) -> None:
        self.steps.append(StepResult(step, value, error))

    def value_of(self, step: Step) -> Any:
        """What a step that passed produced (None if it did not run or failed)."""
        for result in self.steps:
            if result.step is step and result.is_ok:
                return result.value
        return None


T = TypeVar("T")


def observed(observer: Observer | None, step: Step, check: Callable[..., T], *args: Any) -> T:
    """Run one check; with an observer, tell it the outcome. Without one this is a plain call
    (the proxy's case): no observer call, no allocation beyond the arguments."""
    if observer is None:
        return check(*args)
    try:
        result = check(*args)
    except GatewayError as error:
        observer(step, None, error)
        raise
    observer(step, result, None)
    return result
