"""Path confusion: `/api/admin` must not be reachable without the admin scope through any
encoding or normalisation trick, on any route layout.

The invariant is checked against a model of how real upstreams read a path: each "view" below
is something a framework or server in the wild does (decode once or twice, remove dot segments,
merge slashes, strip Tomcat `;params`, turn `\\` into `/` like IIS, ignore case like Express).
A 2xx for a request whose forwarded path resolves to the admin area under *any* view is a bypass.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest

from tests.support.raw_http import get, raw_request

ADMIN = re.compile(r"^/api/admin(/|$)", re.IGNORECASE)
# Exact routes protect one path each, which slash-blind upstreams (Express, ASP.NET Core,
# Spring) also serve with a trailing slash added or removed.
EXACT_ADMIN = re.compile(r"^(/api/admin|/api/items/[^/]+)/?$", re.IGNORECASE)


def _remove_dots(path: str) -> str:
    normal = posixpath.normpath(path) if path else "/"
    return normal.replace("//", "/") + ("/" if path.endswith("/") and normal != "/" else "")


VIEWS: dict[str, Callable[[str], str]] = {
    "raw": lambda p: p,
    "decoded": unquote,
    "double_decoded": lambda p: unquote(unquote(p)),
    "dots_removed": lambda p: _remove_dots(unquote(p)),
    "slashes_merged": lambda p: re.sub("/+", "/", unquote(p)),
    "tomcat_params": lambda p: _remove_dots(unquote(re.sub(r";[^/]*", "", p))),
    "iis_backslash": lambda p: _remove_dots(unquote(p).replace("\\", "/")),
    "everything": lambda p: _remove_dots(
        unquote(unquote(re.sub(r";[^/]*", "", p))).replace("\\", "/")
    ),
}

TRICKS = [
    "/api/admin", "/api/admin/", "/api/admin/users",
    "/API/admin", "/api/ADMIN/users", "/Api/Admin", "/api/Admin/users",
    "/public/../api/admin", "/public/%2e%2e/api/admin", "/public/.%2e/api/admin",
    "/public/%2E%2E/api/admin", "/public/..;/api/admin", "/public/%252e%252e/api/admin",
    "/api/./admin", "/api/%2e/admin", "/./api/admin", "/api/admin/../admin",
    "//api/admin", "/api//admin", "///api/admin/users",
    "/api%2fadmin", "/api%2Fadmin/users", "/public%2f..%2fapi%2fadmin", "/api%252fadmin",
    "/api/admin;jsessionid=1", "/api;/admin", "/api/admin;/users", "/api;x=1/admin",
    "/api/%61dmin", "/%61pi/admin", "/api/adm%69n/users", "/api/%2561dmin",
    "/api\\admin", "/api%5cadmin", "/public/..%5capi%5cadmin",
    "/api/admin%00", "/api/admin%00.json", "/api/admin%20", "/api/admin%09",
    "/api/admin/..%2f", "/api/admin#x", "/api/admin?x=/../public",
    # Unicode letters that case-fold to ASCII ones (dotless i, U+0131) yet are already lower
    # case: Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase read it as /api/admin.
    "/api/adm%C4%B1n", "/ap%C4%B1/admin/users", "/%C4%B0PI/admin",
    # A trailing slash added to an exact route's path (or removed), also with other tricks.
    "/api/items/42/", "/api/items/42", "/API/items/42/", "/api/items/%34%32/", "/api/ADMIN/",
    "/api/adm%C4%B1n/", "/api/items/42/?x=1",
]  # fmt: skip

LAYOUTS: dict[str, list[dict[str, Any]]] = {
    "admin then public catch-all": [
        {"name": "admin", "path": "/api/admin/**", "require": {"scopes": ["admin"]}},
        {"name": "public", "path": "/**", "public": True},
    ],
    "public prefix first": [
        {"name": "public", "path": "/public/**", "public": True},
        {"name": "admin", "path": "/api/admin/**", "require": {"scopes": ["admin"]}},
        {"name": "api", "path": "/api/**", "require": {}},
    ],
    "exact and wildcard admin": [
        {"name": "admin-root", "path": "/api/admin", "require": {"scopes": ["admin"]}},
        {"name": "admin-one", "path": "/api/admin/*", "require": {"scopes": ["admin"]}},
        {"name": "admin-deep", "path": "/api/admin/**", "require": {"scopes": ["admin"]}},
        {"name": "public-api", "path": "/api/*/**", "public": True},
        {"name": "public", "path": "/public/**", "public": True},
    ],
    "exact admin routes then public catch-all": [
        {"name": "admin-root", "path": "/api/admin", "require": {"scopes": ["admin"]}},
        {"name": "item", "path": "/api/items/*", "require": {"scopes": ["admin"]}},
        {"name": "public", "path": "/**", "public": True},
    ],
}
PROTECTED = {"exact admin routes then public catch-all": EXACT_ADMIN}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
async def test_admin_is_unreachable_through_any_trick(make_gateway, mint, upstream, layout):
    gw = await make_gateway(lambda c: c.update(routes=LAYOUTS[layout]))
    reader, admin = mint(scope="read:data"), mint(scope="admin")
    bypasses = []
    for trick in TRICKS:
        for token in (None, reader):
            headers = [f"Authorization: Bearer {token}"] if token else []
            response = await raw_request(gw.url, get(trick, *headers))
            assert response.status < 500, (trick, response.status)
            if not 200 <= response.status < 300:
                assert response.header("Content-Type") == "application/json"
                continue
            forwarded = response.json()["raw_path"]
            assert forwarded == trick.split("#")[0]  # forwarded byte for byte
            path = forwarded.split("?")[0]
            protected = PROTECTED.get(layout, ADMIN)
            hit = [name for name, view in VIEWS.items() if protected.match(view(path))]
            if hit:
                bypasses.append((trick, "token" if token else "no token", hit))
    assert bypasses == []
    # Sanity: the admin area itself works for the admin scope, so refusals are not blanket.
    for path in ("/api/admin/users", "/api/admin"):
        response = await raw_request(gw.url, get(path, f"Authorization: Bearer {admin}"))
        assert response.status == 200, path


async def test_refusals_are_400_with_a_json_body(make_gateway):
    gw = await make_gateway(lambda c: c.update(routes=LAYOUTS["admin then public catch-all"]))
    for trick in (
        "/public/../api/admin",
        "/api%2fadmin",
        "/API/admin",
        "/api/admin;x",
        "//api/admin",
    ):
        response = await raw_request(gw.url, get(trick))
        assert response.status == 400, trick
        assert response.json()["error"] == "invalid_request"
        assert gw.access_events()[-1]["reason"] == "invalid_path"
