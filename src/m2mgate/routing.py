"""The route table: (method, decoded path) -> the first route that matches, else None (deny).

Patterns, compiled once into anchored regular expressions:
- a literal segment matches itself (compared with the percent-decoded request path);
- `*` matches exactly one non-empty segment;
- `**`, only as the last segment, matches any number of segments: `/a/**` matches `/a`, `/a/`
  and `/a/b/c` (but not `/ab`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m2mgate.auth.policy import Requirement

_BAD_LITERAL = re.compile(r"[\x00-\x1f\x7f%?#;\\*]")


@dataclass(frozen=True, slots=True)
class PathPattern:
    text: str
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


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
    return PathPattern(text, re.compile(regex or "/", re.DOTALL))


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    pattern: PathPattern
    methods: frozenset[str] | None  # None: every method
    requirement: Requirement | None  # None: a public route

    @property
    def is_public(self) -> bool:
        return self.requirement is None

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and self.pattern.matches(path)


class RouteTable:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes

    def match(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.matches(method, path):
                return route
        return None
