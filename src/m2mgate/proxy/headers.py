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

import json
import random
import re
from collections.abc import Sequence
from typing import Any

from m2mgate.auth.claims import MISSING, lookup_claim
from m2mgate.auth.principal import Principal
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.forwarded import ClientFacts, forwarded_headers
from m2mgate.proxy.header_names import (
    FORWARDED_FAMILY,
    HOP_BY_HOP,
    PREFIXED,
    listed_in,
    normalized_name,
)

Headers = list[tuple[str, str]]

_UNSAFE = re.compile(r"[^\x21-\x24\x26-\x2b\x2d-\x7e]")  # not visible ASCII, or % or ,
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


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


_CONNECTION_OPTIONS = HOP_BY_HOP | {"close"}  # listed in Connection, already gone: no second pass


def choose_request_id(values: Sequence[str]) -> str:
    """Keep one sane client X-Request-Id (for tracing across hops), else mint one."""
    if len(values) == 1 and _REQUEST_ID.fullmatch(values[0]):
        return values[0]
    # 128 random bits for uniqueness, like a UUIDv4. A request id is a tracing label, never
    # a credential, so it does not need the CSPRNG (a getrandom() syscall per request).
    # random's shared generator is seeded from os.urandom and reseeded in forked children.
    return f"{random.getrandbits(128):032x}"


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
            if not lowered.startswith(PREFIXED):
                headers.append((name, value))
            elif lowered.startswith("x-forwarded-"):  # a family member not listed by name
                forwarded.setdefault(lowered, []).append((name, value))
            # else: foreign identity or an Envoy control header, dropped
        elif lowered == "connection":
            # Not `drop`: a trusted proxy's forwarded family is kept unless listed here.
            listed = listed_in(value, listed, _CONNECTION_OPTIONS)
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
