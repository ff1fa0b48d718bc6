"""The route table: (method, decoded path) -> the first route that matches, else None (deny).

Letter case: routes match case-sensitively, but a path that would match a *different* route if
case were ignored (Unicode case folding included: U+0131 folds to `i`) is refused
(`CaseConfusion`). Threat: many upstreams compare paths case-insensitively (Express by
default, ASP.NET, IIS): with `/api/admin/**` protected and a public catch-all after it,
`/API/admin` would pass the gateway as public and be served as admin.
Refusing the ambiguous request is safe for case-sensitive and case-insensitive upstreams alike.

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


class CaseConfusion(ValueError):
    """The path matches a different route when letter case is ignored."""


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

    def match(self, method: str, path: str) -> Route | None:
        """The first matching route, or None; CaseConfusion when ignoring letter case would
        pick another route."""
        exact = self._first(method, path)
        # Fast path: lowercase ASCII cannot be confused with another route's lowercase pattern.
        # Not for non-ASCII: U+0131 (dotless i) and U+017F (long s) are lower case already, yet
        # fold to 'i' and 's' (Python's re.IGNORECASE, Java's equalsIgnoreCase, .NET's
        # OrdinalIgnoreCase), so "/api/adm\u0131n" must meet the folded check below.
        if self._lowercase_patterns and path.isascii() and path == path.lower():
            return exact
        folded = next(
            (
                r
                for r in self.routes
                if _allows(r, method) and r.pattern.matches_ignoring_case(path)
            ),
            None,
        )
        if folded is not exact:
            raise CaseConfusion(
                f"path matches route {folded.name if folded else None!r} ignoring case, "
                f"{exact.name if exact else None!r} otherwise"
            )
        return exact

    def _first(self, method: str, path: str) -> Route | None:
        segment = path[1:].partition("/")[0]
        for route in self._by_first.get(segment, self._any_first):
            if route.matches(method, path):
                return route
        return None


def _allows(route: Route, method: str) -> bool:
    return route.methods is None or method in route.methods
