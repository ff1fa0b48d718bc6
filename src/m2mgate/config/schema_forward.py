"""`forward:`: the identity headers the upstream receives, and whom to trust for X-Forwarded-*."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from m2mgate.auth.claims import ClaimPath, format_claim_path, parse_claim_path
from m2mgate.config.schema_types import EnvBool, ParsedFrom, Strict
from m2mgate.http_token import TOKEN
from m2mgate.proxy.header_names import DEFAULT_IDENTITY_NAMES, RESERVED_HEADERS, normalized_name


def _header_name(value: str) -> str:
    # RFC 9110 §5.6.2: a field name is a token. Whole string: `^...$` let "X-Client-Id\n"
    # through (`$` matches before a final newline), a bare LF that ends the header line
    # early for an upstream that accepts one (RFC 9112 §2.2): a second header, or none.
    if not TOKEN.fullmatch(value):
        raise ValueError("not a valid HTTP header name")
    return value


HeaderName = Annotated[str, Field(min_length=1)]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _claim_headers(value: dict[str, str]) -> dict[str, ClaimPath]:
    """`forward.claims`: header -> claim path, each header checked, each path parsed once."""
    parsed = {}
    for header, path in value.items():
        parsed[_header_name(header)] = parse_claim_path(path)
    return parsed


def _claim_headers_text(value: dict[str, ClaimPath]) -> dict[str, str]:
    return {header: format_claim_path(path) for header, path in value.items()}


def _networks(values: list[str]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _networks_text(values: tuple[Network, ...]) -> list[str]:
    return [str(value) for value in values]


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
    claims: Annotated[
        dict[str, ClaimPath], ParsedFrom(dict[str, str], _claim_headers, _claim_headers_text)
    ] = Field(default_factory=dict, description="Extra header -> claim path, e.g. {X-Org: org.id}.")
    authorization: EnvBool = Field(
        False,
        description="Pass the verified Authorization header upstream (never on public routes, "
        "where nothing verified it).",
    )
    trusted_proxies: Annotated[
        tuple[Network, ...], ParsedFrom(list[str], _networks, _networks_text)
    ] = Field(
        default_factory=tuple,
        description="CIDRs of proxies in front of the gateway. When set, only these peers may "
        "supply the forwarded family (Forwarded, X-Forwarded-*, X-Real-IP, ...); from anyone "
        "else it is removed and X-Forwarded-For/Proto/Host are the gateway's own view.",
    )

    @field_validator("client_id", "scopes", "roles", "issuer", "subject", "tenant")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _header_name(value)

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
            # Compared as CGI, WSGI and nginx's underscores_in_headers read names: `X_Request_Id`
            # reaches such an upstream as the gateway's own X-Request-Id (#8 item 4).
            lowered = normalized_name(name)
            if lowered in RESERVED_HEADERS:
                raise ValueError(f"{name} is managed by the gateway and cannot carry identity")
            if lowered in seen:
                raise ValueError(f"header {name} is used twice")
            seen.add(lowered)
        return self
