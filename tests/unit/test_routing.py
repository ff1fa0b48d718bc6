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
        table.match("GET", "/admin")  # public here; /admın to a case-blind upstream
