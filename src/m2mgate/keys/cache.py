"""One issuer's key cache: the JWKS lifecycle every JWT gateway has to get right.

- Loaded at start-up by the background loop; until the first success the issuer is not ready
  and its requests get 503 with Retry-After (never a wait on the IdP inside a request).
- Fresh for a TTL from `Cache-Control: max-age`, clamped (`TtlBounds`); refreshed in the
  background at ~80% of it, so a steady key set never expires under traffic.
- Unknown `kid` (a rotation we have not seen yet): at most one refetch per cooldown, counted from
  the last *attempt* of any kind. Single-flight: concurrent misses share one fetch. Until the
  cooldown passes, still-unknown kids are refused without a fetch. Threat: a client spraying
  random kids must not turn the gateway into a JWKS flood against the IdP.
- A failed or garbage fetch keeps the last good set, used up to `max_stale_seconds` past its
  expiry; retries back off exponentially (capped at the cooldown) with jitter.

No aiohttp here: the fetch is an injected coroutine (`KeySource.fetch`), the clock is injected,
so every branch is testable without sockets or sleeping.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from m2mgate.detail_text import quoted, quoted_list
from m2mgate.errors import DisallowedAlgorithm, KeysUnavailable, UnknownKey
from m2mgate.jose import VerificationKey
from m2mgate.keys.fetcher import FetchFailed
from m2mgate.keys.keyset import KeySet
from m2mgate.keys.source import FetchedKeys
from m2mgate.keys.ttl import TtlBounds

REFRESH_AT_FRACTION = 0.8  # refresh when this share of the TTL has passed (minus jitter)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl: TtlBounds
    refetch_cooldown_seconds: float
    max_stale_seconds: float


class FetchObserver(Protocol):
    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class KeyCacheStatus:
    issuer_name: str
    is_ready: bool
    key_count: int
    age_seconds: float | None  # since the last successful fetch
    is_stale: bool  # past its TTL (still used while within max_stale_seconds)
    last_result: str | None
    consecutive_failures: int


class KeyCache:
    def __init__(
        self,
        issuer_name: str,
        fetch: Callable[[], Awaitable[FetchedKeys]],
        policy: CachePolicy,
        observer: FetchObserver,
        clock: Callable[[], float],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.issuer_name = issuer_name
        self._fetch = fetch
        self._policy = policy
        self._observer = observer
        self._clock = clock
        self._jitter = jitter
        self._keyset: KeySet | None = None
        self._fetched_at = 0.0
        self._ttl = 0.0
        self._next_due = 0.0  # when the background loop fetches next (clock time)
        self._last_attempt: float | None = None
        self._last_result: str | None = None
        self._failures = 0
        self._inflight: asyncio.Task[bool] | None = None

    # --- request path ---------------------------------------------------------------------------

    def usable_keyset(self) -> KeySet | None:
        if self._keyset is None:
            return None
        if self._clock() > self._fetched_at + self._ttl + self._policy.max_stale_seconds:
            return None  # too stale to trust: fail closed
        return self._keyset

    def holds(self, key: VerificationKey) -> bool:
        """Is this exact key in the usable key set? (The token cache asks on every hit.)"""
        keyset = self.usable_keyset()
        return keyset is not None and keyset.holds(key)

    async def keys_for(self, kid: str | None, algorithm: str) -> tuple[VerificationKey, ...]:
        """Keys that may verify a token with this kid/alg, refetching at most per cooldown."""
        keyset = self.usable_keyset()
        if keyset is None:
            raise KeysUnavailable(
                self.retry_after_seconds(),
                f"no usable keys for {self.issuer_name} (last fetch: {self._last_result or 'none'}"
                f", {self._failures} failures in a row)",
            )
        found = keyset.candidates(kid, algorithm)
        if found:
            return found
        if kid is not None and keyset.has_kid(kid):
            # Known key, other algorithm: an algorithm-substitution attempt, not a rotation.
            raise DisallowedAlgorithm(
                f"token alg {quoted(algorithm, 32)} does not match the algorithm of key"
                f" {quoted(kid, 100)}"
            )
        if not await self._refetch_for_unknown_key():
            raise UnknownKey(_no_key(keyset, kid, algorithm, "refetch cooldown active"))
        keyset = self.usable_keyset()
        found = keyset.candidates(kid, algorithm) if keyset is not None else ()
        if not found:
            raise UnknownKey(_no_key(keyset, kid, algorithm, "not in the refreshed key set"))
        return found

    async def _refetch_for_unknown_key(self) -> bool:
        if self._inflight is not None:
            await asyncio.shield(self._inflight)  # a fetch is under way: share it
            return True
        since_attempt = self._clock() - (self._last_attempt or float("-inf"))
        if since_attempt < self._policy.refetch_cooldown_seconds:
            return False
        await self.refresh()
        return True

    # --- fetching -------------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch now, single-flight: callers arriving during a fetch share its outcome."""
        if self._inflight is None:
            task = asyncio.get_running_loop().create_task(self._fetch_once())
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        # shield: a cancelled request must not cancel the fetch other requests are awaiting.
        return await asyncio.shield(self._inflight)

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch_once(self) -> bool:
        self._last_attempt = self._clock()
        try:
            fetched = await self._fetch()
        except FetchFailed as error:
            self._failures += 1
            self._last_result = error.result
            backoff = min(2.0 ** (self._failures - 1), self._policy.refetch_cooldown_seconds)
            self._next_due = self._last_attempt + backoff * (0.8 + 0.2 * self._jitter())
            self._observer.fetch_finished(self.issuer_name, error.result, error.detail, None)
            return False
        self._keyset = fetched.keyset
        self._fetched_at = self._clock()
        self._ttl = self._policy.ttl.clamp(fetched.max_age)
        # Jitter spreads the refreshes of many sidecars that started together.
        self._next_due = self._fetched_at + self._ttl * (REFRESH_AT_FRACTION - 0.1 * self._jitter())
        self._failures = 0
        self._last_result = "ok"
        self._observer.fetch_finished(self.issuer_name, "ok", "", fetched)
        return True

    async def close(self) -> None:
        """Cancel a fetch under way. It is shielded from the callers that wait on it, so
        cancelling them leaves it running; at shutdown it would go on to fail on the closed
        session with an exception nobody retrieves."""
        task = self._inflight
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def next_refresh_in(self) -> float:
        """Seconds until the background loop should fetch again (0 = now)."""
        if self._last_attempt is None:
            return 0.0
        return max(0.0, self._next_due - self._clock())

    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.next_refresh_in()))

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Background loop: the first fetch at once, then refresh before expiry, forever."""
        while True:
            delay = self.next_refresh_in()
            if delay > 0:
                # Re-check after waking: a kid-miss refetch may have moved the schedule.
                await sleep(delay)
                continue
            await self.refresh()

    # --- reporting ------------------------------------------------------------------------------

    def status(self) -> KeyCacheStatus:
        now = self._clock()
        loaded = self._keyset is not None
        usable = self.usable_keyset()
        return KeyCacheStatus(
            issuer_name=self.issuer_name,
            is_ready=usable is not None,
            key_count=len(usable.keys) if usable is not None else 0,
            age_seconds=now - self._fetched_at if loaded else None,
            is_stale=loaded and now >= self._fetched_at + self._ttl,
            last_result=self._last_result,
            consecutive_failures=self._failures,
        )


def _no_key(keyset: KeySet | None, kid: str | None, algorithm: str, why: str) -> str:
    """Which kid was asked for and which the issuer publishes (kids are public, never secret;
    the token's kid is attacker text, so it is bounded and quoted)."""
    asked = f"kid {quoted(kid, 100)}" if kid is not None else "no kid"
    known = quoted_list(keyset.key_ids, most=5, limit=64) if keyset is not None else "[]"
    return f"{asked}, alg {quoted(algorithm, 32)}: no such key ({why}); key set kids {known}"
