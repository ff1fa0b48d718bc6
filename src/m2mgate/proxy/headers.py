"""Header rules (pure): what the upstream receives and what the client gets back.

Headers travel as (name, value) pairs so repeated fields (Set-Cookie, Via) survive. The upstream
request is built in two steps, in this order, so nothing a client sends can pose as identity:
1. strip: hop-by-hop headers (RFC 9110 §7.6.1) and every header the `Connection` field lists;
   every identity header name (configured *and* default, on every route, public ones too);
   `Authorization` (unless `forward.authorization`); the headers the gateway sets itself;
2. add: identity from the verified principal, then X-Request-Id and X-Forwarded-*.

Identity values are carried percent-encoded (RFC 3986 §2.1) so no claim can break framing
(CR/LF/NUL) or smuggle a list separator: every UTF-8 octet outside visible ASCII, and `%` and
`,`, become `%XX`; everything else is sent as is. `urllib.parse.unquote` restores the value.
Lists: `X-Scopes` space-separated, `X-Roles` comma-separated, items encoded one by one.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from m2mgate.auth.claims import MISSING, ClaimPath, lookup_claim
from m2mgate.auth.principal import Principal

Headers = list[tuple[str, str]]

# The `Server` header of every response the gateway makes, and of proxied responses that carry
# none: aiohttp's default ("Python/3.x aiohttp/3.y") would tell a scanner exact versions.
SERVER = "m2mgate"

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    }
)  # fmt: skip
# Names the identity headers have by default: stripped even when config renames or disables
# one, so an upstream written against the defaults can never be fed a client's value.
DEFAULT_IDENTITY_HEADERS = frozenset(
    {"x-client-id", "x-scopes", "x-roles", "x-issuer", "x-subject", "x-tenant"}
)
# Set by the gateway itself on every forwarded request. `Expect` is answered by the gateway
# (100-continue only after the request is authorized), never passed on.
_GATEWAY_OWNED = frozenset(
    {"x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "expect"}
)

_UNSAFE = re.compile(r"[^\x21-\x24\x26-\x2b\x2d-\x7e]")  # not visible ASCII, or % or ,
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


@dataclass(frozen=True, slots=True)
class ForwardRules:
    client_id: str | None
    scopes: str | None
    roles: str | None
    issuer: str | None
    subject: str | None
    tenant: str | None
    claims: tuple[tuple[str, ClaimPath], ...]
    pass_authorization: bool
    preserve_host: bool
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Computed once: every header name stripped from every incoming request.
    always_dropped: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        configured = (
            self.client_id, self.scopes, self.roles, self.issuer, self.subject, self.tenant,
        )  # fmt: skip
        names = {name.lower() for name in configured if name is not None}
        names.update(header.lower() for header, _ in self.claims)
        names |= DEFAULT_IDENTITY_HEADERS | HOP_BY_HOP | _GATEWAY_OWNED
        if not self.pass_authorization:
            names.add("authorization")
        if not self.preserve_host:
            names.add("host")
        object.__setattr__(self, "always_dropped", frozenset(names))

    def trusts(self, address: str | None) -> bool:
        """Is this peer a proxy whose X-Forwarded-* headers may be believed?"""
        if address is None or not self.trusted_proxies:
            return False  # nobody is trusted: skip parsing the address (hot path)
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self.trusted_proxies)


def encode_header_value(text: str) -> str:
    if not _UNSAFE.search(text):
        return text
    return "".join(
        character if not _UNSAFE.match(character) else
        "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))
        for character in text
    )  # fmt: skip


def encode_claim_value(value: Any) -> str:
    """A claim as one header value: strings encoded, lists comma-joined, the rest as JSON."""
    if isinstance(value, str):
        return encode_header_value(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(encode_header_value(item) for item in value)
    return encode_header_value(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def identity_headers(rules: ForwardRules, principal: Principal) -> Headers:
    headers: Headers = []
    if rules.client_id:
        headers.append((rules.client_id, encode_header_value(principal.client_id)))
    if rules.scopes:
        headers.append((rules.scopes, " ".join(map(encode_header_value, principal.scopes))))
    if rules.roles:
        headers.append((rules.roles, ",".join(map(encode_header_value, principal.roles))))
    if rules.issuer:
        headers.append((rules.issuer, encode_header_value(principal.issuer)))
    if rules.subject and principal.subject is not None:
        headers.append((rules.subject, encode_header_value(principal.subject)))
    if rules.tenant and principal.tenant is not None:
        headers.append((rules.tenant, encode_header_value(principal.tenant)))
    for header, path in rules.claims:
        value = lookup_claim(principal.claims, path)
        if value is not MISSING:
            headers.append((header, encode_claim_value(value)))
    return headers


def _listed_in(value: str, listed: set[str] | None, dropped: frozenset[str]) -> set[str] | None:
    """Add the names a `Connection` field declares hop-by-hop (RFC 9110 §7.6.1), leaving out
    those dropped anyway (`keep-alive`, `close`): most messages then need no second pass."""
    for token in value.split(","):
        name = token.strip().lower()
        if name and name not in dropped:
            listed = listed if listed is not None else set()
            listed.add(name)
    return listed


def choose_request_id(values: Sequence[str]) -> str:
    """Keep one sane client X-Request-Id (for tracing across hops), else mint one."""
    if len(values) == 1 and _REQUEST_ID.fullmatch(values[0]):
        return values[0]
    # 128 random bits for uniqueness, like a UUIDv4. A request id is a tracing label, never
    # a credential, so it does not need the CSPRNG (a getrandom() syscall per request).
    # random's shared generator is seeded from os.urandom and reseeded in forked children.
    return f"{random.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What the gateway knows of the downstream connection, for X-Forwarded-*."""

    address: str | None
    scheme: str
    host: str | None


def upstream_request_headers(
    incoming: Sequence[tuple[str, str]],
    rules: ForwardRules,
    principal: Principal | None,
    request_id: str,
    client: ClientFacts,
) -> Headers:
    drop = rules.always_dropped  # includes Connection and the X-Forwarded-* the gateway sets
    headers: Headers = []
    forwarded: dict[str, list[str]] = {}
    listed: set[str] | None = None
    for name, value in incoming:  # one pass; the names Connection lists are removed after
        lowered = name.lower()
        if lowered not in drop:
            headers.append((name, value))
        elif lowered == "connection":
            listed = _listed_in(value, listed, drop)
        elif lowered.startswith("x-forwarded-"):
            forwarded.setdefault(lowered, []).append(value)
    if listed:
        headers = [(name, value) for name, value in headers if name.lower() not in listed]
    if principal is not None:
        headers.extend(identity_headers(rules, principal))
    headers.append(("X-Request-Id", request_id))
    headers.extend(forwarded_headers(rules, client, forwarded))
    return headers


def forwarded_headers(
    rules: ForwardRules, client: ClientFacts, incoming: dict[str, list[str]]
) -> Headers:
    """X-Forwarded-For/Proto/Host, per the trust settings.

    - No `trusted_proxies` configured: the client's X-Forwarded-For chain is kept and the peer
      appended (the CONTRACT's default); Proto and Host are the gateway's own view. Only the
      last hop, added here, can be trusted by the upstream.
    - `trusted_proxies` configured: a trusted peer's chain is kept and its Proto/Host believed
      (it terminated TLS, it saw the original Host); from any other peer they are replaced.
      Threat: a client forging X-Forwarded-For to slip past an IP allowlist upstream.
    """
    trusted = rules.trusts(client.address)
    keep_chain = trusted or not rules.trusted_proxies
    chain = list(incoming.get("x-forwarded-for", ())) if keep_chain else []
    if client.address:
        chain.append(client.address)
    headers: Headers = []
    if chain:
        headers.append(("X-Forwarded-For", ", ".join(chain)))
    proto = incoming.get("x-forwarded-proto", [client.scheme])[-1] if trusted else client.scheme
    headers.append(("X-Forwarded-Proto", proto))
    host = incoming.get("x-forwarded-host", [client.host or ""])[-1] if trusted else client.host
    if host:
        headers.append(("X-Forwarded-Host", host))
    return headers


_RESPONSE_DROPPED = HOP_BY_HOP | {"x-request-id"}


def downstream_response_headers(
    incoming: Sequence[tuple[str, str]], request_id: str, date: str
) -> tuple[Headers, int | None]:
    """What the client gets of the upstream's response headers, and, apart from them, its
    Content-Length (the listener writes the length it frames the body with).

    Hop-by-hop fields go; X-Request-Id is the gateway's; `Server` and `Date` are added when the
    upstream sent none (RFC 9110 §6.6.1: a proxy with a clock adds a missing Date)."""
    headers: Headers = []
    has_server = has_date = False
    content_length: int | None = None
    listed: set[str] | None = None
    for name, value in incoming:  # one pass; the names Connection lists are removed after
        lowered = name.lower()
        if lowered in _RESPONSE_DROPPED:
            if lowered == "connection":
                listed = _listed_in(value, listed, _RESPONSE_DROPPED)
            continue
        if lowered == "server":
            has_server = True
        elif lowered == "date":
            has_date = True
        elif lowered == "content-length":
            content_length = int(value)  # llhttp accepted it: digits only, one field
            continue  # returned apart: the listener writes the length it frames with
        headers.append((name, value))
    if listed:
        headers = [(name, value) for name, value in headers if name.lower() not in listed]
        has_server = any(name.lower() == "server" for name, _ in headers)
        has_date = any(name.lower() == "date" for name, _ in headers)
        if "content-length" in listed:
            content_length = None
    headers.append(("X-Request-Id", request_id))
    if not has_server:
        headers.append(("Server", SERVER))
    if not has_date:
        headers.append(("Date", date))
    return headers, content_length
