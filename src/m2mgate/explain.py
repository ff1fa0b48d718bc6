"""`m2mgate explain`: the gateway's decision for one request, step by step, without traffic.

It builds the same decision stack as the running gateway (`config/gatekeeper.py`) and calls
the same `Gatekeeper.decide` with a `Trace`, so what it reports is what the gateway would do.
Keys come from the issuers' JWKS (online) or from `--jwks` files (offline), through the same
`KeyCache` and key hygiene as the gateway's.

This is an operator's tool run with a token the operator holds: unlike the gateway's error
responses, its output shows claim values (that is its purpose). It never prints the token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from m2mgate.auth.policy import evaluate
from m2mgate.auth.principal import Principal
from m2mgate.auth.token_parsing import UnverifiedToken
from m2mgate.auth.trace import Step, Trace
from m2mgate.auth.verifier import IssuerPolicy
from m2mgate.config.compiling import IssuerSettings, Settings
from m2mgate.config.gatekeeper import build_gatekeeper
from m2mgate.decision import DecisionRecord
from m2mgate.errors import GatewayError, KeysUnavailable
from m2mgate.jose import VerificationKey
from m2mgate.keys.cache import KeyCache
from m2mgate.keys.fetcher import FetchFailed, new_session
from m2mgate.keys.keyset import InvalidKeySet, build_keyset
from m2mgate.keys.source import FetchedKeys, KeySource
from m2mgate.routing import Route


@dataclass
class Explanation:
    method: str
    path: str
    trace: Trace
    record: DecisionRecord
    error: GatewayError | None
    requirements: list[tuple[str, bool]] | None
    key_problems: dict[str, str]

    @property
    def is_allowed(self) -> bool:
        return self.error is None


class _FetchNotes:
    """KeyCache observer: remembers why a key fetch failed, to explain a 503."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}

    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None:
        if fetched is None:
            self.problems[issuer_name] = f"{result}: {detail}"


def offline_fetch(path: Path, issuer: IssuerSettings) -> Callable[[], Awaitable[FetchedKeys]]:
    async def fetch() -> FetchedKeys:
        try:
            document = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
            keyset = build_keyset(document, issuer.source.algorithms)
        except OSError as error:
            raise FetchFailed("network_error", f"cannot read {path}: {error.strerror}") from None
        except ValueError:
            raise FetchFailed("invalid_json", f"{path} is not JSON") from None
        except InvalidKeySet as error:
            raise FetchFailed(error.result, f"{path}: {error}") from None
        return FetchedKeys(keyset, None, str(path))

    return fetch


async def explain(
    settings: Settings,
    method: str,
    path: str,
    token: str | None,
    jwks_files: Mapping[str | None, Path] | None = None,
) -> Explanation:
    """Decide one request. `jwks_files`: issuer name (or None for every issuer) -> JWKS file."""
    notes = _FetchNotes()
    session: aiohttp.ClientSession | None = None

    def current_session() -> aiohttp.ClientSession:
        nonlocal session
        if session is None:
            session = new_session()
        return session

    caches: dict[str, KeyCache] = {}
    for issuer in settings.issuers:
        name = issuer.policy.name
        offline = (jwks_files or {}).get(name) or (jwks_files or {}).get(None)
        if offline is not None:
            fetch = offline_fetch(offline, issuer)
        elif jwks_files:
            fetch = _no_keys(name)
        else:
            fetch = KeySource(issuer.source, current_session, time.monotonic).fetch
        caches[name] = KeyCache(name, fetch, issuer.cache, notes, time.monotonic)

    async def keys_for(name: str, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
        cache = caches[name]
        if cache.status().last_result is None:
            await cache.refresh()  # fetch only the issuer this token names, once
        return await cache.keys_for(kid, alg)

    gatekeeper = build_gatekeeper(settings, keys_for)
    trace = Trace()
    record = DecisionRecord()
    authorization = [] if token is None else [f"Bearer {token}"]
    error: GatewayError | None = None
    try:
        await gatekeeper.decide(method, path, authorization, record, trace)
    except GatewayError as caught:
        error = caught
    finally:
        if session is not None:
            await session.close()
    requirements = None
    if record.principal is not None and record.route is not None and record.route.requirement:
        requirements = evaluate(record.route.requirement, record.principal)
    return Explanation(method, path, trace, record, error, requirements, notes.problems)


def _no_keys(name: str) -> Callable[[], Awaitable[FetchedKeys]]:
    async def fetch() -> FetchedKeys:
        raise FetchFailed("network_error", f"no --jwks file given for issuer {name}")

    return fetch


# --- rendering ----------------------------------------------------------------------------------


def _relative(seconds: float) -> str:
    sign = "in " if seconds >= 0 else ""
    suffix = "" if seconds >= 0 else " ago"
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
    return f"{sign}{text}{suffix}"


def _token_of(trace: Trace) -> UnverifiedToken | None:
    for step in trace.steps:
        if step.name == "parse" and step.is_ok:
            return step.value  # type: ignore[no-any-return]
    return None


def _issuer_of(trace: Trace) -> IssuerPolicy | None:
    for step in trace.steps:
        if step.name == "issuer" and step.is_ok:
            return step.value  # type: ignore[no-any-return]
    return None


def describe_step(step: Step, trace: Trace, explanation: Explanation) -> str:
    """One line of human detail for a step (its value on success, its reason on failure)."""
    if not step.is_ok:
        error = step.error
        if error is None:  # pragma: no cover - failed steps always carry their error
            return "failed"
        detail = error.detail or error.description
        if isinstance(error, KeysUnavailable):
            problem = explanation.key_problems.get(error.issuer_name or "", "")
            detail = problem or detail
        return f"{error.reason.value}: {detail}"
    token = _token_of(trace)
    value = step.value
    if step.name == "path":
        return str(value)
    if step.name == "route":
        return describe_route(value)
    if step.name == "credentials":
        return f"Bearer token, {len(value)} characters"
    if step.name == "parse" and token is not None:
        typ = token.header.get("typ", "-")
        return f"alg {token.algorithm}, kid {token.key_id or '-'}, typ {typ}"
    if step.name == "issuer":
        return f"{value.name} (iss {value.issuer})"
    if step.name == "algorithm" and token is not None:
        return f"{token.algorithm} is on the issuer's allowlist"
    if step.name == "token_type":
        issuer = _issuer_of(trace)
        if issuer is not None and issuer.guard.header_typ is not None:
            return (
                f"header typ {token.header.get('typ') if token else '-'!r} is an access token type"
            )
        return "no token-type rule for this issuer's preset"
    if step.name == "times" and token is not None:
        return _describe_times(token, float(value))
    if step.name == "audience" and token is not None:
        aud = token.claims.get("aud")
        return f"aud {aud!r} accepted" if aud is not None else "not checked (audiences: [])"
    if step.name == "client":
        return f"client id {value}"
    if step.name == "principal":
        return _describe_principal(value)
    if step.name == "key":
        return ", ".join(f"kid {key.kid or '-'} ({key.algorithm})" for key in value)
    if step.name == "signature":
        return f"valid (kid {value.kid or '-'}, {value.algorithm})"
    if step.name == "policy":
        return "every requirement holds"
    return "ok"


def _describe_principal(principal: Principal) -> str:
    def listed(values: tuple[str, ...]) -> str:
        return " ".join(values) if values else "-"

    return (
        f"scopes {listed(principal.scopes)}; roles {listed(principal.roles)}; "
        f"tenant {principal.tenant or '-'}"
    )


def _describe_times(token: UnverifiedToken, now: float) -> str:
    parts = [f"exp {_relative(float(token.claims['exp']) - now)}"]
    for name in ("iat", "nbf"):
        if name in token.claims:
            parts.append(f"{name} {_relative(float(token.claims[name]) - now)}")
    return ", ".join(parts)


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
    record = explanation.record
    if error is None:
        reason = record.reason.value if record.reason is not None else "ok"
        return {"allow": True, "status": None, "error": None, "reason": reason, "detail": None}
    return {
        "allow": False,
        "status": error.status,
        "error": error.error,
        "reason": error.reason.value,
        "detail": error.detail or error.description,
    }


def as_json(explanation: Explanation) -> dict[str, Any]:
    record = explanation.record
    route = record.route
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
                "detail": describe_step(step, explanation.trace, explanation),
            }
            for step in explanation.trace.steps
        ],
        "principal": principal_json(record.principal) if record.principal else None,
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
        detail = describe_step(step, explanation.trace, explanation)
        lines.append(f"  {mark} {step.name:<12} {detail}")
    principal = explanation.record.principal
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
