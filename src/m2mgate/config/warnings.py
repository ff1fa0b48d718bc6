"""Config warnings: valid configs that accept more than their author likely meant.

A warning never refuses a config (`audiences: []` is right for Cognito, a public catch-all may be
the point); it is said once, where the operator looks: `m2mgate check` prints it as
`yaml.path: warning: message`, `run` logs it as a `config_warning` event at start and on each
reload. Each one must be precise: the CONTRACT example config has none (tested), and a warning
names a request that really behaves the way it says.
"""

from __future__ import annotations

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.presets import PRESETS
from m2mgate.config.schema import ConfigSchema
from m2mgate.routing import PathConfusion, Route, RouteTable

ConfigWarning = tuple[str, str]  # (yaml path, message)

# Methods tried, in this order, as the example of a method that falls through; then any other
# method some route lists (a method no route lists behaves like these).
_EXAMPLE_METHODS = ("DELETE", "PUT", "PATCH", "POST", "GET", "OPTIONS", "PROPFIND", "TRACE")


def config_warnings(config: ConfigSchema, routes: RouteTable) -> tuple[ConfigWarning, ...]:
    return (
        *_open_audiences(config),
        *_token_type_guard_off(config),
        *_methods_falling_through_to_public(routes),
    )


def _token_type_guard_off(config: ConfigSchema) -> list[ConfigWarning]:
    """A `token_type` block written to check nothing, replacing a preset guard that did."""
    found = []
    for index, issuer in enumerate(config.issuers):
        override = issuer.token_type
        if override is None or override.header_typ or override.claims:
            continue
        if override.claims_when_present or PRESETS[issuer.preset].guard == TokenTypeGuard():
            continue
        found.append(
            (
                f"issuers[{index}].token_type",
                f"checks nothing, in place of the {issuer.preset} preset's token-type guard: "
                "id and refresh tokens signed by this issuer's keys pass as access tokens",
            )
        )
    return found


def _open_audiences(config: ConfigSchema) -> list[ConfigWarning]:
    # RFC 9068 §4: the audience check is what stops a token minted for another API of the
    # same issuer; without it and without a client allowlist, every token of the issuer passes.
    return [
        (
            f"issuers[{index}].audiences",
            "`audiences: []` turns the audience check off and `client_ids` is empty: any token "
            "from this issuer, minted for any API and any client, is accepted; list this API's "
            "audiences, or the client_ids allowed to call it",
        )
        for index, issuer in enumerate(config.issuers)
        if not issuer.audiences and not issuer.client_ids
    ]


def _methods_falling_through_to_public(table: RouteTable) -> list[ConfigWarning]:
    """A protected route restricted to some methods, whose paths a later public route also
    matches: its other methods pass with no token (`/api/admin/**` GET, POST, then `/**`)."""
    warnings: list[ConfigWarning] = []
    routes = table.routes
    methods = _candidate_methods(routes)
    for index, route in enumerate(routes):
        if route.methods is None or route.is_public or route.is_deny:
            continue  # a deny or public route narrowed by methods widens nothing
        for later_index in range(index + 1, len(routes)):
            later = routes[later_index]
            if not later.is_public:
                continue
            witness = _fall_through(table, route, later, methods)
            if witness is not None:
                listed = ", ".join(sorted(route.methods))
                warnings.append(
                    (
                        f"routes[{index}].methods",
                        f"route {route.name!r} covers only {listed}; other methods on its paths "
                        f"(e.g. {witness[0]} {witness[1]}) fall through to the public route "
                        f"{later.name!r} (routes[{later_index}]) and need no token; list them "
                        f"here, or add a `deny: true` route for {route.pattern.text} after it",
                    )
                )
                break
    return warnings


def _candidate_methods(routes: tuple[Route, ...]) -> list[str]:
    listed = sorted({method for route in routes for method in route.methods or ()})
    return [*_EXAMPLE_METHODS, *(method for method in listed if method not in _EXAMPLE_METHODS)]


def _fall_through(
    table: RouteTable, route: Route, public: Route, methods: list[str]
) -> tuple[str, str] | None:
    """A (method, path) that `route`'s pattern matches, `route` does not take for its method,
    and the table gives to `public`; None if none of the tried requests does."""
    for path in _shared_paths(route, public):
        for method in methods:
            if route.methods is not None and method in route.methods:
                continue
            if public.methods is not None and method not in public.methods:
                continue
            try:
                if table.match(method, path) is public:
                    return method, path
            except PathConfusion:
                continue  # refused (400): not a fall-through
    return None


def _shared_paths(route: Route, other: Route) -> list[str]:
    """Concrete paths both patterns may match: each `*` filled with the other pattern's literal
    at that position (or `x`), a `**` ending with nothing, the other's deeper segments, or `x`.
    Only paths both really match are returned."""
    mine, other_segments = _segments(route.pattern.text), _segments(other.pattern.text)
    base = [
        _fill(segment, other_segments[position] if position < len(other_segments) else None)
        for position, segment in enumerate(mine)
    ]
    candidates = ["/" + "/".join(base)]
    if route.pattern.text.endswith("**"):
        deeper = [_fill("*", segment) for segment in other_segments[len(mine) :]]
        candidates += ["/" + "/".join([*base, *deeper]), "/" + "/".join([*base, "x"])]
    return [
        path
        for path in dict.fromkeys(candidates)
        if route.pattern.matches(path) and other.pattern.matches(path)
    ]


def _segments(pattern: str) -> list[str]:
    segments = pattern[1:].split("/")
    return segments[:-1] if segments[-1] == "**" else segments


def _fill(segment: str, other: str | None) -> str:
    if segment != "*":
        return segment
    if other is None or other in ("", "*", "**"):
        return "x"
    return other
