"""The config file's schema: strict types, unknown keys forbidden, every field documented.

This module only says what a valid file looks like; `compiling.py` turns a validated file into the
frozen objects the request path uses. YAML key names equal the Python field names, so one grep
finds both. `m2mgate schema` prints the JSON Schema generated from these models.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from m2mgate.auth.claims import ClaimKind, parse_claim_path
from m2mgate.auth.presets import PRESETS
from m2mgate.config.loading import EnvText
from m2mgate.http_token import TOKEN
from m2mgate.keys.fetch_url import validate_fetch_url
from m2mgate.keys.keyset import SUPPORTED_ALGORITHMS
from m2mgate.listen_address import parse_listen_address
from m2mgate.proxy.headers import DEFAULT_IDENTITY_NAMES, RESERVED_HEADERS
from m2mgate.proxy.settings import validate_upstream_url

# One definition each, in the runtime module that uses it; the Literal types are built from
# them so pydantic validates and documents the same list (mypy sees plain strings).
if TYPE_CHECKING:
    Algorithm = str
    PresetName = str
    ClaimKindName = str
else:
    Algorithm = Literal[SUPPORTED_ALGORITHMS]
    PresetName = Literal[tuple(PRESETS)]
    ClaimKindName = Literal[tuple(kind.value for kind in ClaimKind)]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Enforcing it here means a scope
# from config can be quoted in a WWW-Authenticate challenge without escaping.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# RFC 9110 §5.6.2 token: the characters a header field name may use.
HEADER_NAME = re.compile(f"^{TOKEN.pattern}$")
# RFC 9110 §9.1: a method is a token; methods are case-sensitive and the standard ones are
# upper case. The JSON Schema says upper case too (see `_method`).
METHOD_TOKEN = HEADER_NAME
_UPPER_CASE_METHOD = r"^[!#$%&'*+.^_`|~0-9A-Z-]+$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- values that may come from the environment --------------------------------------------------


def _env_int(value: Any) -> Any:
    if isinstance(value, EnvText):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("expected an integer (from the environment)") from None
    return value


def _env_float(value: Any) -> Any:
    if isinstance(value, EnvText):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError("expected a number (from the environment)") from None
    return value


def _env_bool(value: Any) -> Any:
    if isinstance(value, EnvText):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError("expected true or false (from the environment)")
    return value


EnvInt = Annotated[int, BeforeValidator(_env_int)]
EnvFloat = Annotated[float, BeforeValidator(_env_float)]
EnvBool = Annotated[bool, BeforeValidator(_env_bool)]
Seconds = Annotated[EnvFloat, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- upstream -----------------------------------------------------------------------------------


class UpstreamSchema(Strict):
    url: str = Field(description="Base URL of the API behind the gateway (scheme, host, port).")
    connect_timeout_seconds: Seconds = Field(
        2.0, gt=0, le=60, description="Longest wait to connect to the upstream (then 504)."
    )
    timeout_seconds: Seconds = Field(
        30.0, gt=0, le=3600,
        description="Longest wait for the response head, and for each later read of the body.",
    )  # fmt: skip
    max_connections: EnvInt = Field(256, ge=1, le=10000, description="Pooled connection cap.")
    preserve_host: EnvBool = Field(
        False, description="Send the client's Host upstream instead of the upstream URL's host."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        validate_upstream_url(value)
        return value


# --- issuers ------------------------------------------------------------------------------------


class JwksCacheSchema(Strict):
    min_ttl_seconds: Seconds = Field(
        300.0, ge=1, description="Floor for the key set TTL (Cache-Control max-age is clamped)."
    )
    max_ttl_seconds: Seconds = Field(
        86400.0, ge=1, description="Ceiling for the key set TTL, so rotations are always seen."
    )
    default_ttl_seconds: Seconds = Field(
        600.0, ge=1, description="Key set lifetime when the response has no Cache-Control max-age."
    )
    refetch_cooldown_seconds: Seconds = Field(
        30.0, ge=1, description="At most one unknown-kid refetch per this many seconds."
    )
    max_stale_seconds: Seconds = Field(
        86400.0,
        ge=0,
        description="How long past expiry a key set is still used while refresh fails.",
    )
    fetch_timeout_seconds: Seconds = Field(
        5.0, gt=0, le=60, description="Total time allowed for one JWKS or discovery fetch."
    )
    max_response_bytes: EnvInt = Field(
        1024 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger JWKS responses are refused."
    )

    @field_validator("max_ttl_seconds")
    @classmethod
    def _ttl_order(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_ttl_seconds")
        if low is not None and value < low:
            raise ValueError("must be at least min_ttl_seconds")
        return value


def _claim_path(value: str) -> str:
    parse_claim_path(value)
    return value


ClaimPathText = Annotated[str, AfterValidator(_claim_path)]


def _source_shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class ClaimSourceSchema(Strict):
    path: ClaimPathText = Field(description="Claim path, e.g. scp or realm_access.roles.")
    type: ClaimKindName = Field(
        ClaimKind.ARRAY_OR_SPACE_DELIMITED.value,
        description="How the claim is written; anything else in the token is a 401.",
    )


ClaimSourceSpec = Annotated[ClaimSourceSchema, BeforeValidator(_source_shorthand)]


class ClaimLayoutSchema(Strict):
    """Replaces parts of the preset's claim layout; keys left out keep the preset's."""

    client_id: list[ClaimPathText] | None = Field(
        None, min_length=1, description="Client id claims, first present wins."
    )
    scopes: list[ClaimSourceSpec] | None = Field(
        None, description="Scope claims (a string is a path read as string or array)."
    )
    roles: list[ClaimSourceSpec] | None = Field(
        None, description="Role claims (a string is a path read as string or array)."
    )
    tenant: ClaimPathText | None = Field(None, description="Tenant claim (null: none).")


MarkerValues = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class TokenTypeSchema(Strict):
    """Replaces the preset's token-type guard entirely."""

    header_typ: list[str] | None = Field(
        None, description="Allowed JOSE header typ values (case-insensitive); null: not checked."
    )
    claims: dict[ClaimPathText, MarkerValues] = Field(
        default_factory=dict, description="Claims that must be present with one of these values."
    )
    claims_when_present: dict[ClaimPathText, MarkerValues] = Field(
        default_factory=dict, description="Claims checked only when the token has them."
    )

    @model_validator(mode="after")
    def _says_something(self) -> TokenTypeSchema:
        # Fail closed (#8 review R4): `token_type: {}` reads like "the defaults", but it
        # replaces the preset's guard (RFC 9068 `typ`, Descope `drn`, Cognito `token_use`,
        # ...) with one that checks nothing, so refresh and id tokens signed by the same key
        # passed as access tokens. A guard that checks nothing must be written out.
        if not self.model_fields_set:
            raise ValueError(
                "an empty block replaces the preset's token-type guard with one that checks "
                "nothing; remove it to keep the preset's guard, or set header_typ, claims or "
                "claims_when_present (`header_typ: null` to check nothing on purpose)"
            )
        return self


class IssuerSchema(Strict):
    name: str = Field(
        pattern=NAME_PATTERN, description="Used in logs, metrics and `require.issuers`."
    )
    issuer: str = Field(min_length=1, description="The exact `iss` value, compared byte for byte.")
    allow_insecure_http: EnvBool = Field(
        False, description="Allow plain-http key and discovery URLs that are not loopback."
    )
    audiences: list[str] = Field(
        description="`aud` must contain one of these; `[]` explicitly turns the check off."
    )
    client_ids: list[str] = Field(default_factory=list, description="Allowlist; empty = any.")
    algorithms: list[Algorithm] = Field(
        ["RS256"], min_length=1, description="Allowlist of signing algorithms (asymmetric only)."
    )
    preset: PresetName = Field(
        "generic", description="Claim layout: where the client id, scopes and roles live."
    )
    claims: ClaimLayoutSchema | None = Field(
        None, description="Per-issuer replacement of parts of the preset's claim layout."
    )
    token_type: TokenTypeSchema | None = Field(
        None, description="Per-issuer replacement of the preset's token-type guard."
    )
    leeway_seconds: Seconds = Field(
        30.0, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat."
    )
    max_token_lifetime_seconds: Seconds = Field(
        86400.0,
        gt=0,
        description="Tokens valid for longer than this (exp - iat, exp - now) are refused.",
    )
    jwks: JwksCacheSchema = Field(
        default_factory=JwksCacheSchema,
        description="Key cache tuning (TTL bounds, cooldown, staleness).",
    )
    # Declared last: its validator reads `issuer` and `allow_insecure_http` from `info.data`.
    jwks_uri: str | None = Field(
        None,
        validate_default=True,
        description="Key set URL; when absent it is found by OIDC / RFC 8414 discovery.",
    )

    @field_validator("audiences", "client_ids")
    @classmethod
    def _non_empty_strings(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value:
                raise ValueError("entries must be non-empty strings")
        return values

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        allow_http = bool(info.data.get("allow_insecure_http", False))
        if value is not None:
            validate_fetch_url(value, allow_insecure_http=allow_http)
            return value
        issuer = info.data.get("issuer")
        if issuer is None:
            return value  # the issuer field has its own error
        try:
            validate_fetch_url(issuer, allow_insecure_http=allow_http)
        except ValueError as error:
            raise ValueError(
                f"required: discovery needs the issuer to be a fetchable URL, and {error}"
            ) from None
        return value


# --- forwarding ---------------------------------------------------------------------------------


def _header_name(value: str) -> str:
    if not HEADER_NAME.match(value):
        raise ValueError("not a valid HTTP header name")
    return value


HeaderName = Annotated[str, Field(min_length=1)]


class ForwardSchema(Strict):
    client_id: HeaderName | None = Field(
        DEFAULT_IDENTITY_NAMES["client_id"],
        description="Header for the client identity (null: not sent).",
    )
    scopes: HeaderName | None = Field(
        DEFAULT_IDENTITY_NAMES["scopes"],
        description="Header for the scopes, space-separated (null: not sent).",
    )
    roles: HeaderName | None = Field(
        DEFAULT_IDENTITY_NAMES["roles"],
        description="Header for the roles, comma-separated (null: not sent).",
    )
    issuer: HeaderName | None = Field(
        DEFAULT_IDENTITY_NAMES["issuer"], description="Header for the token's iss (null: not sent)."
    )
    subject: HeaderName | None = Field(
        DEFAULT_IDENTITY_NAMES["subject"],
        description="Header for the token's sub (null: not sent).",
    )
    tenant: HeaderName | None = Field(
        None, description="Header for the preset's tenant claim (default: not sent)."
    )
    claims: dict[str, str] = Field(
        default_factory=dict, description="Extra header -> claim path, e.g. {X-Org: org.id}."
    )
    authorization: EnvBool = Field(
        False,
        description="Pass the verified Authorization header upstream (never on public routes, "
        "where nothing verified it).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of proxies in front of the gateway. When set, only these peers may "
        "supply the forwarded family (Forwarded, X-Forwarded-*, X-Real-IP, ...); from anyone "
        "else it is removed and X-Forwarded-For/Proto/Host are the gateway's own view.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or CIDR network") from None
        return values

    @field_validator("client_id", "scopes", "roles", "issuer", "subject", "tenant")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _header_name(value)

    @field_validator("claims")
    @classmethod
    def _claims(cls, value: dict[str, str]) -> dict[str, str]:
        for header, path in value.items():
            _header_name(header)
            parse_claim_path(path)
        return value

    @model_validator(mode="after")
    def _distinct_headers(self) -> ForwardSchema:
        names = [
            self.client_id, self.scopes, self.roles, self.issuer, self.subject, self.tenant,
            *self.claims,
        ]  # fmt: skip
        seen: set[str] = set()
        for name in names:
            if name is None:
                continue
            lowered = name.lower()
            if lowered in RESERVED_HEADERS:
                raise ValueError(f"{name} is managed by the gateway and cannot carry identity")
            if lowered in seen:
                raise ValueError(f"header {name} is used twice")
            seen.add(lowered)
        return self


# --- routes -------------------------------------------------------------------------------------

ClaimScalar = str | int | bool


def _claim_rule(value: Any) -> Any:
    def is_scalar(item: Any) -> bool:
        return isinstance(item, (str, int, bool)) and not isinstance(item, float)

    # An empty string is no value a token should have to carry; it is what an unset
    # `${TENANT}` substitutes to, and a claim `""` would then pass.
    if value == "" or (isinstance(value, list) and "" in value):
        raise ValueError("an empty string is not an allowed claim value")
    if is_scalar(value):
        return value
    if isinstance(value, list) and value and all(is_scalar(item) for item in value):
        return value
    raise ValueError("expected a string, integer or boolean, or a non-empty list of them")


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
    claims: dict[str, Annotated[Any, BeforeValidator(_claim_rule)]] = Field(
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

    @field_validator("claims")
    @classmethod
    def _claim_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            parse_claim_path(path)
        return value

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
    if not METHOD_TOKEN.match(value):
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


class RouteSchema(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Used in logs and metric labels.")
    path: str = Field(description="Pattern: literal segments, `*` one segment, trailing `**` any.")
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

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        from m2mgate.routing import compile_pattern  # local: routing imports nothing from config

        compile_pattern(value)
        return value

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


# --- top level ----------------------------------------------------------------------------------


class LimitsSchema(Strict):
    max_token_bytes: EnvInt = Field(
        8192, ge=512, le=65536, description="Authorization header size cap, checked before parsing."
    )
    max_header_bytes: EnvInt = Field(
        16384, ge=1024, le=1024 * 1024, description="Longest header field line (else 431)."
    )
    max_headers: EnvInt = Field(100, ge=10, le=1000, description="Most header fields (else 431).")
    max_url_bytes: EnvInt = Field(
        8190, ge=256, le=1024 * 1024, description="Longest request line (else 414)."
    )
    max_body_bytes: EnvInt | None = Field(
        16 * 1024 * 1024,
        ge=0,
        description="Largest request body forwarded (else 413); 0: no body at all; null: no limit.",
    )
    head_timeout_seconds: Seconds = Field(
        10.0, gt=0, le=600, description="A request head must arrive within this (slowloris)."
    )
    body_idle_timeout_seconds: Seconds = Field(
        30.0, gt=0, le=3600, description="Longest pause while a client sends its body (else 408)."
    )
    keepalive_timeout_seconds: Seconds = Field(
        75.0, gt=0, le=3600, description="Idle keep-alive connections are closed after this."
    )
    send_timeout_seconds: Seconds = Field(
        60.0,
        gt=0,
        le=3600,
        description="A client that reads nothing of a response for this long is cut off, and "
        "the upstream connection it held is freed (nginx's send_timeout).",
    )
    max_connections: EnvInt = Field(
        10000, ge=1, le=1_000_000, description="Concurrent client connections; more are closed."
    )
    token_cache_entries: EnvInt = Field(
        10000,
        ge=0,
        le=1_000_000,
        description="Verified tokens remembered (LRU) so a repeat token skips the signature "
        "check; an entry never outlives the token's exp or its key. 0: off.",
    )
    token_cache_max_bytes: EnvInt = Field(
        32 * 1024 * 1024,
        ge=0,
        description="Memory the verified-token cache may hold, per process, as estimated per "
        "entry (a SHA-256 of the token, the principal and the claims the config reads); "
        "least recently used entries are dropped past it or past token_cache_entries. The "
        "default keeps the cache within the 256Mi Kubernetes manifest whatever the tokens "
        "look like. 0: no byte bound.",
    )

    @model_validator(mode="after")
    def _token_fits_in_a_header(self) -> LimitsSchema:
        if self.max_header_bytes < self.max_token_bytes + len("Authorization: Bearer "):
            raise ValueError(
                "max_header_bytes must exceed max_token_bytes (plus the header name), so an "
                "oversized token gets a 401 invalid_token rather than a parser error"
            )
        return self


LogLevel = Literal["debug", "info", "warning", "error"]


def _listen(value: str) -> str:
    parse_listen_address(value)
    return value


class ConfigSchema(Strict):
    listen: str = Field("127.0.0.1:8080", description="Proxy address, host:port.")
    admin_listen: str = Field("127.0.0.1:9901", description="/metrics, /healthz, /readyz.")
    upstream: UpstreamSchema = Field(description="The API behind the gateway.")
    issuers: list[IssuerSchema] = Field(
        min_length=1, description="Trusted token issuers, each with its keys and claim layout."
    )
    forward: ForwardSchema = Field(
        default_factory=ForwardSchema, description="Identity headers sent to the upstream."
    )
    routes: list[RouteSchema] = Field(
        min_length=1, description="First match wins; no match -> 404 (default deny)."
    )
    limits: LimitsSchema = Field(
        default_factory=LimitsSchema, description="Request size limits and client timeouts."
    )
    shutdown_grace_seconds: Seconds = Field(
        20.0, ge=0, le=600, description="How long SIGTERM waits for in-flight requests."
    )
    shutdown_delay_seconds: Seconds = Field(
        0.0,
        ge=0,
        le=300,
        description="On SIGTERM, /readyz answers 503 at once but the gateway goes on accepting "
        "and serving for this long before it drains, while load balancers (Kubernetes "
        "endpoints, kube-proxy, ingress) stop sending to it. A second SIGTERM/SIGINT skips the "
        "rest. 0: drain at once.",
    )
    log_level: LogLevel = Field("info", description="Least severe log level written.")

    @field_validator("listen", "admin_listen")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return _listen(value)

    # Unique names and `issuer` values, case-only duplicate route paths and `admin_listen` vs
    # `listen` span several items: they are checked in config/cross_checks.py, which pydantic's
    # list validators could not do in the same pass as the items' own problems.
