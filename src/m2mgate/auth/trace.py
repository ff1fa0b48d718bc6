"""A record of each decision step, for `m2mgate explain`. The proxy passes no trace (None)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from m2mgate.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    is_ok: bool
    value: Any = None  # what the step produced (a route, an issuer, keys, ...)
    error: GatewayError | None = None


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)

    def passed(self, name: str, value: Any = None) -> None:
        self.steps.append(Step(name, True, value))

    def failed(self, name: str, error: GatewayError) -> None:
        self.steps.append(Step(name, False, error=error))


T = TypeVar("T")


def traced(trace: Trace | None, name: str, check: Callable[..., T], *args: Any) -> T:
    """Run one check; with a trace, record its outcome. Without one this is a plain call."""
    if trace is None:
        return check(*args)
    try:
        result = check(*args)
    except GatewayError as error:
        trace.failed(name, error)
        raise
    trace.passed(name, result)
    return result
