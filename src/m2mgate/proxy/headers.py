"""Header rules (pure): what the upstream receives and what the client gets back.

Headers travel as (name, value) pairs so repeated fields (Set-Cookie, Via) survive. The upstream
request is built in two steps, in this order, so nothing a client sends can pose as identity:
1. strip: hop-by-hop headers (RFC 9110 §7.6.1) and every header the `Connection` field lists;
   every identity header name (configured *and* default, on every route, public ones too);
   `Authorization` (unless `forward.authorization`); the headers the gateway sets itself
   (X-Request-Id, the framing fields: the pool frames the body it sends); the forwarded family
   (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`, ...) unless the peer is a
   trusted proxy; and the routing overrides (`X-HTTP-Method-Override`, `X-Original-URL`, ...).
   Names are compared normalised: case-folded and with `_` read as `-`, because CGI, WSGI
   and nginx's `underscores_in_headers` map `X_Client_Id` and `X-Client-Id` to one variable;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from m2mgate.auth.claims import MISSING, ClaimPath, lookup_claim
from m2mgate.auth.principal import Principal
from m2mgate.http_token import TOKEN
from m2mgate.request_path import is_valid_authority

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
# Names the identity headers have by default (`forward:` in config; `tenant` is only sent when
# configured): stripped even when config renames or disables one, so an upstream written
# against the defaults can never be fed a client's value.
DEFAULT_IDENTITY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "client_id": "X-Client-Id", "scopes": "X-Scopes", "roles": "X-Roles",
        "issuer": "X-Issuer", "subject": "X-Subject", "tenant": "X-Tenant",
    }
)  # fmt: skip
DEFAULT_IDENTITY_HEADERS = frozenset(name.lower() for name in DEFAULT_IDENTITY_NAMES.values())
# Set by the gateway itself on every forwarded request. `Expect` is answered by the gateway
# (100-continue only after the request is authorized), never passed on. Content-Length is
# written by the upstream pool from the bytes it sends (RFC 9112 §6: one framing, the
# gateway's), like Transfer-Encoding (hop-by-hop).
_GATEWAY_OWNED = frozenset({"x-request-id", "expect", "content-length"})
# Facts about the connection a proxy saw (RFC 7239 `Forwarded` and the de-facto X- family).
# Upstreams use them for client IP allowlists, redirects and URL building; only a trusted
# proxy (`forward.trusted_proxies`) may supply them. From anyone else they are removed, and
# X-Forwarded-For/-Proto/-Host are set from what the gateway saw. Any other `X-Forwarded-*`
# name counts too. The client certificate a TLS terminator forwards (X-ARR-ClientCert, read by
# ASP.NET Core by default; nginx's X-SSL-Client-*) is such a fact as well.
FORWARDED_FAMILY = frozenset(
    {
        "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-server", "x-forwarded-scheme",
        "x-forwarded-ssl", "x-forwarded", "forwarded-for", "x-real-ip", "true-client-ip",
        "x-client-ip", "client-ip", "x-cluster-client-ip", "cf-connecting-ip",
        "fastly-client-ip", "x-original-forwarded-for", "x-originating-ip", "x-remote-ip",
        "x-remote-addr", "x-proxyuser-ip", "x-scheme", "x-url-scheme", "front-end-https",
        "x-host", "x-original-host", "x-arr-clientcert", "x-ssl-client-cert",
        "x-ssl-client-verify", "x-ssl-client-dn", "x-ssl-client-s-dn", "x-client-cert",
    }
)  # fmt: skip
# Identity other gateways hand their upstreams (oauth2-proxy, Kong, AWS ALB, Azure App Service,
# Google IAP and API Gateway, Apache/CGI REMOTE_USER) and Envoy's control headers (an Envoy or
# Istio sidecar in front of the upstream obeys `x-envoy-*` from its local peers: retries of a
# POST, timeouts, the original path). Removed from every request, from trusted proxies too:
# behind m2mgate, the identity is m2mgate's.
FOREIGN_IDENTITY = frozenset(
    {
        "remote-user", "x-remote-user", "x-webauth-user", "x-authenticated-userid",
        "x-userinfo", "x-credential-identifier", "x-anonymous-consumer",
        "x-apigateway-api-userinfo",
    }
)  # fmt: skip
_PREFIXED = (
    "x-forwarded-", "x-envoy-", "x-auth-request-", "x-consumer-", "x-amzn-oidc-",
    "x-ms-client-principal", "x-goog-authenticated-user-",
)  # fmt: skip
# Headers that make some upstream frameworks act on another method or path than the request
# line's (Express/Laravel method-override, IIS/Symfony X-Original-URL): the gateway decided on
# the request line, so these would let a client pick a different route after the decision.
# Removed from every request.
ROUTING_OVERRIDES = frozenset(
    {
        "x-http-method-override", "x-http-method", "x-method-override", "x-original-url",
        "x-rewrite-url", "x-original-uri", "x-original-method",
    }
)  # fmt: skip


def normalized_name(name: str) -> str:
    """A header name as CGI-style servers read it: case-folded, `_` the same as `-`."""
    lowered = name.lower()
    return lowered.replace("_", "-") if "_" in lowered else lowered


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
    # Computed once: every header name stripped from every incoming request ...
    always_dropped: frozenset[str] = field(init=False, repr=False)
    # ... and on a public route, where no credential was checked: Authorization too, even
    # with `forward.authorization`, so an upstream never takes an unverified credential (a
    # forged JWT, Basic) for the one behind the identity headers (#8 review R6).
    dropped_unverified: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        configured = (
            self.client_id, self.scopes, self.roles, self.issuer, self.subject, self.tenant,
        )  # fmt: skip
        names = {name.lower() for name in configured if name is not None}
        names.update(header.lower() for header, _ in self.claims)
        names = {normalized_name(name) for name in names}
        names |= DEFAULT_IDENTITY_HEADERS | HOP_BY_HOP | _GATEWAY_OWNED
        names |= FORWARDED_FAMILY | ROUTING_OVERRIDES | FOREIGN_IDENTITY
        if not self.pass_authorization:
            names.add("authorization")
        if not self.preserve_host:
            names.add("host")
        object.__setattr__(self, "always_dropped", frozenset(names))
        object.__setattr__(self, "dropped_unverified", frozenset(names | {"authorization"}))

    def trusts(self, address: str | None) -> bool:
        """Is this peer a proxy whose X-Forwarded-* headers may be believed?"""
        if address is None or not self.trusted_proxies:
            return False  # nobody is trusted: skip parsing the address (hot path)
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        # A dual-stack listener sees an IPv4 proxy as ::ffff:a.b.c.d: compare both forms.
        mapped = peer.ipv4_mapped if isinstance(peer, ipaddress.IPv6Address) else None
        return any(
            peer in network or (mapped is not None and mapped in network)
            for network in self.trusted_proxies
        )


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
        name = normalized_name(token.strip())
        if name and name not in dropped:
            listed = listed if listed is not None else set()
            listed.add(name)
    return listed


_CONNECTION_OPTIONS = HOP_BY_HOP | {"close"}  # listed in Connection, already gone: no second pass


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
    # Includes Connection and the forwarded family; Authorization when nothing was verified.
    drop = rules.always_dropped if principal is not None else rules.dropped_unverified
    headers: Headers = []
    forwarded: dict[str, list[tuple[str, str]]] = {}
    listed: set[str] | None = None
    for name, value in incoming:  # one pass; the names Connection lists are removed after
        lowered = normalized_name(name)
        if lowered not in drop:
            if not lowered.startswith(_PREFIXED):
                headers.append((name, value))
            elif lowered.startswith("x-forwarded-"):  # a family member not listed by name
                forwarded.setdefault(lowered, []).append((name, value))
            # else: foreign identity or an Envoy control header, dropped
        elif lowered == "connection":
            # Not `drop`: a trusted proxy's forwarded family is kept unless listed here.
            listed = _listed_in(value, listed, _CONNECTION_OPTIONS)
        elif lowered in FORWARDED_FAMILY:
            forwarded.setdefault(lowered, []).append((name, value))
    if listed:
        headers = [(n, v) for n, v in headers if normalized_name(n) not in listed]
        forwarded = {key: found for key, found in forwarded.items() if key not in listed}
    if principal is not None:
        headers.extend(identity_headers(rules, principal))
    headers.append(("X-Request-Id", request_id))
    headers.extend(forwarded_headers(rules, client, forwarded))
    return headers


def forwarded_headers(
    rules: ForwardRules, client: ClientFacts, incoming: dict[str, list[tuple[str, str]]]
) -> Headers:
    """The forwarded family, per the trust settings (`incoming`: the family members the
    request carried, by normalised name, each with its original name and value).

    - From a trusted proxy (`forward.trusted_proxies`): everything it sent is kept (it
      terminated TLS, it saw the client); its X-Forwarded-Proto/-Host are believed, the peer
      is appended to X-Forwarded-For, and to `Forwarded` (RFC 7239 §4) when it sent one.
    - From any other peer: every family member is removed. Threat (#8): `Forwarded`,
      `X-Real-IP`, `True-Client-IP`, `X-Forwarded-Port`, `X-Forwarded-Prefix` from a client
      let it choose the address an upstream allowlists, or the prefix it builds URLs with.
      X-Forwarded-Proto/-Host are the gateway's own view. X-Forwarded-For: with
      `trusted_proxies` configured it is only the peer; with none configured the client's
      chain is kept and the peer appended (the CONTRACT's default): only the last hop, added
      here, can be trusted by the upstream.
    """
    trusted = rules.trusts(client.address)
    keep_chain = trusted or not rules.trusted_proxies
    chain = [value for _, value in incoming.get("x-forwarded-for", ())] if keep_chain else []
    if client.address:
        chain.append(client.address)
    headers: Headers = []
    if trusted:
        for key, found in incoming.items():
            if key not in _REBUILT:
                headers.extend(found)
        elements = [value for _, value in incoming.get("forwarded", ())]
        if elements:
            elements.append(_forwarded_element(client))
            headers.append(("Forwarded", ", ".join(elements)))
    if chain:
        headers.append(("X-Forwarded-For", ", ".join(chain)))
    proto = _last(incoming, "x-forwarded-proto", client.scheme) if trusted else client.scheme
    headers.append(("X-Forwarded-Proto", proto))
    host = _last(incoming, "x-forwarded-host", client.host or "") if trusted else client.host
    if host and not is_valid_authority(host):
        host = client.host  # even a trusted proxy's value must be an authority (RFC 9112 §3.2)
    if host:
        headers.append(("X-Forwarded-Host", host))
    return headers


_REBUILT = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# Headers the gateway itself owns: an identity header may not take one of these names (config
# refuses them): the framing and connection fields, the ones it sets or rebuilds, and the
# request's own Host, Authorization, Content-Type and Cookie. Proxy-Authenticate and
# Proxy-Authorization are hop-by-hop but were never refused: refusing them would refuse
# configs that load today.
RESERVED_HEADERS = (
    (HOP_BY_HOP - {"proxy-authenticate", "proxy-authorization"})
    | _GATEWAY_OWNED
    | _REBUILT
    | {"host", "authorization", "content-type", "cookie"}
)


def _last(incoming: dict[str, list[tuple[str, str]]], key: str, default: str) -> str:
    found = incoming.get(key)
    return found[-1][1] if found else default


def _forwarded_element(client: ClientFacts) -> str:
    """This hop's RFC 7239 element: the peer, the scheme it used, the Host it sent."""
    peer = client.address or "unknown"
    parts = [("for", f"[{peer}]" if ":" in peer else peer), ("proto", client.scheme)]
    if client.host:
        parts.append(("host", client.host))
    return ";".join(
        f"{key}={value}" if TOKEN.fullmatch(value) else f'{key}="{value}"' for key, value in parts
    )


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
