import pytest

from m2mgate.auth.policy import Requirement
from m2mgate.routing import Route, RouteTable, compile_pattern


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/a/**", "/a", True),
        ("/a/**", "/a/", True),
        ("/a/**", "/a/b/c", True),
        ("/a/**", "/ab", False),
        ("/a/**", "/b/a", False),
        ("/a/*", "/a/b", True),
        ("/a/*", "/a/", False),  # `*` is one non-empty segment
        ("/a/*", "/a/b/c", False),
        ("/a/*/c", "/a/b/c", True),
        ("/a/*/c", "/a/b/d", False),
        ("/a", "/a", True),
        ("/a", "/a/", False),  # a trailing slash is significant
        ("/a/", "/a/", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/api/v1.0/x", "/api/v1.0/x", True),
        ("/api/v1.0/x", "/api/v1X0/x", False),  # '.' is literal, not a regex wildcard
        ("/files/a b", "/files/a b", True),  # literals are compared decoded
        ("/a/(x)", "/a/(x)", True),
        ("/a/**", "/a\n", False),
    ],
)
def test_patterns(pattern, path, matches):
    assert compile_pattern(pattern).matches(path) is matches


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "a/b",
        "/a/**/b",
        "/**/a",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a*",
        "/a/b*c",
        "/a%20b",
        "/a?x",
        "/a#x",
        "/a;x",
        "/a\\b",
        "/a\x00",
    ],
)
def test_invalid_patterns(pattern):
    with pytest.raises(ValueError, match=r"segment|pattern|literal|'\*\*'|can never match"):
        compile_pattern(pattern)


def route(name, path, methods=None, public=False):
    return Route(
        name,
        compile_pattern(path),
        frozenset(methods) if methods else None,
        None if public else Requirement(),
    )


def test_first_match_wins_and_methods_filter():
    table = RouteTable(
        (
            route("admin-read", "/api/admin/**", ["GET"]),
            route("api", "/api/**"),
            route("public", "/public/**", public=True),
        )
    )
    assert table.match("GET", "/api/admin/x").name == "admin-read"
    assert table.match("POST", "/api/admin/x").name == "api"  # falls through on method
    assert table.match("GET", "/public").is_public
    assert table.match("GET", "/other") is None  # default deny
    assert table.match("get", "/api/admin/x").name == "api"  # methods are case-sensitive


def test_case_confusion_is_refused():
    from m2mgate.routing import CaseConfusion

    table = RouteTable((route("admin", "/api/admin/**"), route("public", "/**", public=True)))
    assert table.match("GET", "/api/admin/x").name == "admin"
    assert table.match("GET", "/docs/Readme").name == "public"  # no other route fits: fine
    for path in ("/API/admin", "/api/ADMIN/x", "/Api/Admin"):
        with pytest.raises(CaseConfusion):
            table.match("GET", path)  # would be public here, admin upstream if case-blind


def test_mixed_case_routes_are_matched_exactly():
    from m2mgate.routing import CaseConfusion

    table = RouteTable((route("docs", "/Docs/**"), route("api", "/api/**")))
    assert table.match("GET", "/Docs/x").name == "docs"
    with pytest.raises(CaseConfusion):
        table.match("GET", "/docs/x")
    assert table.match("GET", "/api/x").name == "api"


def test_unicode_letters_that_fold_to_ascii_are_case_confusion_too():
    """Found in review: U+0131 and U+017F are already lower case, so a lowercase-only fast path
    let /api/adm\u0131n through as public, while case-blind upstreams read it as /api/admin."""
    from m2mgate.routing import CaseConfusion

    table = RouteTable((route("admin", "/api/admin/**"), route("secrets", "/secrets/**"),
                        route("public", "/**", public=True)))  # fmt: skip
    for path in ("/api/adm\u0131n", "/ap\u0131/admin/x", "/\u017fecrets/x"):
        with pytest.raises(CaseConfusion):
            table.match("GET", path)
    assert table.match("GET", "/caf\u00e9/x").name == "public"  # non-ASCII, no other route: fine


def test_the_first_segment_index_agrees_with_a_plain_scan():
    """The index is an optimisation only: same answer as trying every route in order."""
    import itertools

    patterns = ["/", "/a", "/a/", "/a/**", "/a/*", "/a/*/c", "/*", "/*/b/**", "/**", "/b/**",
                "/a b/**", "/ab", "/b"]  # fmt: skip
    paths = ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b", "/b/b/x", "/c", "/a b/x", "/x/b/y"]
    for size in (1, 2, 3):
        for chosen in itertools.permutations(patterns, size):
            table = RouteTable(tuple(route(f"r{i}", p) for i, p in enumerate(chosen)))
            for path in paths:
                plain = next((r for r in table.routes if r.matches("GET", path)), None)
                assert table._first("GET", path) is plain, (chosen, path)


def test_non_ascii_patterns_never_take_the_lowercase_fast_path():
    """Found while fixing #8: a lower-case pattern may hold a letter that folds to ASCII
    (`/adm\u0131n/**`), so a lower-case ASCII path (`/admin`) must meet the folded check too."""
    from m2mgate.routing import CaseConfusion

    table = RouteTable((route("admin", "/adm\u0131n/**"), route("public", "/**", public=True)))
    assert table.match("GET", "/adm\u0131n/x").name == "admin"
    with pytest.raises(CaseConfusion):
        table.match("GET", "/admin")  # public here; the U+0131 route to a case-blind upstream


# --- trailing-slash twins -----------------------------------------------------------------------


def test_a_path_whose_slash_twin_is_another_route_is_refused():
    """Found in review: with exact `/api/admin` and `/api/items/*` protected and a public
    catch-all, `/api/admin/` and `/api/items/42/` passed as public, while Express, ASP.NET Core
    and Spring serve them from the protected handler."""
    from m2mgate.routing import PathConfusion, TrailingSlashConfusion

    table = RouteTable((route("admin", "/api/admin"), route("item", "/api/items/*"),
                        route("public", "/**", public=True)))  # fmt: skip
    assert table.match("GET", "/api/admin").name == "admin"
    assert table.match("GET", "/api/items/42").name == "item"
    for path in ("/api/admin/", "/api/items/42/"):
        with pytest.raises(TrailingSlashConfusion):
            table.match("GET", path)
    assert issubclass(TrailingSlashConfusion, PathConfusion)
    assert table.match("GET", "/docs/").name == "public"  # both twins are public: fine
    assert table.match("GET", "/").name == "public"  # "/" has no twin
    assert table.match("GET", "/api/items/").name == "public"  # twin /api/items: public too


def test_removing_the_slash_is_a_twin_too():
    from m2mgate.routing import TrailingSlashConfusion

    table = RouteTable((route("dir", "/files/"), route("public", "/**", public=True)))
    assert table.match("GET", "/files/").name == "dir"
    with pytest.raises(TrailingSlashConfusion):
        table.match("GET", "/files")


def test_a_twin_that_no_route_matches_does_not_refuse():
    from m2mgate.routing import TrailingSlashConfusion

    table = RouteTable((route("admin", "/api/admin"),))
    assert table.match("GET", "/api/admin").name == "admin"  # twin /api/admin/: no route
    with pytest.raises(TrailingSlashConfusion):
        table.match("GET", "/api/admin/")  # no route, but its twin is admin's
    assert table.match("GET", "/other/") is None


def test_slash_twins_are_compared_per_method():
    table = RouteTable(
        (route("admin", "/api/admin", ["POST"]), route("public", "/**", public=True))
    )
    assert table.match("GET", "/api/admin/").name == "public"  # GET /api/admin is public too


def test_a_case_folded_twin_may_not_pick_another_route_either():
    from m2mgate.routing import PathConfusion

    table = RouteTable((route("admin", "/API/admin"), route("public", "/**", public=True)))
    assert table.match("GET", "/API/admin").name == "admin"
    for path in ("/api/admin/", "/API/admin/", "/Api/Admin/"):
        with pytest.raises(PathConfusion):
            table.match("GET", path)
    table = RouteTable((route("admin", "/api/admin"), route("public", "/**", public=True)))
    for path in ("/API/ADMIN/", "/api/adm\u0131n/"):
        with pytest.raises(PathConfusion):
            table.match("GET", path)


def test_tables_that_cannot_tell_slash_twins_apart_skip_the_twin_match():
    """Hot path: when every pattern ends in `/**` (or is `/`), P and its twin always match the
    same routes, so the extra match is skipped (decided once, when the table is built)."""
    assert not RouteTable((route("a", "/api/**"), route("b", "/**"), route("r", "/")))._slash_twins
    assert RouteTable((route("a", "/api/**"), route("x", "/api/x")))._slash_twins
    assert RouteTable((route("a", "/a/*/**"), route("s", "/a/*")))._slash_twins


def test_slash_insensitive_tables_agree_with_the_full_check():
    """The skip is an optimisation only: for tables it applies to, the full twin check would
    never refuse (same answer either way)."""
    import itertools

    patterns = ["/", "/**", "/a/**", "/a/*/**", "/*/**", "/a/b/**"]
    paths = ["/", "/a", "/a/", "/a/b", "/a/b/", "/b/", "/a/b/c/", "/x/y"]
    for size in (1, 2, 3):
        for chosen in itertools.permutations(patterns, size):
            table = RouteTable(tuple(route(f"r{i}", p) for i, p in enumerate(chosen)))
            assert not table._slash_twins
            for path in paths:
                twin = path[:-1] if path.endswith("/") else path + "/"
                if path != "/":
                    assert table._first("GET", twin) is table._first("GET", path), (chosen, path)


def test_refusals_agree_with_a_plain_model_of_case_and_slash_blind_upstreams():
    """The fast paths (lowercase, slash-insensitive tables, the first-segment index) are
    optimisations only: a path is refused exactly when the first route a case- and slash-blind
    upstream could map it to is not the route the gateway picks."""
    import itertools

    from m2mgate.routing import PathConfusion

    patterns = ["/a", "/a/", "/a/**", "/a/*", "/A/b", "/a/b/", "/**", "/b/**", "/", "/*"]
    paths = ["/", "/a", "/a/", "/A", "/a/b", "/a/b/", "/A/B/", "/b", "/b/", "/c/", "/a/\u0131"]

    def blind(table, path):
        twin = path[:-1] if path.endswith("/") else path + "/"
        variants = [path] if path == "/" else [path, twin]
        return next(
            (r for r in table.routes
             if any(r.pattern.matches_ignoring_case(v) for v in variants)),
            None,
        )  # fmt: skip

    for size in (1, 2, 3):
        for chosen in itertools.permutations(patterns, size):
            table = RouteTable(tuple(route(f"r{i}", p) for i, p in enumerate(chosen)))
            for path in paths:
                exact = next((r for r in table.routes if r.matches("GET", path)), None)
                try:
                    got = table.match("GET", path)
                except PathConfusion:
                    assert blind(table, path) is not exact, (chosen, path)
                else:
                    assert got is exact and blind(table, path) is exact, (chosen, path)


def test_a_format_suffix_that_names_an_earlier_route_is_refused():
    """#8 review R3: Rails (`/api/admin(.:format)`), DRF format suffixes, Grape and Spring MVC
    before 5.3 serve `/api/admin.json` from the `/api/admin` handler."""
    from m2mgate.routing import FormatSuffixConfusion, PathConfusion

    table = RouteTable(
        (
            route("admin", "/api/admin/**"),
            route("exact", "/api/reports"),
            route("public", "/**", public=True),
        )
    )
    for path in ("/api/admin.json", "/api/admin.tar.gz", "/api/reports.csv", "/API/admin.json"):
        with pytest.raises(PathConfusion):
            table.match("GET", path)
    assert issubclass(FormatSuffixConfusion, PathConfusion)
    for path, name in (
        ("/public/app.js", "public"),  # its twin gets the same route
        ("/api/admin/x.json", "admin"),
        ("/.well-known", "public"),  # a dot file has no suffix
        ("/api/admin", "admin"),
    ):
        found = table.match("GET", path)
        assert found is not None and found.name == name, path


def test_a_suffixed_path_with_a_route_of_its_own_before_the_twins_is_not_refused():
    table = RouteTable(
        (route("spec", "/docs/openapi.json", public=True), route("docs", "/docs/**"))
    )
    found = table.match("GET", "/docs/openapi.json")
    assert found is not None and found.name == "spec"


def test_tables_without_literal_segments_skip_the_suffix_match():
    table = RouteTable((route("one", "/*"), route("rest", "/**", public=True)))
    assert not table._suffix_twins
    found = table.match("GET", "/x.json")
    assert found is not None and found.name == "one"
