"""One config version as the request path uses it (`Runtime`), and the switch that swaps in a
new one on reload (`Runtimes`).

A request pins the runtime current when it starts and finishes under it, even if a reload
swaps in a new one meanwhile. A runtime holds everything its config decides with: the
gatekeeper, the upstream pool, its issuers' key caches and its own token cache, so a pinned
request uses its own config's keys by construction. A retired runtime reports when its last
request has left, so the resources only it used (an upstream pool) can be closed without
cutting anyone off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from m2mgate.auth.token_cache import TokenCacheStats, VerifiedTokenCache
from m2mgate.config.compiling import Settings
from m2mgate.config.gatekeeper import build_gatekeeper
from m2mgate.decision import Gatekeeper
from m2mgate.keys.registry import IssuerKeys, KeyRegistry
from m2mgate.proxy.forwarder import UpstreamForwarder


@dataclass(eq=False)
class Runtime:
    settings: Settings
    gatekeeper: Gatekeeper
    forwarder: UpstreamForwarder
    keys: IssuerKeys
    in_flight: int = 0
    is_retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.is_retired and self.in_flight == 0:
            self.drained.set()

    def retire(self) -> None:
        self.is_retired = True
        if self.in_flight == 0:
            self.drained.set()


class Runtimes:
    """The runtime of the newest config; `swap` builds the next one and retires the old."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyRegistry,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._wall_clock = wall_clock
        self.token_cache_stats = TokenCacheStats()  # across configs: counters never go back
        self.current = self._build(settings, UpstreamForwarder(settings.upstream))
        self._retired: list[Runtime] = []  # retired, with requests still in flight

    def sharing(self, forwarder: UpstreamForwarder) -> list[Runtime]:
        """The retired runtimes still serving requests through `forwarder`: it may be closed
        only once they have all drained (A -> B kept A's pool, B -> C replaced it: A's
        requests still use it after B has drained)."""
        return [runtime for runtime in self._retired if runtime.forwarder is forwarder]

    async def swap(self, settings: Settings) -> Runtime:
        """Make a runtime for `settings` current; return the old one, retired. The upstream
        pool is kept when the upstream did not change."""
        old = self.current
        if settings.upstream == old.settings.upstream:
            forwarder = old.forwarder
        else:
            forwarder = UpstreamForwarder(settings.upstream)
            await forwarder.start()
        self.current = self._build(settings, forwarder)
        old.retire()
        self._retired = [runtime for runtime in self._retired if not runtime.drained.is_set()]
        self._retired.append(old)
        return old

    def _build(self, settings: Settings, forwarder: UpstreamForwarder) -> Runtime:
        keys = self._keys.reconcile({issuer.policy.name: issuer for issuer in settings.issuers})
        # A fresh token cache with every config: entries built under an old issuer policy
        # (audiences, allowlist, claim layout) must never answer for the new one.
        cache = VerifiedTokenCache(
            settings.token_cache_entries,
            keys.holds,
            self.token_cache_stats,
            settings.token_cache_max_bytes,
        )
        gatekeeper = build_gatekeeper(settings, keys.keys_for, self._wall_clock, cache)
        return Runtime(settings, gatekeeper, forwarder, keys)

    def token_cache_size(self) -> int:
        cache = self.current.gatekeeper.verifier.cache
        return len(cache) if cache is not None else 0

    def token_cache_bytes(self) -> int:
        cache = self.current.gatekeeper.verifier.cache
        return cache.size_bytes if cache is not None else 0
