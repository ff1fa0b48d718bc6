"""`m2mgate explain`: the gateway's decision for one request, step by step, without traffic.

It builds the same decision stack as the running gateway (`config/gatekeeper.py`) and calls
the same `Gatekeeper.decide` with a `Trace`, so what it reports is what the gateway would do.
Keys come from the issuers' JWKS (online) or from `--jwks` files (offline), through the same
`KeyRegistry`, `KeyCache` and key hygiene as the gateway's.

This is an operator's tool run with a token the operator holds: unlike the gateway's error
responses, its output shows claim values (that is its purpose). It never prints the token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path

from m2mgate.auth.policy import evaluate
from m2mgate.auth.trace import Trace
from m2mgate.config.compiling import Settings
from m2mgate.config.gatekeeper import build_gatekeeper
from m2mgate.explain_output import Explanation, as_json, as_text
from m2mgate.jose import VerificationKey
from m2mgate.keys.fetcher import FetchFailed
from m2mgate.keys.keyset import InvalidKeySet, build_keyset
from m2mgate.keys.registry import Fetch, KeyRegistry
from m2mgate.keys.source import FetchedKeys, KeySourceSettings
from m2mgate.request_path import split_target

__all__ = ["Explanation", "as_json", "as_text", "explain", "offline_fetch"]


class _FetchNotes:
    """KeyCache observer: remembers why a key fetch failed, to explain a 503."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}

    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None:
        if fetched is None:
            self.problems[issuer_name] = f"{result}: {detail}"


def offline_fetch(path: Path, algorithms: frozenset[str]) -> Fetch:
    async def fetch() -> FetchedKeys:
        try:
            document = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
            keyset = build_keyset(document, algorithms)
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
    files = jwks_files or {}

    def fetch_for(name: str, source: KeySourceSettings) -> Fetch:
        offline = files.get(name) or files.get(None)
        if offline is not None:
            return offline_fetch(offline, source.algorithms)
        if files:
            return _no_keys(name)
        return registry.fetch_from_issuer(name, source)

    registry = KeyRegistry(notes, time.monotonic, fetch_for)
    caches = registry.reconcile({issuer.policy.name: issuer for issuer in settings.issuers})

    async def keys_for(name: str, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
        cache = caches[name]
        if cache.status().last_result is None:
            await cache.refresh()  # fetch only the issuer this token names, once
        return await cache.keys_for(kid, alg)

    gatekeeper = build_gatekeeper(settings, keys_for)
    trace = Trace()
    authorization = [] if token is None else [f"Bearer {token}"]
    registry.open()
    raw_path, query = split_target(path)
    try:
        decision = await gatekeeper.decide(method, raw_path, query, authorization, trace)
    finally:
        await registry.close()
    requirements = None
    principal, route = decision.principal, decision.route
    if principal is not None and route is not None and route.requirement:
        requirements = evaluate(route.requirement, principal)
    return Explanation(method, path, trace, decision, requirements, notes.problems)


def _no_keys(name: str) -> Fetch:
    async def fetch() -> FetchedKeys:
        raise FetchFailed("network_error", f"no --jwks file given for issuer {name}")

    return fetch
