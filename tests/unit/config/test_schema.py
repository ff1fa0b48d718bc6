"""Validation: every problem at once, each with its YAML path and what is allowed."""

import copy
from pathlib import Path

import pytest

from m2mgate.auth.claims import ClaimKind, ClaimRef
from m2mgate.auth.presets import PRESETS
from m2mgate.config.compiling import compile_settings, load_settings, validate_tree
from m2mgate.config.cross_checks import cross_item_problems
from m2mgate.config.loading import EnvText
from m2mgate.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"

MINIMAL = {
    "upstream": {"url": "http://127.0.0.1:3000"},
    "issuers": [
        {"name": "local", "issuer": "http://127.0.0.1:8081", "audiences": ["https://api.example"]}
    ],
    "routes": [{"name": "api", "path": "/api/**", "require": {}}],
}


def problems(tree):
    with pytest.raises(ConfigError) as caught:
        validate_tree(tree)
    return dict(caught.value.problems)


def changed(**paths):
    tree = copy.deepcopy(MINIMAL)
    for dotted, value in paths.items():
        node = tree
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return tree


def test_example_config_is_valid_and_is_the_contract_example():
    settings = load_settings(EXAMPLE)
    assert str(settings.listen) == "127.0.0.1:8080"
    assert str(settings.admin_listen) == "127.0.0.1:9901"
    (issuer,) = settings.issuers
    assert issuer.policy.issuer == "http://127.0.0.1:8081"
    assert issuer.policy.audiences == {"https://api.example"}
    assert issuer.policy.algorithms == {"RS256", "ES256"}
    assert issuer.policy.guard.header_typ == {"at+jwt", "application/at+jwt"}
    assert [route.name for route in settings.routes.routes] == ["public", "admin", "user", "api"]
    assert settings.routes.routes[0].is_public
    assert settings.routes.routes[1].methods == {"GET", "HEAD", "POST"}  # GET covers HEAD
    assert settings.routes.routes[1].requirement.scopes == {"admin"}
    assert settings.routes.routes[2].requirement.any_scopes == {"read:data", "admin"}
    assert settings.forward.client_id == "X-Client-Id"
    assert settings.forward.pass_authorization is False
    assert settings.max_token_bytes == 8192


def test_the_example_deny_route_is_valid_when_uncommented(tmp_path):
    text = EXAMPLE.read_text()
    block = [line for line in text.splitlines() if line.startswith("  # - name: deny-rest")]
    assert block, "config/example.yaml shows a deny route"
    uncommented = "\n".join(
        line.replace("  # - ", "  - ", 1).replace("  #   ", "    ", 1)
        if line.startswith(("  # - name: deny-rest", "  #   path: /**", "  #   deny: true"))
        else line
        for line in text.splitlines()
    )
    path = tmp_path / "example.yaml"
    path.write_text(uncommented)
    last = load_settings(path).routes.routes[-1]
    assert (last.name, last.pattern.text, last.is_deny) == ("deny-rest", "/**", True)


def test_defaults():
    settings = compile_settings(validate_tree(MINIMAL))
    (issuer,) = settings.issuers
    assert issuer.policy.algorithms == {"RS256"}
    assert issuer.policy.leeway_seconds == 30
    assert issuer.cache.refetch_cooldown_seconds == 30
    assert issuer.cache.max_stale_seconds == 86400
    assert (issuer.cache.ttl.min_seconds, issuer.cache.ttl.max_seconds) == (300, 86400)
    assert issuer.cache.ttl.default_seconds == 600
    assert issuer.source.max_response_bytes == 1024 * 1024
    assert issuer.source.jwks_uri is None  # discovery
    kinds = [source.kind for source in issuer.policy.layout.scopes]
    assert kinds == [ClaimKind.SPACE_DELIMITED, ClaimKind.ARRAY_OR_SPACE_DELIMITED, ClaimKind.ARRAY]


def test_every_problem_is_reported_at_once():
    tree = changed(
        listen="nowhere",
        upstream__timeout_seconds="30",
        issuers__0__algorithms=["none", "HS256"],
        issuers__0__leeway_seconds=-1,
        routes__0__require={"requried_scopes": ["x"]},
    )
    found = problems(tree)
    assert set(found) == {
        "listen",
        "upstream.timeout_seconds",
        "issuers[0].algorithms[0]",
        "issuers[0].algorithms[1]",
        "issuers[0].leeway_seconds",
        "routes[0].require.requried_scopes",
    }
    assert found["upstream.timeout_seconds"] == "expected a number"
    assert "'RS256'" in found["issuers[0].algorithms[0]"]
    assert "EdDSA" in found["issuers[0].algorithms[0]"]
    assert found["routes[0].require.requried_scopes"].startswith(
        "unknown key (allowed: scopes, any_scopes"
    )


@pytest.mark.parametrize(
    ("tree", "path", "fragment"),
    [
        (changed(surprise=1), "surprise", "unknown key (allowed: listen, admin_listen"),
        (changed(routes__0__require=None), "routes[0].require", "required unless `public: true`"),
        (changed(routes__0__public=True), "routes[0].require", "cannot have `require`"),
        (changed(routes__0__deny=True), "routes[0].require", "a deny route has no `require`"),
        (
            changed(routes__0__require=None, routes__0__public=True, routes__0__deny=True),
            "routes[0].deny",
            "cannot be public",
        ),
        (changed(routes__0__deny="yes"), "routes[0].deny", "expected true or false"),
        (
            changed(routes__0__require={"issuers": ["okta"]}),
            "routes[0].require.issuers",
            "unknown issuer name 'okta' (configured: local)",
        ),
        (changed(routes__0__path="/a/**/b"), "routes[0].path", "last segment"),
        (changed(routes__0__methods=["get"]), "routes[0].methods[0]", "write 'GET'"),
        (changed(routes__0__methods=["Propfind"]), "routes[0].methods[0]", "write 'PROPFIND'"),
        (changed(routes__0__methods=["GE T"]), "routes[0].methods[0]", "RFC 9110"),
        (changed(routes__0__methods=[""]), "routes[0].methods[0]", "RFC 9110"),
        (changed(routes__0__methods=["GET/1"]), "routes[0].methods[0]", "RFC 9110"),
        (changed(routes__0__methods=[7]), "routes[0].methods[0]", "expected a string"),
        (changed(routes__0__methods=[]), "routes[0].methods", "needs at least 1 item"),
        (
            changed(routes__0__require={"scopes": ['a"b']}),
            "routes[0].require.scopes",
            "scope-tokens",
        ),
        (
            changed(routes__0__require={"claims": {"a..b": "x"}}),
            "routes[0].require.claims",
            "empty segment",
        ),
        (
            changed(routes__0__require={"claims": {"tid": 1.5}}),
            "routes[0].require.claims.tid",
            "expected a string",
        ),
        (
            changed(routes__0__require={"claims": {"tid": []}}),
            "routes[0].require.claims.tid",
            "non-empty list",
        ),
        (changed(routes__0__name="has space"), "routes[0].name", "pattern"),
        (changed(routes=[]), "routes", "at least 1"),
        (changed(issuers=[]), "issuers", "at least 1"),
        (
            changed(issuers__0__jwks_uri="http://keys.example.com/jwks"),
            "issuers[0].jwks_uri",
            "plain http to non-loopback host",
        ),
        (
            changed(issuers__0__issuer="https://x", issuers__0__jwks_uri="ftp://x/keys"),
            "issuers[0].jwks_uri",
            "not an http(s) URL",
        ),
        (
            changed(issuers__0__issuer="project-id"),
            "issuers[0].jwks_uri",
            "required: discovery needs",
        ),
        (
            changed(issuers__0__issuer="http://idp.example.com"),
            "issuers[0].jwks_uri",
            "plain http to non-loopback",
        ),
        (
            changed(issuers__0__preset="okta2"),
            "issuers[0].preset",
            "'okta', 'descope', 'scalekit', 'stytch', 'keycloak', 'entra' or 'cognito'",
        ),
        (changed(issuers__0__audiences=None), "issuers[0].audiences", "expected a list"),
        (changed(issuers__0__audiences=[""]), "issuers[0].audiences", "non-empty"),
        (
            changed(issuers__0__leeway_seconds=True),
            "issuers[0].leeway_seconds",
            "expected a number",
        ),
        (
            changed(issuers__0__jwks={"min_ttl_seconds": 600, "max_ttl_seconds": 60}),
            "issuers[0].jwks.max_ttl_seconds",
            "min_ttl_seconds",
        ),
        (
            changed(issuers__0__jwks={"refetch_cooldown_seconds": 0}),
            "issuers[0].jwks.refetch_cooldown_seconds",
            "greater than or equal to 1",
        ),
        (
            changed(issuers__0__jwks={"max_ttl": 5}),
            "issuers[0].jwks.max_ttl",
            "allowed: min_ttl_seconds",
        ),
        (
            changed(upstream__url="http://127.0.0.1:3000/base"),
            "upstream.url",
            "only scheme, host and port",
        ),
        (changed(upstream__url="unix:///sock"), "upstream.url", "http://"),
        (changed(upstream={}), "upstream.url", "required"),
        (changed(forward={"client_id": "Bad Header"}), "forward.client_id", "header name"),
        (changed(forward={"client_id": "Authorization"}), "forward", "managed by the gateway"),
        (changed(forward={"scopes": "X-Same", "roles": "x-same"}), "forward", "used twice"),
        # Spelled with `_`, a gateway-owned name or another identity header is the same
        # variable to a CGI/WSGI upstream (found in the #9 review).
        (changed(forward={"client_id": "X_Request_Id"}), "forward", "managed by the gateway"),
        (changed(forward={"scopes": "X-Same", "roles": "X_Same"}), "forward", "used twice"),
        (changed(forward={"claims": {"X-Tenant": "a..b"}}), "forward.claims", "empty segment"),
        (
            changed(limits={"max_token_bytes": 10}),
            "limits.max_token_bytes",
            "greater than or equal to 512",
        ),
        (changed(log_level="loud"), "log_level", "must be one of"),
        (changed(admin_listen="[::1]"), "admin_listen", "expected [IPv6]:port"),
    ],
)
def test_specific_problems(tree, path, fragment):
    found = problems(tree)
    assert path in found, found
    assert fragment in found[path], found[path]


@pytest.mark.parametrize(
    ("require", "key"),
    [
        ({"any_scopes": []}, "any_scopes"),
        ({"any_roles": []}, "any_roles"),
        ({"issuers": []}, "issuers"),
        ({"scopes": []}, "scopes"),
        ({"roles": []}, "roles"),
        ({"claims": {}}, "claims"),
        ({"scopes": ["admin"], "any_scopes": []}, "any_scopes"),
    ],
)
def test_empty_conditions_are_refused(require, key):
    """Found in review: an empty "at least one of" list (`any_scopes: []`) passed `check` and
    then allowed any valid token; an empty all-of list or claims mapping is no condition
    either. Each is an error at its path that says how to write what was meant."""
    found = problems(changed(routes__0__require=require))
    path = f"routes[0].require.{key}"
    assert set(found) == {path}, found
    assert "remove the key" in found[path]
    assert "require: {}" in found[path]


def test_a_route_that_lists_get_covers_head():
    """RFC 9110 §9.3.2: HEAD is GET without the body, and upstream frameworks run the GET
    handler for it; so a route listing GET must not let HEAD fall through to a later route."""
    tree = changed(routes__0__methods=["GET", "POST"])
    assert compile_settings(validate_tree(tree)).routes.routes[0].methods == {"GET", "HEAD", "POST"}
    tree = changed(routes__0__methods=["POST"])
    assert compile_settings(validate_tree(tree)).routes.routes[0].methods == {"POST"}
    tree = changed(routes__0__methods=["HEAD"])
    assert compile_settings(validate_tree(tree)).routes.routes[0].methods == {"HEAD"}


def test_any_rfc9110_method_token_can_be_listed():
    """Found in review: only 8 methods could be written, so PROPFIND, PURGE, MKCOL, REPORT,
    SEARCH... could never be restricted and fell through to a public catch-all."""
    methods = ["PROPFIND", "PROPPATCH", "MKCOL", "PURGE", "REPORT", "SEARCH", "M-SEARCH", "QUERY"]
    tree = changed(routes__0__methods=methods)
    assert compile_settings(validate_tree(tree)).routes.routes[0].methods == set(methods)


def test_deny_routes_compile_to_neither_public_nor_protected():
    tree = changed(
        routes=[
            {"name": "no-delete", "path": "/api/**", "methods": ["DELETE"], "deny": True},
            {"name": "api", "path": "/api/**", "require": {}},
            {"name": "deny-rest", "path": "/**", "deny": True},
        ]
    )
    no_delete, api, rest = compile_settings(validate_tree(tree)).routes.routes
    assert (no_delete.is_deny, no_delete.is_public, no_delete.methods) == (True, False, {"DELETE"})
    assert (rest.is_deny, rest.is_public, rest.requirement) == (True, False, None)
    assert (api.is_deny, api.is_public) == (False, False)
    # `deny: false` is an ordinary route: it still needs `require` or `public: true`.
    found = problems(changed(routes__0__deny=False, routes__0__require=None))
    assert "or `deny: true` to refuse" in found["routes[0].require"]


def test_duplicates_are_named():
    tree = changed()
    tree["issuers"].append(dict(tree["issuers"][0]))
    found = problems(tree)
    assert set(found) == {"issuers[1].name", "issuers[1].issuer"}
    assert "duplicate name 'local' (issuers[0] has it too)" in found["issuers[1].name"]
    tree = changed()
    tree["routes"].append(dict(tree["routes"][0], path="/API/**"))
    found = problems(tree)
    assert set(found) == {"routes[1].name", "routes[1].path"}
    assert "duplicate name 'api'" in found["routes[1].name"]
    assert "only in letter case" in found["routes[1].path"]


def test_cross_item_problems_are_reported_together_with_every_other_problem():
    """Found in review: duplicate names were list validators, which pydantic skips when any
    item of the list is invalid: they surfaced only once everything else was fixed."""
    tree = changed(issuers__0__algorithms=["none"], routes__0__require={"any_scopes": []})
    tree["issuers"].append(dict(MINIMAL["issuers"][0], leeway_seconds=-1))
    tree["routes"].append({"name": "api", "path": "/API/**", "methods": ["get"], "require": {}})
    tree["routes"].append({"name": "x", "path": "/x"})  # invalid: neither require nor public
    tree["routes"].append({"name": ["not", "a", "name"], "path": 5})  # garbage is tolerated
    tree["issuers"].append("garbage")
    found = problems(tree)
    for path in (
        "issuers[0].algorithms[0]", "issuers[1].leeway_seconds", "issuers[1].name",
        "issuers[1].issuer", "routes[0].require.any_scopes", "routes[1].name", "routes[1].path",
        "routes[1].methods[0]", "routes[2].require", "routes[3].name", "routes[3].path",
        "issuers[2]",
    ):  # fmt: skip
        assert path in found, (path, found)


def test_compile_settings_checks_across_items_too():
    """A model validated without validate_tree still never reaches the runtime with two
    issuers of one `iss` (the second policy would silently replace the first)."""
    from m2mgate.config.schema import ConfigSchema

    tree = changed()
    tree["issuers"].append(dict(tree["issuers"][0], name="other"))
    with pytest.raises(ConfigError) as caught:
        compile_settings(ConfigSchema.model_validate(tree))
    assert [where for where, _ in caught.value.problems] == ["issuers[1].issuer"]


@pytest.mark.parametrize(
    ("listen", "admin_listen", "clash"),
    [
        ("127.0.0.1:8080", "127.0.0.1:8080", True),
        ("0.0.0.0:8080", "127.0.0.1:8080", True),
        ("127.0.0.1:8080", "0.0.0.0:8080", True),
        ("[::]:8080", "10.0.0.1:8080", True),
        ("[::1]:8080", "[0:0:0:0:0:0:0:1]:8080", True),
        ("localhost:8080", "127.0.0.1:8080", True),
        ("LOCALHOST:8080", "[::1]:8080", True),
        ("127.0.0.1:9901", None, True),  # admin_listen's default is 127.0.0.1:9901
        (None, "127.0.0.1:8080", True),  # listen's default is 127.0.0.1:8080
        ("127.0.0.1:0", "127.0.0.1:0", False),  # port 0: each gets a free port
        ("127.0.0.1:8080", "127.0.0.1:9901", False),
        ("127.0.0.1:8080", "127.0.0.2:8080", False),
        ("10.0.0.1:8080", "10.0.0.2:8080", False),
        ("nonsense", "127.0.0.1:8080", False),  # `listen` has its own error
    ],
)
def test_listen_and_admin_listen_must_not_be_the_same_socket(listen, admin_listen, clash):
    """Found in review: `admin_listen` equal to `listen` passed check (and failed at start)."""
    tree = changed()
    for key, value in (("listen", listen), ("admin_listen", admin_listen)):
        if value is not None:
            tree[key] = value
    found = cross_item_problems(
        tree, {"listen": "127.0.0.1:8080", "admin_listen": "127.0.0.1:9901"}
    )
    assert ("admin_listen" in dict(found)) is clash, found
    if clash:
        assert "the same socket as listen" in problems(tree)["admin_listen"]


def test_insecure_http_is_an_explicit_opt_in():
    tree = changed(
        issuers__0__jwks_uri="http://keys.internal/jwks", issuers__0__allow_insecure_http=True
    )
    validate_tree(tree)


def test_audience_check_can_be_turned_off_explicitly():
    settings = compile_settings(validate_tree(changed(issuers__0__audiences=[])))
    assert settings.issuers[0].policy.audiences == frozenset()


def test_values_from_the_environment_are_converted_but_yaml_strings_are_not():
    tree = changed(
        issuers__0__leeway_seconds=EnvText("12"),
        shutdown_grace_seconds=EnvText("3.5"),
        limits={"max_token_bytes": EnvText("4096")},
        forward={"authorization": EnvText("true")},
    )
    settings = compile_settings(validate_tree(tree))
    assert settings.issuers[0].policy.leeway_seconds == 12
    assert settings.shutdown_grace_seconds == 3.5
    assert settings.max_token_bytes == 4096
    assert settings.forward.pass_authorization is True
    assert (
        "expected an integer (from the environment)"
        in problems(changed(limits={"max_token_bytes": EnvText("lots")}))["limits.max_token_bytes"]
    )
    assert (
        problems(changed(limits={"max_token_bytes": "4096"}))["limits.max_token_bytes"]
        == "expected an integer"
    )


def test_file_with_env_end_to_end(tmp_path):
    path = tmp_path / "gw.yaml"
    path.write_text(
        EXAMPLE.read_text().replace("leeway_seconds: 30", "leeway_seconds: ${LEEWAY:-7}")
    )
    assert load_settings(path, {}).issuers[0].policy.leeway_seconds == 7
    assert load_settings(path, {"LEEWAY": "9"}).issuers[0].policy.leeway_seconds == 9


def test_root_must_be_a_mapping():
    with pytest.raises(ConfigError):
        validate_tree(["a"])


def test_challenge_scopes_keep_config_order():
    tree = changed(routes__0__require={"scopes": ["b", "a"], "any_scopes": ["c", "a"]})
    requirement = compile_settings(validate_tree(tree)).routes.routes[0].requirement
    assert requirement.challenge_scopes == ("b", "a", "c")


@pytest.mark.parametrize(
    ("claims", "path", "fragment"),
    [
        (
            {"roles": [{"path": "groups", "type": "list"}]},
            "issuers[0].claims.roles[0].type",
            "must be one of",
        ),
        ({"roles": [{"type": "array"}]}, "issuers[0].claims.roles[0].path", "required"),
        ({"client_id": []}, "issuers[0].claims.client_id", "needs at least 1"),
        ({"scopes": ["a..b"]}, "issuers[0].claims.scopes[0].path", "empty segment"),
        ({"tenant": "{}"}, "issuers[0].claims.tenant", "malformed"),
        (
            {"groups": ["x"]},
            "issuers[0].claims.groups",
            "allowed: client_id, scopes, roles, tenant",
        ),
    ],
)
def test_claim_layout_override_problems(claims, path, fragment):
    found = problems(changed(issuers__0__claims=claims))
    assert fragment in found.get(path, ""), found


def test_claim_layout_overrides_compile_over_the_preset():
    tree = changed(
        issuers__0__preset="keycloak",
        issuers__0__claims={
            "client_id": ["client_id", "azp"],
            "roles": ["resource_access.api.roles", {"path": "realm_access.roles", "type": "array"}],
            "tenant": "tenant.{org}",
        },
        issuers__0__token_type={"header_typ": ["JWT"], "claims_when_present": {"typ": ["Bearer"]}},
    )
    policy = compile_settings(validate_tree(tree)).issuers[0].policy
    assert policy.layout.client_id == (("client_id",), ("azp",))
    assert [(source.path, source.kind) for source in policy.layout.roles] == [
        (("resource_access", "api", "roles"), ClaimKind.ARRAY_OR_SPACE_DELIMITED),
        (("realm_access", "roles"), ClaimKind.ARRAY),
    ]
    assert policy.layout.scopes == PRESETS["keycloak"].layout.scopes  # not overridden: kept
    assert policy.layout.tenant == ("tenant", ClaimRef("org"))
    assert policy.guard.header_typ == frozenset({"jwt"})
    assert policy.guard.claims == ()  # the override replaces the preset's guard entirely
    assert policy.guard.claims_when_present == ((("typ",), frozenset({"Bearer"})),)


def test_every_preset_compiles():
    for name in PRESETS:
        settings = compile_settings(validate_tree(changed(issuers__0__preset=name)))
        assert settings.issuers[0].policy.layout is PRESETS[name].layout


def test_tenant_header_is_off_by_default_and_collisions_are_refused():
    assert compile_settings(validate_tree(changed())).forward.tenant is None
    found = problems(changed(forward={"tenant": "X-Client-Id"}))
    assert "used twice" in found["forward"]


def test_an_empty_string_is_never_an_allowed_claim_value():
    """#8 review: `claims: {tenant: "${TENANT}"}` with TENANT unset-but-empty compiled to
    "tenant must be the empty string", which a token can satisfy."""
    from m2mgate.config.schema_routes import RequireSchema

    for claims in ({"tenant": ""}, {"tenant": ["a", ""]}):
        with pytest.raises(ValueError, match="empty string"):
            RequireSchema.model_validate({"claims": claims})


@pytest.mark.parametrize(
    ("tree", "path", "fragment"),
    [
        (changed(forward={"client_id": "X-Client-Id\n"}), "forward.client_id", "header name"),
        (changed(forward={"claims": {"X-Org\n": "org"}}), "forward.claims", "header name"),
        (changed(routes__0__methods=["GET\n"]), "routes[0].methods[0]", "RFC 9110"),
        (
            changed(routes__0__require={"scopes": ["admin\n"]}),
            "routes[0].require.scopes",
            "scope-tokens",
        ),
        (
            changed(routes__0__require={"any_scopes": ["admin\n"]}),
            "routes[0].require.any_scopes",
            "scope-tokens",
        ),
    ],
)
def test_a_trailing_newline_is_no_part_of_a_token(tree, path, fragment):
    """`^...$` matched "X-Client-Id\\n" (`$` matches before a final newline): the bare LF went
    onto the wire in the upstream request's head, or the 403's WWW-Authenticate scope."""
    found = problems(tree)
    assert fragment in found[path], found


def test_an_upstream_url_the_pool_cannot_parse_is_refused_at_check():
    """It passed validation, then `run` stopped with a ValueError building the forwarder."""
    found = problems(changed(upstream={"url": "http://h\\x"}))
    assert "RFC 3986" in found["upstream.url"]
    target = compile_settings(validate_tree(MINIMAL)).upstream.target
    assert (target.host, target.port, target.tls) == ("127.0.0.1", 3000, False)
