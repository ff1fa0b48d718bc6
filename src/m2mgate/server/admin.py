"""The admin endpoints on `admin_listen`: /metrics, /healthz, /readyz.

Kept on their own listener so that probes and scrapes never share the proxy's port, its routes
or its default deny.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from m2mgate.keys.cache import KeyCacheStatus


def admin_app(
    registry: CollectorRegistry,
    statuses: Callable[[], Iterable[KeyCacheStatus]],
    is_draining: Callable[[], bool],
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        issuers = {status.issuer_name: _describe(status) for status in statuses()}
        not_ready = sorted(name for name, facts in issuers.items() if not facts["ready"])
        # While draining (SIGTERM), report not ready so load balancers stop sending traffic.
        state = "draining" if is_draining() else ("not_ready" if not_ready else "ready")
        body = {"status": state, "not_ready": not_ready, "issuers": issuers}
        return web.Response(
            status=200 if state == "ready" else 503,
            body=json.dumps(body).encode(),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _describe(status: KeyCacheStatus) -> dict[str, object]:
    return {
        "ready": status.is_ready,
        "keys": status.key_count,
        "key_set_age_seconds": (
            round(status.age_seconds, 3) if status.age_seconds is not None else None
        ),
        "stale": status.is_stale,
        "last_fetch_result": status.last_result,
        "consecutive_failures": status.consecutive_failures,
    }
