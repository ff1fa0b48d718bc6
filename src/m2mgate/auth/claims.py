"""Claim paths and claim layouts: where a provider puts the client id, scopes, roles and tenant.

A layout is data (`ClaimLayout`), filled in by a preset (`presets.py`) or by config, so a new
provider needs no code. Reading is strict by type: a string where an array is expected (or the
reverse) is an `InvalidClaim`, unless the source's `kind` documents the conversion. A string is
never iterated as characters and membership is never a substring test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from m2mgate.auth.principal import Principal
from m2mgate.errors import InvalidClaim, MissingClaim


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """A path segment taken from another (top-level, string) claim: in `tenants.{dct}.roles`
    the middle segment is the value of `dct` (Descope's current tenant)."""

    name: str


ClaimPath = tuple[str | ClaimRef, ...]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def parse_claim_path(text: str) -> ClaimPath:
    """`realm_access.roles` -> ("realm_access", "roles").

    - `.` separates segments; `\\.` is a literal dot, for namespaced claims that are URLs
      (`https://example\\.com/roles`);
    - a whole segment in braces, `{dct}`, is the string value of that top-level claim.
    Raises ValueError on an empty segment, a stray backslash or a malformed reference.
    """
    segments: list[str | ClaimRef] = []
    current: list[str] = []
    escaped_any = False
    characters = iter(text)

    def close_segment() -> None:
        raw = "".join(current)
        if raw.startswith("{") and raw.endswith("}") and not escaped_any:
            name = raw[1:-1]
            if not name or "{" in name or "}" in name:
                raise ValueError(f"claim path {text!r} has a malformed {{reference}}")
            segments.append(ClaimRef(name))
        elif not raw:
            raise ValueError(f"claim path {text!r} has an empty segment")
        else:
            segments.append(raw)

    for character in characters:
        if character == "\\":
            escaped = next(characters, "")
            if escaped not in (".", "\\"):
                raise ValueError("in a claim path, '\\' may only escape '.' or '\\'")
            current.append(escaped)
            escaped_any = True
        elif character == ".":
            close_segment()
            current, escaped_any = [], False
        else:
            current.append(character)
    close_segment()
    return tuple(segments)


def format_claim_path(path: ClaimPath) -> str:
    return ".".join(
        f"{{{segment.name}}}"
        if isinstance(segment, ClaimRef)
        else segment.replace("\\", "\\\\").replace(".", "\\.")
        for segment in path
    )


def lookup_claim(claims: Mapping[str, Any], path: ClaimPath) -> Any:
    """The value at `path`, or MISSING. Only JSON objects are descended into (never a string
    or an array). The top level may be any mapping (a Principal's claims are read-only)."""
    node: Any = claims
    for index, segment in enumerate(path):
        if isinstance(segment, ClaimRef):
            key = claims.get(segment.name)
            if not isinstance(key, str):
                return MISSING  # the referenced claim is absent or not a string
        else:
            key = segment
        if index == 0:
            node = claims.get(key, MISSING)
            if node is MISSING:
                return MISSING
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return MISSING
    return node


class ClaimKind(Enum):
    """How a list-valued claim is written in the token."""

    SPACE_DELIMITED = "space_delimited"  # "read write" (RFC 6749 §3.3 `scope`)
    ARRAY = "array"  # ["read", "write"]
    # Documented conversion: either of the two forms above (Entra `scp`, generic tokens).
    ARRAY_OR_SPACE_DELIMITED = "array_or_space_delimited"


@dataclass(frozen=True, slots=True)
class ClaimSource:
    path: ClaimPath
    kind: ClaimKind


@dataclass(frozen=True, slots=True)
class ClaimLayout:
    """Where one issuer's tokens carry identity. Sources are read in order.

    - client id: the first present path wins;
    - scopes and roles: every present source contributes (union, first-seen order): issuers
      that split them across claims (Keycloak realm and client roles) need all of them;
    - tenant: one optional path.
    """

    client_id: tuple[ClaimPath, ...]
    scopes: tuple[ClaimSource, ...]
    roles: tuple[ClaimSource, ...]
    tenant: ClaimPath | None = None


_EXPECTED_FORM = {
    ClaimKind.SPACE_DELIMITED: "a space-delimited string",
    ClaimKind.ARRAY: "an array of strings",
    ClaimKind.ARRAY_OR_SPACE_DELIMITED: "a space-delimited string or an array of strings",
}


def read_string(claims: Mapping[str, Any], path: ClaimPath) -> str | None:
    """A string claim, or None when absent. Any other JSON type is an InvalidClaim."""
    value = lookup_claim(claims, path)
    if value is MISSING:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"claim {format_claim_path(path)} must be a non-empty string")
    return value


def read_string_list(claims: Mapping[str, Any], source: ClaimSource) -> list[str] | None:
    value = lookup_claim(claims, source.path)
    if value is MISSING:
        return None
    if isinstance(value, str) and source.kind is not ClaimKind.ARRAY:
        # RFC 6749 §3.3: scope-tokens are separated by SP (0x20) only; runs of SP are tolerated.
        # Never `str.split()`: it also splits on NBSP, tabs, line breaks and other Unicode
        # whitespace, so `read:data<NBSP>admin` (one scope-token nobody granted) became
        # `admin`. Any other whitespace stays inside its token, which then matches nothing.
        return [item for item in value.split(" ") if item]
    if isinstance(value, list) and source.kind is not ClaimKind.SPACE_DELIMITED:
        if not all(isinstance(item, str) for item in value):
            raise InvalidClaim(f"claim {format_claim_path(source.path)} must hold only strings")
        return [item for item in value if item]
    raise InvalidClaim(
        f"claim {format_claim_path(source.path)} must be {_EXPECTED_FORM[source.kind]}"
    )


def _collect(claims: Mapping[str, Any], sources: tuple[ClaimSource, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for source in sources:
        for item in read_string_list(claims, source) or ():
            seen.setdefault(item, None)
    return tuple(seen)


def read_client_id(claims: Mapping[str, Any], layout: ClaimLayout) -> str:
    for path in layout.client_id:
        value = read_string(claims, path)
        if value is not None:
            return value
    names = ", ".join(format_claim_path(path) for path in layout.client_id)
    raise MissingClaim(f"no client identity claim (looked for {names})")


def build_principal(
    claims: dict[str, Any],
    layout: ClaimLayout,
    *,
    issuer_name: str,
    issuer: str,
    client_id: str,
    kept_claims: dict[str, Any] | None = None,
) -> Principal:
    """Normalise verified claims. `client_id` was read earlier (the allowlist needed it).
    `kept_claims`: what `Principal.claims` holds (auth/claim_projection.py); default: all."""
    tenant = read_string(claims, layout.tenant) if layout.tenant is not None else None
    exp = claims["exp"]  # presence and type were checked by the time validation
    return Principal(
        issuer_name=issuer_name,
        issuer=issuer,
        client_id=client_id,
        subject=read_string(claims, ("sub",)),
        scopes=_collect(claims, layout.scopes),
        roles=_collect(claims, layout.roles),
        tenant=tenant,
        expires_at=float(exp),
        claims=MappingProxyType(claims if kept_claims is None else kept_claims),
    )
