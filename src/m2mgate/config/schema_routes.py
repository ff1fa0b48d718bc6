"""`routes:`: path patterns, methods, and the conditions a verified token must meet."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from m2mgate.auth.claims import ClaimPath, format_claim_path, parse_claim_path
from m2mgate.config.schema_types import (
    NAME_PATTERN,
    SCOPE_TOKEN,
    EnvBool,
    ParsedFrom,
    Strict,
)
from m2mgate.http_token import TOKEN
from m2mgate.routing import PathPattern, compile_pattern

# RFC 9110 §9.1: a method is a token (http_token.TOKEN); methods are case-sensitive and the
# standard ones are upper case. The JSON Schema says upper case too (see `_method`).
_UPPER_CASE_METHOD = r"^[!#$%&'*+.^_`|~0-9A-Z-]+$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


ClaimScalar = str | int | bool


def _claim_rule(value: Any) -> Any:
    """One `require.claims` entry: the allowed values, as a tuple (a scalar is a tuple of one)."""

    def is_scalar(item: Any) -> bool:
        return isinstance(item, (str, int, bool)) and not isinstance(item, float)

    # An empty string is no value a token should have to carry; it is what an unset
    # `${TENANT}` substitutes to, and a claim `""` would then pass.
    if value == "" or (isinstance(value, list) and "" in value):
        raise ValueError("an empty string is not an allowed claim value")
    if is_scalar(value):
        return (value,)
    if isinstance(value, list) and value and all(is_scalar(item) for item in value):
        return tuple(value)
    raise ValueError("expected a string, integer or boolean, or a non-empty list of them")


def _claim_paths(value: dict[str, tuple[ClaimScalar, ...]]) -> dict[ClaimPath, Any]:
    return {parse_claim_path(path): allowed for path, allowed in value.items()}


def _claims_text(value: dict[ClaimPath, tuple[ClaimScalar, ...]]) -> dict[str, list[Any]]:
    return {format_claim_path(path): list(allowed) for path, allowed in value.items()}


# Written, a condition names at least one value (see `_not_empty`); editors learn it from these.
_SOME_ITEMS: dict[str, Any] = {"minItems": 1}


class RequireSchema(Strict):
    scopes: list[str] = Field(
        default_factory=list, description="All of these scopes.", json_schema_extra=_SOME_ITEMS
    )
    any_scopes: list[str] = Field(
        default_factory=list, description="At least one of these.", json_schema_extra=_SOME_ITEMS
    )
    roles: list[str] = Field(
        default_factory=list, description="All of these roles.", json_schema_extra=_SOME_ITEMS
    )
    any_roles: list[str] = Field(
        default_factory=list, description="At least one of these.", json_schema_extra=_SOME_ITEMS
    )
    claims: Annotated[
        dict[ClaimPath, tuple[ClaimScalar, ...]],
        ParsedFrom(
            dict[str, Annotated[Any, BeforeValidator(_claim_rule)]], _claim_paths, _claims_text
        ),
    ] = Field(
        default_factory=dict,
        description="Claim path -> allowed value or list of allowed values.",
        json_schema_extra={"minProperties": 1},
    )
    issuers: list[str] = Field(
        default_factory=list, description="Issuer names (any of).", json_schema_extra=_SOME_ITEMS
    )

    @field_validator("scopes", "any_scopes", "roles", "any_roles", "claims", "issuers")
    @classmethod
    def _not_empty(cls, value: list[str] | dict[str, Any], info: ValidationInfo) -> Any:
        # Fail closed: a key that is written is a condition. `any_scopes: []` names no scope,
        # yet an empty set compiles to "no condition", so the route allowed any valid token
        # (the same for `any_roles` and `issuers`, and `scopes: []`, `roles: []`, `claims: {}`
        # are no condition either). Refuse them, and say how to write what was meant.
        if not value:
            empty = "{}" if isinstance(value, dict) else "[]"
            raise ValueError(
                f"`{info.field_name}: {empty}` names nothing, so it is no condition: remove the "
                "key, or write `require: {}` to accept any valid token"
            )
        return value

    @field_validator("scopes", "any_scopes")
    @classmethod
    def _scopes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not SCOPE_TOKEN.match(value):
                raise ValueError(
                    "scopes are RFC 6749 scope-tokens: printable ASCII without space, '\"' or '\\'"
                )
        return values

    @field_validator("roles", "any_roles")
    @classmethod
    def _roles(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value or _CONTROL.search(value):
                raise ValueError("roles must be non-empty strings without control characters")
        return values

    @field_validator("issuers")
    @classmethod
    def _issuer_names(cls, values: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("issuer_names")
        if known is None:
            return values
        for value in values:
            if value not in known:
                allowed = ", ".join(sorted(known)) or "none configured"
                raise ValueError(f"unknown issuer name {value!r} (configured: {allowed})")
        return values


def _method(value: str) -> str:
    # Any token, not a fixed list: a method nobody can list (PROPFIND, PURGE, MKCOL, REPORT,
    # SEARCH, ...) can never be restricted and falls through to a later, maybe public, route.
    if not TOKEN.fullmatch(value):  # whole string: `$` would let "GET\n" through
        raise ValueError("not an HTTP method: RFC 9110 §9.1 method names are tokens")
    # RFC 9110 §9.1: methods are case-sensitive, and clients send GET, not get. A lower-case
    # entry would silently never match, leaving the method it meant to the routes after it.
    if value != value.upper():
        raise ValueError(
            f"methods are case-sensitive (RFC 9110 §9.1): write {value.upper()!r}; "
            f"{value!r} would never match a request"
        )
    return value


HttpMethod = Annotated[
    str, AfterValidator(_method), Field(json_schema_extra={"pattern": _UPPER_CASE_METHOD})
]


def _pattern_text(pattern: PathPattern) -> str:
    return pattern.text


class RouteSchema(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Used in logs and metric labels.")
    path: Annotated[PathPattern, ParsedFrom(str, compile_pattern, _pattern_text)] = Field(
        description="Pattern: literal segments, `*` one segment, trailing `**` any."
    )
    methods: list[HttpMethod] | None = Field(
        None,
        min_length=1,
        description="Default: all. Any RFC 9110 method, upper case (GET also covers HEAD).",
    )
    public: EnvBool = Field(False, description="No token needed (identity headers still stripped).")
    deny: EnvBool = Field(
        False,
        description="Explicit deny: every request matched is answered like an unmatched path "
        "(404 not_found); logs and metrics name the route, reason route_denied.",
    )
    require: RequireSchema | None = Field(
        None,
        validate_default=True,
        description="Conditions a verified token must meet; `{}` = any valid token.",
    )

    @field_validator("deny")
    @classmethod
    def _deny_is_not_public(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("public", False):
            raise ValueError("a deny route cannot be public; choose one")
        return value

    @field_validator("require")
    @classmethod
    def _require_or_public(cls, value: RequireSchema | None, info: ValidationInfo) -> Any:
        public = info.data.get("public", False)
        if "deny" not in info.data:
            return value  # `deny` has its own error
        if info.data["deny"]:
            if value is not None:
                raise ValueError(
                    "a deny route has no `require`: it refuses every request it matches"
                )
            return value
        if value is None and not public:
            raise ValueError(
                "required unless `public: true` (write `require: {}` to accept any valid token, "
                "or `deny: true` to refuse every request the route matches)"
            )
        if value is not None and public:
            raise ValueError("a public route cannot have `require`; choose one")
        return value
