"""An issuer's `claims:` and `token_type:`: replacements for parts of its preset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from m2mgate.auth.claims import ClaimKind
from m2mgate.config.schema_types import ClaimPathText, Strict

# One definition, in auth/claims.py; the Literal is built from it so pydantic validates and
# documents the same list (mypy sees a plain string).
if TYPE_CHECKING:
    ClaimKindName = str
else:
    ClaimKindName = Literal[tuple(kind.value for kind in ClaimKind)]


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
