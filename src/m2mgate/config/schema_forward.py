"""`forward:`: the identity headers the upstream receives, and whom to trust for X-Forwarded-*."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from m2mgate.auth.claims import parse_claim_path
from m2mgate.config.schema_types import EnvBool, Strict
from m2mgate.http_token import TOKEN
from m2mgate.proxy.headers import DEFAULT_IDENTITY_NAMES, RESERVED_HEADERS

# RFC 9110 §5.6.2 token: the characters a header field name may use.
HEADER_NAME = re.compile(f"^{TOKEN.pattern}$")


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
