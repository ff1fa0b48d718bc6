"""The route table: (method, decoded path) -> the first route that matches, else None (deny).

Letter case: routes match case-sensitively, but a path that would match a *different* route if
case were ignored (Unicode case folding included: U+0131 folds to `i`) is refused
(`CaseConfusion`). Threat: many upstreams compare paths case-insensitively (Express by
default, ASP.NET, IIS): with `/api/admin/**` protected and a public catch-all after it,
`/API/admin` would pass the gateway as public and be served as admin.
Refusing the ambiguous request is safe for case-sensitive and case-insensitive upstreams alike.

Trailing slash: likewise, a path that would match a *different* route if the trailing slash
were ignored is refused (`TrailingSlashConfusion`): when a route before the path's own (or
any route, when the path has none) matches its trailing-slash twin (the path with its trailing
slash removed, or one added; `/` has none). Threat: Express, ASP.NET Core and Spring serve
`/api/admin/` from the `/api/admin` handler; with exact `/api/admin` protected and a public
catch-all after it, `/api/admin/` would pass the gateway as public and be served as admin.
Both blind spots at once count too: a twin that matches another route ignoring case.

Format suffix: the same once more for `.ext` on the last segment (`FormatSuffixConfusion`):
a path whose last segment with its suffix cut (`/api/admin.json` -> `/api/admin`) is matched by
a route before the path's own is refused. Threat (#8 review): Rails routes `/api/admin` as
`/api/admin(.:format)`, and Django REST framework's format suffixes, Grape and Spring MVC
before 5.3 do the same; `/api/admin.json` missed `/api/admin/**`, passed a weaker route after
it, and ran the admin handler.
`/api/admin` itself still reaches its route: that its twin is public (matched by the later
catch-all) confuses nothing, the path's own route comes first either way.

Patterns, compiled once into anchored regular expressions:
- a literal segment matches itself (compared with the percent-decoded request path);
- `*` matches exactly one non-empty segment;
- `**`, only as the last segment, matches any number of segments: `/a/**` matches `/a`, `/a/`
  and `/a/b/c` (but not `/ab`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from m2mgate.auth.policy import Requirement

_BAD_LITERAL = re.compile(r"[\x00-\x1f\x7f%?#;\\*]")


class PathConfusion(ValueError):
    """A path that an upstream may read as another route's path: refused (400 invalid_path)."""


class CaseConfusion(PathConfusion):
    """The path matches a different route when letter case is ignored."""


class TrailingSlashConfusion(PathConfusion):
    """The path's trailing-slash twin matches a different route."""


class FormatSuffixConfusion(PathConfusion):
    """The path without the `.format` suffix of its last segment matches another route."""


@dataclass(frozen=True, slots=True)
class PathPattern:
    text: str
    regex: re.Pattern[str]
    folded: re.Pattern[str]  # the same pattern, ignoring letter case
    # The first segment when it is a literal (`/api/**` -> "api", `/` -> ""), else None
    # (`/*/x`, `/**`): a path whose first segment differs can never match.
    first_literal: str | None = None

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None

    def matches_ignoring_case(self, path: str) -> bool:
        return self.folded.fullmatch(path) is not None

    @property
    def has_literal_segment(self) -> bool:
        return any(part not in ("", "*", "**") for part in self.text.split("/"))

    @property
    def tells_slash_twins_apart(self) -> bool:
        """Whether some path and its trailing-slash twin can differ in matching this pattern.

        Not for `/**` endings: `(?:/.*)?` matches `/a` and `/a/`, `/a/b` and `/a/b/` alike. Not
        for `/` either: it matches only `/`, which has no twin, and no valid path has `/` as
        its twin (`//` is refused by request_path.py as an empty segment).
        """
        return not (self.text.endswith("/**") or self.text == "/")


def compile_pattern(text: str) -> PathPattern:
    """Compile a route pattern; ValueError (with the reason) if it is not one."""
    if not text.startswith("/"):
        raise ValueError("a path pattern starts with '/'")
    segments = text[1:].split("/")
    any_depth = segments[-1] == "**"
    if any_depth:
        segments = segments[:-1]
    parts: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "**":
            raise ValueError("'**' is only allowed as the last segment")
        if segment == "*":
            parts.append("/[^/]+")
            continue
        if segment == "" and index != len(segments) - 1:
            raise ValueError("empty segment ('//') in pattern")
        if segment in (".", ".."):
            raise ValueError("'.' and '..' segments can never match (they are refused)")
        if _BAD_LITERAL.search(segment):
            raise ValueError(
                "a literal segment may not contain '*', '%', '?', '#', ';', '\\' or control "
                "characters (write paths decoded: '/a b', not '/a%20b')"
            )
        parts.append("/" + re.escape(segment))
    regex = "".join(parts) + ("(?:/.*)?" if any_depth else "")
    first = segments[0] if segments and segments[0] != "*" else None
    return PathPattern(
        text,
        re.compile(regex or "/", re.DOTALL),
        re.compile(regex or "/", re.DOTALL | re.I),
        first,
    )


def covered_methods(listed: Iterable[str]) -> frozenset[str]:
    """The methods a route's `methods:` list covers: as written, plus HEAD when GET is listed.

    RFC 9110 §9.3.2: HEAD is GET without the response body, and upstream frameworks (Express,
    Flask, Django, Spring, ASP.NET Core, aiohttp) run the GET handler for it. A GET-only route
    that let HEAD fall through to a later, weaker route would run the protected GET handler
    under the weaker route's rule. Applied once, when the config is compiled.
    """
    methods = frozenset(listed)
    return methods | {"HEAD"} if "GET" in methods else methods


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    pattern: PathPattern
    methods: frozenset[str] | None  # None: every method
    requirement: Requirement | None  # None: a public route, or a deny route
    # `deny: true`: every request this route matches is refused (404, like no route). It has
    # no requirement either, so whoever reads `requirement is None` as "public" must ask
    # `is_deny` first (decision.py does).
    is_deny: bool = False

    def __post_init__(self) -> None:
        if self.is_deny and self.requirement is not None:
            raise ValueError("a deny route has no requirement")

    @property
    def is_public(self) -> bool:
        return self.requirement is None and not self.is_deny

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and self.pattern.matches(path)


class RouteTable:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        # Index for the exact match: by the path's first segment, the routes that could match
        # it, in table order (so first-match semantics hold). 200 routes cost a dict lookup
        # and a few regexes, not 200 (bench/RESULTS.md). The case-folded check below stays a
        # full scan: folding (U+0131 -> i) must never hide a candidate.
        wildcard = tuple(r for r in routes if r.pattern.first_literal is None)
        self._any_first = wildcard
        self._by_first = {
            key: tuple(r for r in routes if r.pattern.first_literal in (key, None))
            for key in {r.pattern.first_literal for r in routes} - {None}
            if key is not None
        }
        # Fast path: with all-lowercase ASCII patterns, a lowercase ASCII path cannot be
        # case-confused. ASCII on both sides: a lowercase pattern may hold U+0131, which folds
        # to 'i', so `/adm\u0131n/**` must still catch `/admin` in the folded check.
        self._lowercase_patterns = all(
            r.pattern.text.isascii() and r.pattern.text == r.pattern.text.lower() for r in routes
        )
        # Fast path: when no pattern tells a path from its trailing-slash twin (all end in
        # `/**`, or are `/`), the twin always picks the same route: skip its match.
        self._slash_twins = any(r.pattern.tells_slash_twins_apart for r in routes)
        # Likewise for format suffixes: only a literal segment can tell `admin` from
        # `admin.json` (`*` and `**` match both).
        self._suffix_twins = any(r.pattern.has_literal_segment for r in routes)
        self._position = {id(r): index for index, r in enumerate(routes)}

    def match(self, method: str, path: str) -> Route | None:
        """The first matching route, or None. CaseConfusion when ignoring letter case would
        pick another route; TrailingSlashConfusion when the path's trailing-slash twin (or its
        case-folded form) would be matched by another route."""
        exact = self._first(method, path)
        # Fast path: lowercase ASCII cannot be confused with another route's lowercase pattern.
        # Not for non-ASCII: U+0131 (dotless i) and U+017F (long s) are lower case already, yet
        # fold to 'i' and 's' (Python's re.IGNORECASE, Java's equalsIgnoreCase, .NET's
        # OrdinalIgnoreCase), so "/api/adm\u0131n" must meet the folded check below. The
        # path's twin is lowercase ASCII exactly when the path is.
        case_blind_safe = self._lowercase_patterns and path.isascii() and path == path.lower()
        if not case_blind_safe:
            folded = self._first_ignoring_case(method, path)
            if folded is not exact:
                raise CaseConfusion(
                    f"path matches route {_name(folded)} ignoring case, {_name(exact)} otherwise"
                )
        if self._slash_twins and path != "/":
            twin = path[:-1] if path.endswith("/") else path + "/"
            other = self._twin_route(method, twin, case_blind_safe)
            if other is not None and other is not exact and self._before(other, exact):
                raise TrailingSlashConfusion(
                    f"path matches route {_name(exact)}, ignoring its trailing slash {_name(other)}"
                )
        if self._suffix_twins:
            self._check_suffix_twin(method, path, exact, case_blind_safe)
        return exact

    def _check_suffix_twin(
        self, method: str, path: str, exact: Route | None, case_blind_safe: bool
    ) -> None:
        head, _, last = path.rpartition("/")
        stem = last.partition(".")[0]
        if stem == last or not stem:
            return  # no suffix (or a dot file such as `/.well-known`): nothing to confuse
        other = self._twin_route(method, f"{head}/{stem}", case_blind_safe)
        if other is not None and other is not exact and self._before(other, exact):
            raise FormatSuffixConfusion(
                f"path matches route {_name(exact)}, without its format suffix {_name(other)}"
            )

    def _twin_route(self, method: str, twin: str, case_blind_safe: bool) -> Route | None:
        """The first route a twin path gets, ignoring case too unless that cannot matter (a
        folded match is a superset of the exact one, so it comes no later)."""
        if case_blind_safe:
            return self._first(method, twin)
        return self._first_ignoring_case(method, twin)

    def _before(self, route: Route, other: Route | None) -> bool:
        return other is None or self._position[id(route)] < self._position[id(other)]

    def _first_ignoring_case(self, method: str, path: str) -> Route | None:
        # A full scan, not the first-segment index: folding (U+0131 -> i) must never hide a
        # candidate.
        return next(
            (
                r
                for r in self.routes
                if _allows(r, method) and r.pattern.matches_ignoring_case(path)
            ),
            None,
        )

    def _first(self, method: str, path: str) -> Route | None:
        segment = path[1:].partition("/")[0]
        for route in self._by_first.get(segment, self._any_first):
            if route.matches(method, path):
                return route
        return None


def _allows(route: Route, method: str) -> bool:
    return route.methods is None or method in route.methods


def _name(route: Route | None) -> str:
    return repr(route.name if route is not None else None)
