"""The dev issuer's config file (`m2mgate issuer --config issuer.yaml`): schema and compiling.

```yaml
listen: 127.0.0.1:8081
issuer: http://127.0.0.1:8081      # default: http://<listen>
algorithm: ES256                   # ES256 | RS256
default_audience: https://api.example
key_rotation_seconds: 86400        # optional: rotate the signing key this often
clients:
  - client_id: demo-reader
    client_secret_hash: pbkdf2_sha256$100000$...   # `m2mgate hash-secret`
    scopes: [read:data]
    audiences: [https://api.example]              # default: [default_audience]
    claims: {tenant: acme}                         # extra claims in every token
    token_lifetime_seconds: 300
    active: true                                   # false: refuse new tokens
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from m2mgate.config.errors import validate_model
from m2mgate.config.loading import load_tree
from m2mgate.config.schema_types import SCOPE_TOKEN, EnvBool, EnvInt, Seconds, Strict
from m2mgate.issuer.client_secrets import parse_hash
from m2mgate.jose import SigningAlgorithm
from m2mgate.listen_address import ListenAddress, parse_listen_address

# Claims the issuer sets itself: a client's custom claims may not override them.
REGISTERED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "auth_time", "acr"}
)
# RFC 6749 Appendix A.1: client_id = *VSCHAR; also no ':' (it separates id and secret in Basic).
_CLIENT_ID = re.compile(r"^[\x20-\x39\x3b-\x7e]{1,128}$")


class ClientSchema(Strict):
    client_id: str = Field(description="The client identifier (no ':').")
    client_secret_hash: str = Field(
        description="PBKDF2 hash of the secret (`m2mgate hash-secret`); never the secret itself."
    )
    scopes: list[str] = Field(default_factory=list, description="Scopes this client may request.")
    audiences: list[str] = Field(
        default_factory=list, description="Audiences it may request; default: [default_audience]."
    )
    claims: dict[str, Any] = Field(
        default_factory=dict, description="Extra claims in every token (not registered names)."
    )
    token_lifetime_seconds: EnvInt = Field(300, ge=1, le=86400)
    active: EnvBool = Field(
        True, description="false: authentication works, new tokens are refused."
    )

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not _CLIENT_ID.match(value):
            raise ValueError("1-128 printable ASCII characters, no ':'")
        return value

    @field_validator("client_secret_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        parse_hash(value)
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not SCOPE_TOKEN.match(value):
                raise ValueError(
                    "scopes are RFC 6749 scope-tokens (no spaces, quotes, backslashes)"
                )
        return values

    @field_validator("claims")
    @classmethod
    def _claims(cls, values: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(REGISTERED_CLAIMS & set(values))
        if clash:
            raise ValueError(f"registered claims are set by the issuer: {', '.join(clash)}")
        return values


class IssuerConfigSchema(Strict):
    listen: str = Field("127.0.0.1:8081", description="Address of the issuer, host:port.")
    issuer: str | None = Field(None, description="The `iss` value; default http://<listen>.")
    algorithm: SigningAlgorithm = Field("ES256", description="Signing algorithm.")
    default_audience: str | None = Field(None, description="`aud` when a client names none.")
    key_rotation_seconds: Seconds | None = Field(
        None, gt=0, description="Rotate the signing key this often (the next key is pre-published)."
    )
    clients: list[ClientSchema] = Field(min_length=1)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @field_validator("clients")
    @classmethod
    def _clients(cls, values: list[ClientSchema], info: ValidationInfo) -> list[ClientSchema]:
        seen: set[str] = set()
        for client in values:
            if client.client_id in seen:
                raise ValueError(f"duplicate client_id {client.client_id!r}")
            seen.add(client.client_id)
            if not client.audiences and info.data.get("default_audience") is None:
                raise ValueError(
                    f"client {client.client_id!r} has no audiences and there is no default_audience"
                )
        return values


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]  # config order: the default grant when `scope` is omitted
    audiences: tuple[str, ...]  # the first is the default `aud`
    claims: Mapping[str, Any]
    token_lifetime_seconds: int
    is_active: bool


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    listen: ListenAddress
    issuer: str | None  # None: derived from the bound address
    algorithm: str
    key_rotation_seconds: float | None
    clients: Mapping[str, Client]


def compile_issuer(config: IssuerConfigSchema) -> IssuerSettings:
    clients = {
        item.client_id: Client(
            client_id=item.client_id,
            secret_hash=item.client_secret_hash,
            scopes=tuple(dict.fromkeys(item.scopes)),
            audiences=tuple(item.audiences) or (config.default_audience or "",),
            claims=MappingProxyType(dict(item.claims)),
            token_lifetime_seconds=item.token_lifetime_seconds,
            is_active=item.active,
        )
        for item in config.clients
    }
    return IssuerSettings(
        listen=parse_listen_address(config.listen),
        issuer=config.issuer,
        algorithm=config.algorithm,
        key_rotation_seconds=config.key_rotation_seconds,
        clients=MappingProxyType(clients),
    )


def load_issuer_settings(path: Path, environ: Mapping[str, str] | None = None) -> IssuerSettings:
    return compile_issuer(validate_model(IssuerConfigSchema, load_tree(path, environ)))
