"""Config warnings: valid configs that accept more than their author likely meant."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from m2mgate.config.compiling import compile_settings, load_settings, validate_tree
from m2mgate.demo.runner import DemoPorts, demo_gateway_settings
from m2mgate.routing import PathConfusion

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"

ISSUER = {"name": "local", "issuer": "http://127.0.0.1:8081", "audiences": ["https://api.example"]}


def settings_for(routes=None, **issuer):
    tree = {
        "upstream": {"url": "http://127.0.0.1:3000"},
        "issuers": [dict(ISSUER, **issuer)],
        "routes": routes or [{"name": "api", "path": "/api/**", "require": {}}],
    }
    return compile_settings(validate_tree(copy.deepcopy(tree)))


def test_the_contract_example_and_the_demo_have_no_warnings():
    assert load_settings(EXAMPLE).warnings == ()
    assert demo_gateway_settings(DemoPorts()).warnings == ()
    assert settings_for().warnings == ()


def test_no_audiences_and_no_client_ids_is_a_warning():
    """`audiences: []` with no `client_ids` passed silently: every token of the issuer, for any
    API, is accepted."""
    ((where, message),) = settings_for(audiences=[]).warnings
    assert where == "issuers[0].audiences"
    assert "any token" in message and "client_ids" in message
    assert settings_for(audiences=[], client_ids=["svc-a"]).warnings == ()


ADMIN = {"name": "admin", "path": "/api/admin/**", "methods": ["GET", "POST"],
         "require": {"scopes": ["admin"]}}  # fmt: skip
PUBLIC = {"name": "public", "path": "/**", "public": True}


def test_methods_that_fall_through_to_a_public_route_are_a_warning():
    settings = settings_for([ADMIN, PUBLIC])
    ((where, message),) = settings.warnings
    assert where == "routes[0].methods"
    assert "'admin'" in message and "'public'" in message and "routes[1]" in message
    # The example in the message is true: that request does land on the public route.
    method, path = message.split("(e.g. ")[1].split(")")[0].split(" ")
    assert method not in {"GET", "HEAD", "POST"}
    assert settings.routes.match(method, path).name == "public"


@pytest.mark.parametrize(
    "routes",
    [
        # a deny route for the same paths closes the other methods
        [ADMIN, {"name": "admin-rest", "path": "/api/admin/**", "deny": True}, PUBLIC],
        # a protected route in between catches them (the CONTRACT example's shape)
        [ADMIN, {"name": "api", "path": "/api/**", "require": {}}, PUBLIC],
        # the public route takes only methods the restricted route lists itself
        [ADMIN, dict(PUBLIC, methods=["GET"])],
        # no overlap
        [ADMIN, {"name": "docs", "path": "/docs/**", "public": True}],
        # every method listed: nothing falls through
        [dict(ADMIN, methods=None), PUBLIC],
        # a deny route that narrows methods means to leave the rest to later routes
        [{"name": "no-delete", "path": "/api/**", "methods": ["DELETE"], "deny": True}, PUBLIC],
        # a public route that narrows methods: nothing is widened
        [dict(PUBLIC, name="api-read", path="/api/**", methods=["GET"]), PUBLIC],
    ],
    ids=["deny-after", "protected-between", "public-same-methods", "no-overlap", "all-methods",
         "deny-methods", "public-methods"],
)  # fmt: skip
def test_no_warning_where_nothing_falls_through_to_a_public_route(routes):
    assert settings_for(routes).warnings == ()


@pytest.mark.parametrize(
    ("routes", "method"),
    [
        # the public route lists one method the restricted route does not
        ([ADMIN, dict(PUBLIC, methods=["GET", "DELETE"])], "DELETE"),
        # an intermediate deny covers DELETE only: PUT still falls through
        ([ADMIN, {"name": "d", "path": "/api/admin/**", "methods": ["DELETE"], "deny": True},
          PUBLIC], "PUT"),
        # partial overlap: `/api/*/status` is public, `/api/admin/status` among them
        ([ADMIN, {"name": "status", "path": "/api/*/status", "public": True}], "DELETE"),
        # exact restricted routes too
        ([dict(ADMIN, path="/api/admin"), PUBLIC], "DELETE"),
        # GET-only covers HEAD: the warning is about the others
        ([dict(ADMIN, methods=["GET"]), PUBLIC], "DELETE"),
    ],
    ids=["public-extra-method", "deny-partial-methods", "partial-overlap", "exact", "get-only"],
)  # fmt: skip
def test_the_warning_names_a_method_that_really_falls_through(routes, method):
    settings = settings_for(routes)
    ((where, message),) = settings.warnings
    assert where == "routes[0].methods"
    shown_method, path = message.split("(e.g. ")[1].split(")")[0].split(" ")
    assert shown_method == method
    route = settings.routes.match(shown_method, path)
    assert route is not None and route.is_public


def test_a_public_trailing_slash_twin_is_no_fall_through():
    """`/api/admin` and public `/api/admin/` share no path: DELETE /api/admin is refused as
    slash-confused (its twin is public), never let through. No warning."""
    routes = [dict(ADMIN, path="/api/admin"), {"name": "p", "path": "/api/admin/", "public": True}]
    settings = settings_for(routes)
    with pytest.raises(PathConfusion):
        settings.routes.match("DELETE", "/api/admin")
    assert settings.warnings == ()


def test_a_token_type_written_to_check_nothing_is_warned_about():
    """#8 review R4: with the Descope preset, a guard that checks nothing lets `drn: DSR`
    refresh tokens pass. `token_type: {}` is refused; written out on purpose, it is a warning.
    Under the generic preset (no guard to lose) it says nothing."""
    ((where, message),) = settings_for(preset="descope", token_type={"header_typ": None}).warnings
    assert where == "issuers[0].token_type"
    assert "refresh tokens" in message
    assert settings_for(token_type={"header_typ": None}).warnings == ()
