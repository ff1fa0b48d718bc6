"""What `m2mgate explain` found, and its text and JSON renderings.

Each step is described from its own result; a step reads what earlier steps found (the parsed
token, the issuer) from the trace. Descriptions are chosen by `Step`, never by a step's name.
It shows claim values (an operator's tool, with the operator's token); never the token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from m2mgate.auth.principal import Principal
from m2mgate.auth.token_parsing import UnverifiedToken
from m2mgate.auth.trace import Step, StepResult, Trace
from m2mgate.auth.verifier import IssuerPolicy
from m2mgate.decision import Decision
from m2mgate.errors import GatewayError, KeysUnavailable
from m2mgate.routing import Route


@dataclass
class Explanation:
    method: str
    path: str
    trace: Trace
    decision: Decision
    requirements: list[tuple[str, bool]] | None
    key_problems: dict[str, str]

    @property
    def is_allowed(self) -> bool:
        return self.decision.is_allowed

    @property
    def error(self) -> GatewayError | None:
        return self.decision.error


def _relative(seconds: float) -> str:
    sign = "in " if seconds >= 0 else ""
    suffix = "" if seconds >= 0 else " ago"
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
    return f"{sign}{text}{suffix}"


def describe_step(result: StepResult, explanation: Explanation) -> str:
    """One line of human detail for a step (its value on success, its reason on failure)."""
    error = result.error
    if error is not None:
        detail = error.detail or error.description
        if isinstance(error, KeysUnavailable):
            problem = explanation.key_problems.get(explanation.decision.issuer_name or "", "")
            detail = problem or detail
        return f"{error.reason.value}: {detail}"
    return _DESCRIBE[result.step](_Facts(explanation.trace), result.value)


class _Facts:
    """What the earlier steps found, for describing a later one."""

    def __init__(self, trace: Trace) -> None:
        self.token: UnverifiedToken | None = trace.value_of(Step.PARSE)
        self.issuer: IssuerPolicy | None = trace.value_of(Step.ISSUER)


def _describe_parse(facts: _Facts, token: UnverifiedToken) -> str:
    typ = token.header.get("typ", "-")
    return f"alg {token.algorithm}, kid {token.key_id or '-'}, typ {typ}"


def _describe_token_type(facts: _Facts, _: object) -> str:
    if facts.issuer is not None and facts.issuer.guard.header_typ is not None:
        typ = facts.token.header.get("typ") if facts.token else "-"
        return f"header typ {typ!r} is an access token type"
    return "no token-type rule for this issuer's preset"


def _describe_audience(facts: _Facts, _: object) -> str:
    if facts.token is None:  # pragma: no cover - the audience step runs after parsing
        return "ok"
    aud = facts.token.claims.get("aud")
    return f"aud {aud!r} accepted" if aud is not None else "not checked (audiences: [])"


def _describe_algorithm(facts: _Facts, _: object) -> str:
    algorithm = facts.token.algorithm if facts.token else "-"
    return f"{algorithm} is on the issuer's allowlist"


def _describe_times(facts: _Facts, now: float) -> str:
    if facts.token is None:  # pragma: no cover - the times step runs after parsing
        return "ok"
    claims = facts.token.claims
    parts = [f"exp {_relative(float(claims['exp']) - now)}"]
    for name in ("iat", "nbf"):
        if name in claims:
            parts.append(f"{name} {_relative(float(claims[name]) - now)}")
    return ", ".join(parts)


_DESCRIBE: dict[Step, Callable[[_Facts, Any], str]] = {
    Step.PATH: lambda _, path: str(path),
    Step.ROUTE: lambda _, route: describe_route(route),
    Step.CREDENTIALS: lambda _, token: f"Bearer token, {len(token)} characters",
    Step.PARSE: _describe_parse,
    Step.ISSUER: lambda _, issuer: f"{issuer.name} (iss {issuer.issuer})",
    Step.ALGORITHM: _describe_algorithm,
    Step.TOKEN_TYPE: _describe_token_type,
    Step.TIMES: _describe_times,
    Step.AUDIENCE: _describe_audience,
    Step.CLIENT: lambda _, client_id: f"client id {client_id}",
    Step.PRINCIPAL: lambda _, principal: _describe_principal(principal),
    Step.KEY: lambda _, keys: ", ".join(f"kid {k.kid or '-'} ({k.algorithm})" for k in keys),
    Step.SIGNATURE: lambda _, key: f"valid (kid {key.kid or '-'}, {key.algorithm})",
    Step.CACHED: lambda _, principal: f"cache hit: {_describe_principal(principal)}",
    Step.POLICY: lambda _, __: "every requirement holds",
}


def _describe_principal(principal: Principal) -> str:
    def listed(values: tuple[str, ...]) -> str:
        return " ".join(values) if values else "-"

    return (
        f"scopes {listed(principal.scopes)}; roles {listed(principal.roles)}; "
        f"tenant {principal.tenant or '-'}"
    )


def describe_route(route: Route) -> str:
    methods = " ".join(sorted(route.methods)) if route.methods else "any method"
    kind = "deny" if route.is_deny else "public" if route.is_public else "protected"
    return f"{route.name} ({route.pattern.text}, {methods}, {kind})"


def principal_json(principal: Principal) -> dict[str, Any]:
    return {
        "issuer": principal.issuer_name,
        "iss": principal.issuer,
        "client_id": principal.client_id,
        "subject": principal.subject,
        "scopes": list(principal.scopes),
        "roles": list(principal.roles),
        "tenant": principal.tenant,
        "expires_at": datetime.fromtimestamp(principal.expires_at, UTC).isoformat(),
    }


def decision_json(explanation: Explanation) -> dict[str, Any]:
    error = explanation.error
    if error is None:
        reason = explanation.decision.reason.value
        return {"allow": True, "status": None, "error": None, "reason": reason, "detail": None}
    return {
        "allow": False,
        "status": error.status,
        "error": error.error,
        "reason": error.reason.value,
        "detail": error.detail or error.description,
    }


def as_json(explanation: Explanation) -> dict[str, Any]:
    decision = explanation.decision
    route = decision.route
    return {
        "request": {"method": explanation.method, "path": explanation.path},
        "route": None
        if route is None
        else {
            "name": route.name,
            "path": route.pattern.text,
            "methods": sorted(route.methods) if route.methods else None,
            "public": route.is_public,
            "deny": route.is_deny,
        },
        "steps": [
            {
                "step": step.name,
                "ok": step.is_ok,
                "detail": describe_step(step, explanation),
            }
            for step in explanation.trace.steps
        ],
        "principal": principal_json(decision.principal) if decision.principal else None,
        "requirements": None
        if explanation.requirements is None
        else [{"condition": label, "ok": ok} for label, ok in explanation.requirements],
        "decision": decision_json(explanation),
    }


def as_text(explanation: Explanation) -> str:
    lines = [f"request      {explanation.method} {explanation.path}", ""]
    lines.append("steps")
    for step in explanation.trace.steps:
        mark = "ok  " if step.is_ok else "FAIL"
        detail = describe_step(step, explanation)
        lines.append(f"  {mark} {step.name:<12} {detail}")
    principal = explanation.decision.principal
    if principal is not None:
        lines += ["", "principal"]
        for key, value in principal_json(principal).items():
            shown = " ".join(value) if isinstance(value, list) else value
            lines.append(f"  {key:<11} {shown if shown not in (None, '') else '-'}")
    if explanation.requirements is not None:
        lines += ["", "requirements"]
        for label, ok in explanation.requirements:
            lines.append(f"  {'ok  ' if ok else 'FAIL'} {label}")
    decision = decision_json(explanation)
    lines.append("")
    if decision["allow"]:
        lines.append(f"decision     ALLOW ({decision['reason']}): forwarded to the upstream")
    else:
        lines.append(
            f"decision     DENY {decision['status']} {decision['error']} "
            f"(reason {decision['reason']})"
        )
    return "\n".join(lines)
