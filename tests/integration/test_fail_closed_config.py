"""Config shapes that used to fail open, checked through a real gateway (issue #8, part B).

Each test names the shape: what the config says must be what the gateway does, and a zero, an
empty list or a method nobody listed never widens access.
"""

from __future__ import annotations

from tests.support.raw_http import raw_request


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway.test", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- limits.max_body_bytes: 0 means zero, null means unlimited ----------------------------------


async def test_max_body_bytes_zero_refuses_any_body_byte(make_gateway, mint):
    """Found in review: `max_body_bytes: 0` was compiled as "no limit" (`0 or None`)."""
    gw = await make_gateway(lambda c: c.update(limits={"max_body_bytes": 0}))
    auth = f"Authorization: Bearer {mint()}"
    declared = await raw_request(
        gw.url, _request("POST", "/api/x", auth, "Content-Length: 1", body=b"x")
    )
    assert declared.status == 413
    chunked = await raw_request(
        gw.url,
        _request("POST", "/api/x", auth, "Transfer-Encoding: chunked", body=b"1\r\nx\r\n0\r\n\r\n"),
    )
    assert chunked.status == 413
    bodiless = await raw_request(gw.url, _request("GET", "/api/x", auth))
    assert bodiless.status == 200
    empty = await raw_request(gw.url, _request("POST", "/api/x", auth, "Content-Length: 0"))
    assert empty.status == 200


async def test_max_body_bytes_null_is_unlimited(make_gateway, mint, upstream):
    gw = await make_gateway(lambda c: c.update(limits={"max_body_bytes": None}))
    body = b"x" * (17 * 1024 * 1024)  # over the 16 MiB default
    response = await gw.http.post(
        gw.url + "/api/x", data=body, headers={"Authorization": f"Bearer {mint()}"}
    )
    assert response.status == 200
    assert (await response.json())["body_length"] == len(body)


# --- HEAD is GET without a body: a route that lists GET covers HEAD ----------------------------


async def test_head_cannot_fall_through_a_get_route(gw, mint, upstream):
    """Found in review: with the CONTRACT config (`admin` lists GET and POST, then `api` needs
    any token), `HEAD /api/admin/x` with a read:data token matched `api`, and the upstream ran
    its GET handler (RFC 9110 §9.3.2; every mainstream framework dispatches HEAD to GET)."""
    reader = {"Authorization": f"Bearer {mint(scope='read:data')}"}
    async with gw.http.head(gw.url + "/api/admin/x", headers=reader) as response:
        assert response.status == 403
    assert gw.access_events()[-1]["route"] == "admin"
    assert upstream.requests == []
    admin = {"Authorization": f"Bearer {mint(scope='admin')}"}
    async with gw.http.head(gw.url + "/api/admin/x", headers=admin) as response:
        assert response.status == 200
    assert upstream.requests[-1]["method"] == "HEAD"


async def test_explain_shows_head_on_a_get_route(gw, mint):
    from m2mgate.explain import as_json, explain

    settings = gw.gateway.settings
    result = as_json(await explain(settings, "HEAD", "/api/admin/x", mint(scope="read:data")))
    assert result["route"]["name"] == "admin"
    assert result["route"]["methods"] == ["GET", "HEAD", "POST"]
    assert result["decision"]["status"] == 403


# --- any RFC 9110 method can be listed --------------------------------------------------------


async def test_webdav_and_cache_methods_are_matched_by_a_route_listing_them(make_gateway, mint):
    """Found in review: `methods` allowed 8 names only, so a route could not list PROPFIND or
    PURGE, and they fell through to a public catch-all."""
    routes = [
        {"name": "dav", "path": "/dav/**", "methods": ["PROPFIND", "PURGE", "MKCOL"],
         "require": {"scopes": ["admin"]}},
        {"name": "public", "path": "/**", "public": True},
    ]  # fmt: skip
    gw = await make_gateway(lambda c: c.update(routes=routes))
    admin = f"Authorization: Bearer {mint(scope='admin')}"
    for method in ("PROPFIND", "PURGE", "MKCOL"):
        response = await raw_request(gw.url, _request(method, "/dav/x"))
        assert response.status == 401, method
        assert gw.access_events()[-1]["route"] == "dav"
        response = await raw_request(gw.url, _request(method, "/dav/x", admin))
        assert response.status == 200, method
        assert response.json()["method"] == method
    response = await raw_request(gw.url, _request("GET", "/dav/x"))
    assert (response.status, gw.access_events()[-1]["route"]) == (200, "public")


# --- deny: true, an explicit deny answered like an unmatched path ------------------------------

DENY_ROUTES = [
    {"name": "public", "path": "/public/**", "public": True},
    {"name": "no-delete", "path": "/api/**", "methods": ["DELETE"], "deny": True},
    {"name": "api", "path": "/api/**", "require": {}},
    {"name": "deny-rest", "path": "/**", "deny": True},
]


async def test_a_deny_route_answers_exactly_like_an_unmatched_path(make_gateway, mint, upstream):
    unmatched = await make_gateway(lambda c: c.update(routes=DENY_ROUTES[:3]))
    denied = await make_gateway(lambda c: c.update(routes=DENY_ROUTES))
    token = f"Authorization: Bearer {mint(scope='admin')}"
    for method, path in (("GET", "/elsewhere"), ("DELETE", "/api/x"), ("POST", "/")):
        if method == "DELETE":  # `no-delete` is in both tables: compare with a real no-match
            reference = await raw_request(unmatched.url, _request("GET", "/elsewhere", token))
        else:
            reference = await raw_request(unmatched.url, _request(method, path, token))
        response = await raw_request(denied.url, _request(method, path, token))
        assert (response.status, response.header("WWW-Authenticate")) == (404, None)
        body, expected = response.json(), reference.json()
        assert body.keys() == expected.keys()
        assert (body["error"], body["error_description"]) == (
            expected["error"], expected["error_description"],
        )  # fmt: skip
        names = sorted(name.lower() for name, _ in response.headers if name.lower() != "date")
        assert names == sorted(n.lower() for n, _ in reference.headers if n.lower() != "date")
    assert upstream.requests == []
    events = denied.access_events()
    assert [(e["route"], e["reason"], e["decision"]) for e in events] == [
        ("deny-rest", "route_denied", "deny"),
        ("no-delete", "route_denied", "deny"),
        ("deny-rest", "route_denied", "deny"),
    ]
    text = await denied.metrics_text()
    assert 'route="deny-rest"' in text and 'reason="route_denied"' in text
    ok = await raw_request(denied.url, _request("GET", "/api/x", token))
    assert ok.status == 200  # the other methods fall through to `api`


async def test_explain_shows_the_deny_route(make_gateway, mint):
    from m2mgate.explain import as_json, as_text, explain

    gw = await make_gateway(lambda c: c.update(routes=DENY_ROUTES), wait_ready=False)
    result = await explain(gw.gateway.settings, "GET", "/elsewhere", mint())
    shown = as_json(result)
    assert shown["route"]["name"] == "deny-rest"
    assert shown["route"]["deny"] is True
    assert shown["decision"] == {
        "allow": False, "status": 404, "error": "not_found", "reason": "route_denied",
        "detail": "denied by route deny-rest",
    }  # fmt: skip
    text = as_text(result)
    assert "deny-rest (/**, any method, deny)" in text
    assert "DENY 404 not_found (reason route_denied)" in text


# --- trailing-slash twins of exact routes ---------------------------------------------------

EXACT_ROUTES = [
    {"name": "admin", "path": "/api/admin", "require": {"scopes": ["admin"]}},
    {"name": "item", "path": "/api/items/*", "require": {"scopes": ["admin"]}},
    {"name": "public", "path": "/**", "public": True},
]


async def test_a_trailing_slash_never_slips_past_an_exact_route(make_gateway, mint, upstream):
    """Found in review: `/api/admin/` and `/api/items/42/` passed as public, while Express,
    ASP.NET Core and Spring serve them from the protected `/api/admin` and `/api/items/:id`
    handlers. They are refused like case confusion: 400 invalid_path."""
    gw = await make_gateway(lambda c: c.update(routes=EXACT_ROUTES))
    for path in ("/api/admin/", "/api/items/42/", "/API/admin/", "/api/items/%34%32/"):
        response = await raw_request(gw.url, _request("GET", path))
        assert response.status == 400, path
        assert response.json()["error"] == "invalid_request"
        assert gw.access_events()[-1]["reason"] == "invalid_path"
    assert upstream.requests == []
    admin = f"Authorization: Bearer {mint(scope='admin')}"
    for path in ("/api/admin", "/api/items/42"):
        assert (await raw_request(gw.url, _request("GET", path))).status == 401, path
        assert (await raw_request(gw.url, _request("GET", path, admin))).status == 200, path
    for path in ("/docs/", "/api/items/", "/"):  # twins on the same route: served normally
        assert (await raw_request(gw.url, _request("GET", path))).status == 200, path


# --- config warnings are logged once at start and on each reload --------------------------------


async def test_config_warnings_are_logged_at_start_and_on_reload(
    make_gateway, jwks, upstream, tmp_path
):
    import yaml

    from tests.conftest import base_config

    def open_audience(config):
        config["issuers"][0]["audiences"] = []

    path = tmp_path / "gateway.yaml"
    gw = await make_gateway(open_audience, config_path=path, wait_ready=False)

    def warnings_logged():
        return [e for e in gw.log_events() if e["event"] == "config_warning"]

    (event,) = warnings_logged()
    assert (event["level"], event["yaml_path"]) == ("warning", "issuers[0].audiences")
    assert "any token" in event["warning"]
    config = base_config(jwks, upstream)
    open_audience(config)
    config["routes"].insert(1, {"name": "get-only", "path": "/x/**", "methods": ["GET"],
                                "require": {}})  # fmt: skip
    config["routes"].append({"name": "all", "path": "/**", "public": True})
    path.write_text(yaml.safe_dump(config))
    assert await gw.gateway.reload()
    assert [e["yaml_path"] for e in warnings_logged()] == [
        "issuers[0].audiences", "issuers[0].audiences", "routes[1].methods",
    ]  # fmt: skip


# --- scopes are separated by SP only ------------------------------------------------------------


async def test_a_scope_with_a_non_breaking_space_inside_grants_nothing(gw, mint, upstream):
    """RFC 6749 §3.3: `read:data<NBSP>admin` is one scope-token, not `read:data` and `admin`."""
    token = mint(scope="read:data\u00a0admin")
    assert (await gw.get("/api/admin/x", token)).status == 403
    response = await gw.get("/api/x", token)  # any valid token: the scope is passed on whole
    assert response.status == 200
    (scopes,) = [value for name, value in upstream.requests[-1]["headers"] if name == "X-Scopes"]
    assert scopes == "read:data%C2%A0admin"
