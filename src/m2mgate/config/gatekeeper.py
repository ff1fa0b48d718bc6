"""Compiled settings into the decision stack: the gateway and `m2mgate explain` both build it
here. Config sits above the decision in the package graph: `decision` never imports config."""

from __future__ import annotations

import time
from collections.abc import Callable

from m2mgate.auth.token_cache import VerifiedTokenCache
from m2mgate.auth.verifier import KeyProvider, TokenVerifier
from m2mgate.config.compiling import Settings
from m2mgate.decision import Gatekeeper


def build_gatekeeper(
    settings: Settings,
    keys: KeyProvider,
    wall_clock: Callable[[], float] = time.time,
    token_cache: VerifiedTokenCache | None = None,
) -> Gatekeeper:
    """The decision stack for a config. `token_cache` must be new for each config (see
    auth/token_cache.py)."""
    verifier = TokenVerifier(
        {issuer.policy.issuer: issuer.policy for issuer in settings.issuers},
        keys,
        wall_clock,
        token_cache,
        settings.principal_claims,
    )
    return Gatekeeper(settings.routes, verifier, settings.max_token_bytes)
