"""What the gateway's parts report, turned into metrics and log events, each in one place.

- `KeyFetchReporter`: the key caches' observer, one metric and one log event per JWKS fetch.
- `ListenerEventReporter`: what the proxy listener reports (requests its parser refused, slow
  clients, refused connections).
- `flush_access_log`: the access log is batched; this bounds how long a line waits.
- `log_config_warnings`: each warning of the config now in use, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from m2mgate.keys.source import FetchedKeys
from m2mgate.observability.logging import AccessLog
from m2mgate.observability.metrics import NO_LABEL, GatewayMetrics


class KeyFetchReporter:
    """KeyCache observer: one metric and one log event per fetch."""

    def __init__(self, metrics: GatewayMetrics, log: Any) -> None:
        self._metrics = metrics
        self._log = log

    def fetch_finished(
        self, issuer_name: str, result: str, detail: str, fetched: FetchedKeys | None
    ) -> None:
        self._metrics.jwks_fetches.labels(issuer_name, result).inc()
        if fetched is not None:
            self._log.info(
                "jwks_fetched",
                issuer=issuer_name,
                jwks_uri=fetched.jwks_uri,
                keys=len(fetched.keyset.keys),
                key_ids=list(fetched.keyset.key_ids)[:20],
                skipped=list(fetched.keyset.skipped)[:20] or None,
                max_age=fetched.max_age,
            )
        else:
            self._log.warning("jwks_fetch_failed", issuer=issuer_name, result=result, detail=detail)


class ListenerEventReporter:
    """The proxy listener's events (server.http1_server.ServerEvents), counted and logged."""

    def __init__(self, metrics: GatewayMetrics, log: Any) -> None:
        self._metrics = metrics
        self._log = log

    def http_error(self, status: int, error: str, request_id: str) -> None:
        """A request the HTTP parser refused (the handler never ran): count and log it once.
        The parser's message quotes request bytes, so only the error's class is logged."""
        self._metrics.requests.labels(NO_LABEL, "OTHER", str(status)).inc()
        self._metrics.client_errors.labels("bad_http").inc()
        self._log.info("http_error", request_id=request_id, status=status, error=error)

    def slow_client(self) -> None:
        self._metrics.client_errors.labels("slow_client").inc()

    def connection_refused(self) -> None:
        self._metrics.client_errors.labels("over_capacity").inc()


async def flush_access_log(access_log: AccessLog, interval_seconds: float) -> None:
    """Forever: write the batched request lines at least this often."""
    while True:
        await asyncio.sleep(interval_seconds)
        access_log.flush()


def log_config_warnings(log: Any, warnings: Iterable[tuple[str, str]]) -> None:
    """Each warning of the config now in use, once (config/warnings.py)."""
    for where, message in warnings:
        log.warning("config_warning", yaml_path=where, warning=message)
