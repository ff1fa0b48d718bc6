"""`issuers:`: who may sign tokens, with which keys, algorithms and claim layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator

from m2mgate.auth.presets import PRESETS
from m2mgate.config.schema_claims import ClaimLayoutSchema, TokenTypeSchema
from m2mgate.config.schema_types import NAME_PATTERN, EnvBool, EnvInt, Seconds, Strict
from m2mgate.keys.fetch_url import validate_fetch_url
from m2mgate.keys.keyset import SUPPORTED_ALGORITHMS

# One definition each, in the runtime module that uses it (keys/keyset.py, auth/presets.py);
# the Literal types are built from them so pydantic validates and documents the same list
# (mypy sees plain strings).
if TYPE_CHECKING:
    Algorithm = str
    PresetName = str
else:
    Algorithm = Literal[SUPPORTED_ALGORITHMS]
    PresetName = Literal[tuple(PRESETS)]


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
