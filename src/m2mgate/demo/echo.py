"""The demo's upstream: answers every request with what it received, as JSON.

It lets a user see what the gateway forwards: `X-Client-Id`, `X-Scopes` and the rest arrive as
headers, and a spoofed `X-Client-Id` does not.
"""

from __future__ import annotations

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {name: value for name, value in request.headers.items()},
            "body_bytes": len(body),
        },
        headers={"Cache-Control": "no-store"},
    )


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
