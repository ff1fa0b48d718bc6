"""Every configured issuer's key cache, kept in step with the config: the one place that
creates, refreshes and drops them.

- `reconcile(issuers)` at start and on each reload keeps the cache of every issuer whose key
  source and cache policy are unchanged (no refetch storm on reload), creates caches for new or
  changed issuers and drops those of removed ones. It returns that config's `IssuerKeys`, the
  map its verifier and token cache ask: a request pinned to a config uses that config's keys.
- Background refreshers run from `start_refreshing()` until `close()`.
- Ready once every current issuer has had a usable key set.
- The fetch is injected: the gateway fetches from the issuers (`KeySource`, over the one
  session this registry owns), `m2mgate explain` may read JWKS files instead (offline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

import aiohttp

from m2mgate.jose import VerificationKey
from m2mgate.keys.cache import CachePolicy, FetchObserver, KeyCache, KeyCacheStatus
from m2mgate.keys.fetcher import new_session
from m2mgate.keys.source import FetchedKeys, KeySource, KeySourceSettings

Fetch = Callable[[], Awaitable[FetchedKeys]]


class IssuerKeySettings(Protocol):
    """What the registry needs of an issuer's config (config's IssuerSettings has it)."""

    @property
    def source(self) -> KeySourceSettings: ...

    @property
    def cache(self) -> CachePolicy: ...


class IssuerKeys(Mapping[str, KeyCache]):
    """One config's issuer name -> key cache map, fixed when that config is applied."""

    __slots__ = ("_caches",)

    def __init__(self, caches: Mapping[str, KeyCache]) -> None:
        self._caches = dict(caches)

    def __getitem__(self, issuer_name: str) -> KeyCache:
        return self._caches[issuer_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._caches)

    def __len__(self) -> int:
        return len(self._caches)

    async def keys_for(
        self, issuer_name: str, kid: str | None, algorithm: str
    ) -> tuple[VerificationKey, ...]:
        return await self._caches[issuer_name].keys_for(kid, algorithm)

    def holds(self, issuer_name: str, key: VerificationKey) -> bool:
        """Is this exact key in the issuer's usable key set? (The token cache asks.)"""
        cache = self._caches.get(issuer_name)
        return cache is not None and cache.holds(key)


class KeyRegistry:
    def __init__(
        self,
        observer: FetchObserver,
        clock: Callable[[], float],
        fetch_for: Callable[[str, KeySourceSettings], Fetch] | None = None,
    ) -> None:
        self._observer = observer
        self._clock = clock
        self._fetch_for = fetch_for or self.fetch_from_issuer
        self._session: aiohttp.ClientSession | None = None
        self._caches: dict[str, KeyCache] = {}
        self._settings: dict[str, IssuerKeySettings] = {}
        self._refreshers: dict[str, asyncio.Task[None]] = {}
        self._is_refreshing = False
        self._ready = asyncio.Event()

    @property
    def caches(self) -> Mapping[str, KeyCache]:
        """The current config's caches."""
        return self._caches

    def fetch_from_issuer(self, issuer_name: str, source: KeySourceSettings) -> Fetch:
        return KeySource(source, self._current_session, self._clock).fetch

    def _current_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("gateway not started")
        return self._session

    # --- reconciling with the config ------------------------------------------------------------

    def reconcile(self, issuers: Mapping[str, IssuerKeySettings]) -> IssuerKeys:
        """Keep the cache of every issuer whose key source and cache policy are unchanged;
        create caches for new or changed issuers, drop those of removed ones."""
        for name in list(self._caches):
            old, new = self._settings[name], issuers.get(name)
            if new is None or (new.source, new.cache) != (old.source, old.cache):
                self._drop(name)
        for name, issuer in issuers.items():
            self._settings[name] = issuer
            if name not in self._caches:
                fetch = self._fetch_for(name, issuer.source)
                self._caches[name] = KeyCache(
                    name, fetch, issuer.cache, observer=self, clock=self._clock
                )
                if self._is_refreshing:  # running: start its refresher now
                    self._start_refresher(name)
        return IssuerKeys(self._caches)

    def _drop(self, name: str) -> None:
        self._caches.pop(name, None)
        self._settings.pop(name, None)
        task = self._refreshers.pop(name, None)
        if task is not None:
            task.cancel()

    # --- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the fetch session (no I/O until a fetch asks)."""
        self._session = new_session()

    def start_refreshing(self) -> None:
        self._is_refreshing = True
        for name in self._caches:
            self._start_refresher(name)

    def _start_refresher(self, name: str) -> None:
        self._refreshers[name] = asyncio.get_running_loop().create_task(self._caches[name].run())

    async def close(self) -> None:
        """Refreshers first, then fetches under way, then the session: nothing is left to fail
        on a closed session with an exception nobody retrieves."""
        self._is_refreshing = False
        tasks = list(self._refreshers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshers.clear()
        for cache in self._caches.values():
            await cache.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- status ---------------------------------------------------------------------------------

    def statuses(self) -> list[KeyCacheStatus]:
        return [cache.status() for cache in self._caches.values()]

    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None:
        """KeyCache observer: report the fetch, then note readiness."""
        self._observer.fetch_finished(issuer_name, result, detail, fetched)
        if all(status.is_ready for status in self.statuses()):
            self._ready.set()

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until every issuer has had a usable key set (the first time)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True
