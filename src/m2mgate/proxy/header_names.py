"""The header names the gateway owns, and how a name is compared (pure).

One definition per fact: the listener, the upstream request and response rules and config
(which refuses identity headers named like these) all read them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
GATEWAY_OWNED = frozenset({"x-request-id", "expect", "content-length"})
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
PREFIXED = (
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


REBUILT = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# Headers the gateway itself owns: an identity header may not take one of these names (config
# refuses them): the framing and connection fields, the ones it sets or rebuilds, and the
# request's own Host, Authorization, Content-Type and Cookie. Proxy-Authenticate and
# Proxy-Authorization are hop-by-hop but were never refused: refusing them would refuse
# configs that load today.
RESERVED_HEADERS = (
    (HOP_BY_HOP - {"proxy-authenticate", "proxy-authorization"})
    | GATEWAY_OWNED
    | REBUILT
    | {"host", "authorization", "content-type", "cookie"}
)


def normalized_name(name: str) -> str:
    """A header name as CGI-style servers read it: case-folded, `_` the same as `-`."""
    lowered = name.lower()
    return lowered.replace("_", "-") if "_" in lowered else lowered


def listed_in(value: str, listed: set[str] | None, dropped: frozenset[str]) -> set[str] | None:
    """Add the names a `Connection` field declares hop-by-hop (RFC 9110 §7.6.1), leaving out
    those dropped anyway (`keep-alive`, `close`): most messages then need no second pass."""
    for token in value.split(","):
        name = normalized_name(token.strip())
        if name and name not in dropped:
            listed = listed if listed is not None else set()
            listed.add(name)
    return listed
