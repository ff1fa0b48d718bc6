"""The oracle: every rule the differential harness judges an exchange by, in one place.

An exchange is read three ways, by parsers that share nothing with the gateway's llhttp:
- the reference (reference.py): h11 as a server over the bytes the client sent; what the client
  framed, request by request;
- the upstream (tests/support/recording_upstream.py): h11 as a server over what the gateway sent;
- the client's view (client_view.py): h11 as a client over what the gateway sent back;
and the gateway says what it did in its `request` log lines (one per request its handler ran,
in order) and `http_error` events (requests its parser refused).

Disagreement between hops is the bug. Each rule below names the RFC 9110/9112 section or the
attack it stands for. The gateway may always be *stricter* than the reference (refuse what h11
accepts); a rule fires only where the difference changes what a hop acts on.

Joins: an upstream request is tied to the gateway's log line by `X-Request-Id` (the gateway sets
it on every forwarded request and logs it); log line i is the gateway's reading of the client's
request i (one request at a time per connection, logged in order); response i is the client's
answer to its request i.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tests.differential.client_view import ClientView, read_responses
from tests.differential.harness import Credentials, DifferentialTarget, Observation
from tests.differential.reference import Reference, RefRequest, is_valid_host, read_reference
from tests.support.recording_upstream import SWITCH_MARK, TRAILER_FIELD, ReceivedRequest

# The identity headers the gateway owns (CONTRACT: "a client can never supply identity headers"),
# by their normalised names: a WSGI/CGI upstream (`HTTP_X_CLIENT_ID`), or nginx with
# `underscores_in_headers on`, reads `X_Client_Id` as `X-Client-Id`.
IDENTITY = frozenset({"x-client-id", "x-scopes", "x-roles", "x-issuer", "x-subject", "x-tenant"})
# Proxy-information headers an upstream uses for IP allowlists, redirects and URL building.
# The gateway sets X-Forwarded-For/-Proto/-Host itself (CONTRACT); with no trusted proxies,
# every other member of the family comes from the client and must not reach the upstream.
FORWARDED_FAMILY = frozenset(
    {
        "forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip",
        "fastly-client-ip", "x-cluster-client-ip", "x-original-forwarded-for",
        "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-server", "x-forwarded-scheme",
        "x-forwarded-ssl", "x-forwarded-uri", "x-forwarded-method", "x-forwarded-path",
    }
)  # fmt: skip
GATEWAY_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# Headers with which common upstream frameworks (IIS, Symfony, Rails, Express) act on another
# path or method than the request line's: the gateway authorised the request line.
OVERRIDES = frozenset(
    {"x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method",
     "x-method-override"}
)  # fmt: skip
# RFC 9110 §7.6.1 and §11.7: hop-by-hop, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-authenticate"}
)  # fmt: skip
# Names a Connection field may list that the gateway re-creates itself: their presence upstream
# is the gateway's own field, judged by the rules for it.
_RECREATED = frozenset({"host", "content-length", "transfer-encoding", "x-request-id"})
PEER = "127.0.0.1"


def normalised(name: bytes) -> str:
    return name.decode("latin-1").strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str


@dataclass
class Exchange:
    """One observation, read every way the rules need."""

    observation: Observation
    credentials: Credentials
    upstream_authority: str  # host:port of the upstream URL: the Host the gateway must send
    reference: Reference = field(init=False)
    client: ClientView = field(init=False)

    def __post_init__(self) -> None:
        self.reference = read_reference(self.observation.sent)
        # The client pairs response i with its request i; past what the reference could
        # read, the gateway's own reading (its log) says which requests it answered.
        methods = [request.method for request in self.reference.requests]
        if self.reference.unfinished_method is not None:
            methods.append(self.reference.unfinished_method)
        methods += [line["method"].encode("latin-1") for line in self.logs[len(methods) :]]
        self.client = read_responses(
            self.observation.received, methods, self.observation.closed_by_gateway
        )

    @property
    def variant(self) -> str:
        return self.observation.variant

    @property
    def logs(self) -> list[dict[str, Any]]:
        return self.observation.requests_logged

    @cached_property
    def log_by_id(self) -> dict[str, tuple[int, dict[str, Any]]]:
        return {line["request_id"]: (index, line) for index, line in enumerate(self.logs)}

    @cached_property
    def error_ids(self) -> dict[str, dict[str, Any]]:
        return {event["request_id"]: event for event in self.observation.http_errors}

    def log_of(self, request: ReceivedRequest) -> tuple[int, dict[str, Any]] | None:
        ids = request.values(b"x-request-id")
        if len(ids) != 1:
            return None
        return self.log_by_id.get(ids[0].decode("latin-1"))

    def answered(self, index: int, status: int) -> bool:
        """Did the client's request `index` get a final answer with `status`?"""
        responses = self.client.responses
        return index < len(responses) and responses[index].status == status

    def reference_of(self, request: ReceivedRequest) -> RefRequest | None:
        """The client's request this upstream request stands for (via the log line)."""
        found = self.log_of(request)
        if found is None or found[0] >= len(self.reference.requests):
            return None
        return self.reference.requests[found[0]]

    @property
    def forwarded(self) -> list[ReceivedRequest]:
        """The requests the upstream acted on: complete ones, and those it answered as soon as
        their head arrived (`/early`: whether their body then arrives in full is a race, and
        the gateway may stop sending it once answered)."""
        return [r for r in self.observation.upstream_requests if r.complete or r.answered_early]


Rule = Callable[[Exchange], list[str]]
RULES: list[tuple[str, Rule]] = []


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES.append((name, function))
        return function

    return register


def judge(exchange: Exchange) -> list[Finding]:
    return [Finding(name, message) for name, check in RULES for message in check(exchange)]


def _req(request: ReceivedRequest) -> str:
    return f"{request.method.decode('latin-1')} {request.target.decode('latin-1')}"


# --- the gateway -> upstream hop: framing --------------------------------------------------------


@rule("upstream_unparsable")
def upstream_unparsable(ex: Exchange) -> list[str]:
    """RFC 9112 §2.2 / §6: what the gateway sends must be one unambiguous HTTP/1.1 message per
    request. The upstream's h11 could not parse it: the upstream and the gateway disagree."""
    return [
        f"the upstream's h11 could not parse what the gateway sent on connection {number}: "
        f"{error}; unparsed: {unparsed[:200]!r}"
        for number, (error, unparsed) in ex.observation.upstream_errors.items()
    ]


@rule("upstream_tunnel")
def upstream_tunnel(ex: Exchange) -> list[str]:
    """RFC 9110 §9.3.6: a CONNECT turns the connection into a tunnel once answered 2xx. A
    reverse proxy never forwards one (the gateway does not proxy tunnels); bytes it sends into
    a tunnel reach whatever the upstream connected it to, never as HTTP."""
    return [
        f"the gateway sent {len(data)} bytes into a CONNECT tunnel on upstream connection "
        f"{number}: {data[:120]!r}"
        for number, data in ex.observation.upstream_tunnelled.items()
    ]


@rule("upstream_left_mid_request")
def upstream_left_mid_request(ex: Exchange) -> list[str]:
    """RFC 9112 §6.3 / §9.3: a request whose declared body the gateway did not deliver, left on
    an open connection, makes the next request on that (pooled) connection its body: request
    smuggling at the upstream. Cut by the gateway, it is only honest when the client itself
    never completed the body, or the upstream answered early and the connection was retired."""
    found = []
    for request in ex.observation.upstream_requests:
        if request.complete:
            continue
        still_open = request.connection in ex.observation.upstream_open
        if still_open:
            found.append(
                f"{_req(request)} left incomplete on an open upstream connection "
                f"({len(request.body)} body bytes arrived): the next request on it is read as "
                "its body"
            )
            continue
        framed = ex.reference_of(request)
        logged = ex.log_of(request)
        if logged is not None and logged[1]["status"] in (408, 413):
            continue  # the gateway gave up on the body itself (too slow, too large)
        if logged is not None and logged[1]["status"] == 400 and ex.answered(logged[0], 400):
            # The gateway refused the body mid-stream, stricter than h11 (`5 \r\n`: RFC 9112
            # §7.1 allows BWS only before a chunk extension's `;`) and told the client so:
            # cutting the upstream request without its end is the defence, not a desync.
            continue
        if framed is not None and framed.complete and not request.answered_early:
            found.append(
                f"{_req(request)}: the client framed a complete request "
                f"({len(framed.body)} body bytes) but the upstream got {len(request.body)} "
                "before the gateway cut the connection"
            )
    return found


# --- what reached the upstream versus what the gateway logged --------------------------------------


@rule("unlogged_forward")
def unlogged_forward(ex: Exchange) -> list[str]:
    """Attack: request smuggling. Every request the upstream acted on must be one the gateway
    framed itself (exactly one X-Request-Id, its own) and logged as forwarded (decision allow,
    upstream_ms set). Anything else reached the upstream behind the gateway's back."""
    found = []
    for request in ex.forwarded:
        ids = request.values(b"x-request-id")
        if len(ids) != 1:
            found.append(
                f"{_req(request)} reached the upstream with {len(ids)} X-Request-Id fields: "
                "not a request the gateway framed (smuggled)"
            )
            continue
        logged = ex.log_of(request)
        if logged is None:
            found.append(f"{_req(request)} reached the upstream; the gateway never logged it")
            continue
        line = logged[1]
        if line["decision"] != "allow" or line["upstream_ms"] is None:
            found.append(
                f"{_req(request)} reached the upstream and was acted on, but the gateway "
                f"logged it as not forwarded: status={line['status']} "
                f"decision={line['decision']} upstream_ms={line['upstream_ms']}"
            )
    return found


@rule("log_mismatch")
def log_mismatch(ex: Exchange) -> list[str]:
    """The access log is the audit trail: the requests logged as forwarded are the requests the
    upstream received, as many, in the same order, with the same method and path."""
    logged = [line["request_id"] for line in ex.logs if line["upstream_ms"] is not None]
    acted_on = [  # complete, or answered before its body ended (`/early`): both reached it
        r for r in ex.observation.upstream_requests if r.complete or r.answered_early
    ]
    received = [
        ids[0].decode("latin-1") for r in acted_on if len(ids := r.values(b"x-request-id")) == 1
    ]
    found = []
    in_log, arrived = set(logged), set(received)
    if [rid for rid in received if rid in in_log] != [rid for rid in logged if rid in arrived]:
        found.append(f"the log's forwarded requests {logged} came in another order: {received}")
    by_id = {line["request_id"]: line for line in ex.logs}
    # A request whose head went out but whose body the gateway then cut (refused mid-stream,
    # too large, stalled, the client gone) is logged with its upstream time, and the upstream
    # never saw its end: that is the defence, not a lost request.
    missing = [rid for rid in logged if rid not in arrived and not _cut(by_id[rid])]
    if missing:
        found.append(
            f"the log has {len(logged)} forwarded requests {logged}, the upstream received "
            f"{received}: {missing} never arrived (unlogged ones: see unlogged_forward)"
        )
    for request in ex.forwarded:
        hit = ex.log_of(request)
        if hit is None:
            continue
        line = hit[1]
        path = request.target.decode("latin-1").partition("?")[0][:512]
        if line["method"] != request.method.decode("latin-1") or line["path"] != path:
            found.append(
                f"the upstream got {_req(request)}, the log says {line['method']} {line['path']}"
            )
    return found


def _cut(line: dict[str, Any]) -> bool:
    """Did the gateway end this request's upstream exchange before its end (RFC 9112 §9.6)?"""
    return line["status"] in (400, 408, 413, 499) or bool(line.get("client_gone"))


# --- the client -> gateway hop, against the reference reading ------------------------------------


@rule("forwarded_unframed")
def forwarded_unframed(ex: Exchange) -> list[str]:
    """RFC 9112 §6.3, §9.6 and §11.2 (request smuggling): the upstream must only act on requests
    the client framed completely. Not on one the reference refused, nor anything after it on the
    connection, nor one after a request that required the connection to close."""
    found = []
    ref = ex.reference
    for request in ex.forwarded:
        logged = ex.log_of(request)
        if logged is None:
            continue
        index = logged[0]
        framed = ref.requests[index] if index < len(ref.requests) else None
        if framed is not None and framed.complete:
            continue
        if framed is not None and request.answered_early and not request.complete:
            continue  # streaming: a valid head went on before its body was known to be bad
        if ref.refused_index is not None and index >= ref.refused_index:
            why = f"the reference refused request #{ref.refused_index}: {ref.refused}"
        elif ref.stopped is not None:
            why = f"the connection had to close before it: {ref.stopped}"
        elif framed is not None:
            why = "the client never completed it"
        else:
            why = "the client never sent it"
        found.append(f"{_req(request)} (the client's request #{index}) was forwarded, but {why}")
    return found


@rule("body_mismatch")
def body_mismatch(ex: Exchange) -> list[str]:
    """RFC 9112 §6: the body the upstream receives is the body the client framed, byte for
    byte, and its length is the access log's `body_bytes` (null: no body sent)."""
    found = []
    for request in ex.forwarded:
        framed = ex.reference_of(request)
        logged = ex.log_of(request)
        if request.answered_early:
            continue  # the gateway may stop sending a body once the upstream has answered
        if framed is not None and framed.complete and bytes(request.body) != bytes(framed.body):
            found.append(
                f"{_req(request)}: the client framed a {len(framed.body)}-byte body "
                f"{bytes(framed.body)[:80]!r}, the upstream got {len(request.body)} bytes "
                f"{bytes(request.body)[:80]!r}"
            )
        if logged is not None:
            body_bytes = logged[1]["body_bytes"]
            if (body_bytes or 0) != len(request.body):
                found.append(
                    f"{_req(request)}: the upstream got {len(request.body)} body bytes, the log "
                    f"says body_bytes={body_bytes}"
                )
    return found


@rule("gateway_misread")
def gateway_misread(ex: Exchange) -> list[str]:
    """RFC 9112 §6.3: the gateway's reading of the stream (its log lines, in order) must be the
    client's requests. A request the client never sent, or another method or path, means the
    gateway split the stream elsewhere than the client did: a desync, forwarded or not."""
    found = []
    ref = ex.reference.requests
    for index, line in enumerate(ex.logs):
        refused = ex.reference.refused_index is not None and index >= ex.reference.refused_index
        if index >= len(ref) and (refused or ex.reference.stopped is not None):
            break  # forwarded_unframed and kept_open_after_close judge these
        if index >= len(ref):
            found.append(
                f"the gateway read a request #{index} {line['method']} {line['path']} "
                f"(status {line['status']}) that the client never sent"
            )
            continue
        framed = ref[index]
        path = framed.target.decode("latin-1").partition("?")[0][:512]
        if line["method"] != framed.method.decode("latin-1") or line["path"] != path:
            found.append(
                f"the client's request #{index} is {framed.method.decode('latin-1')} {path}, "
                f"the gateway read {line['method']} {line['path']}"
            )
    return found


# --- the headers the upstream received -----------------------------------------------------------


@rule("identity_header_forged")
def identity_header_forged(ex: Exchange) -> list[str]:
    """CONTRACT ("A client can never supply identity headers"); attack: header-name confusion.
    Any header whose name normalises (case, `_` -> `-`, stray spaces) to an identity header must
    be exactly the gateway's one field for a verified token."""
    found = []
    expected = {
        name.lower(): (name, value) for name, value in ex.credentials.expected_identity().items()
    }
    for request in ex.forwarded:
        logged = ex.log_of(request)
        verified = logged is not None and logged[1]["client_id"] is not None
        seen: dict[str, int] = {}
        for name, value in request.headers:
            key = normalised(name)
            if key not in IDENTITY:
                continue
            seen[key] = seen.get(key, 0) + 1
            want = expected.get(key)
            exact = want is not None and (name.decode("latin-1"), value.decode("latin-1")) == want
            if not verified or not exact:
                found.append(
                    f"{_req(request)}: identity header {name!r}: {value!r} reached the upstream "
                    f"({'verified ' + str(logged[1]['client_id']) if verified and logged else 'no verified token'})"
                )
        found += [
            f"{_req(request)}: {count} fields normalise to {key}"
            for key, count in seen.items()
            if count > 1
        ]
        if verified and "x-client-id" not in seen:
            found.append(f"{_req(request)}: verified, but no X-Client-Id reached the upstream")
    return found


@rule("host_header")
def host_header(ex: Exchange) -> list[str]:
    """RFC 9112 §3.2: exactly one Host, a valid uri-host[:port]; the upstream's own authority,
    or with `preserve_host` the client's Host. Two Hosts, or one the gateway never checked, let
    the upstream route (virtual hosts, absolute URLs, cache keys) on something else."""
    found = []
    for request in ex.forwarded:
        hosts = request.values(b"host")
        if len(hosts) != 1:
            found.append(f"{_req(request)}: {len(hosts)} Host fields reached the upstream: {hosts}")
            continue
        host = hosts[0]
        if not is_valid_host(host):
            found.append(f"{_req(request)}: invalid Host {host!r} reached the upstream")
        framed = ex.reference_of(request)
        if ex.variant == "passthrough" and framed is not None:
            client_hosts = framed.values(b"host")
            wanted = client_hosts[0] if len(client_hosts) == 1 else None
            if wanted is not None and host != wanted:
                found.append(f"{_req(request)}: Host {host!r}, the client sent {wanted!r}")
        elif ex.variant != "passthrough" and host.decode("latin-1") != ex.upstream_authority:
            found.append(f"{_req(request)}: Host {host!r}, the upstream is {ex.upstream_authority}")
    return found


@rule("framing_headers")
def framing_headers(ex: Exchange) -> list[str]:
    """RFC 9112 §6.1-6.3: a forwarded message is framed one way only: a single `chunked`
    Transfer-Encoding, or a single Content-Length, never both (CL.TE / TE.CL smuggling)."""
    found = []
    for request in ex.forwarded:
        codings = request.values(b"transfer-encoding")
        lengths = request.values(b"content-length")
        if codings and [c.strip().lower() for c in codings] != [b"chunked"]:
            found.append(f"{_req(request)}: Transfer-Encoding {codings} reached the upstream")
        if codings and lengths:
            found.append(f"{_req(request)}: both Content-Length and Transfer-Encoding")
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            found.append(f"{_req(request)}: Content-Length {lengths}")
    return found


@rule("hop_by_hop_forwarded")
def hop_by_hop_forwarded(ex: Exchange) -> list[str]:
    """RFC 9110 §7.6.1: a proxy removes the client's Connection, its hop-by-hop fields and every
    field its Connection lists (the gateway may send its own Connection for its own hop);
    §7.8: Upgrade is never passed on (the gateway does not proxy upgrades, so the upstream
    must not be asked to switch)."""
    found = []
    for request in ex.forwarded:
        framed = ex.reference_of(request)
        listed: set[str] = set()
        from_client: set[tuple[bytes, bytes]] = set()
        if framed is not None:
            listed = {t.decode("latin-1") for t in framed.connection_listed}
            from_client = {(name.lower(), value) for name, value in framed.headers}
        listed -= _RECREATED | IDENTITY | GATEWAY_FORWARDED | HOP_BY_HOP | {"close"}
        for name, value in request.headers:
            key = name.decode("latin-1").lower()
            hop = key in HOP_BY_HOP and (key == "upgrade" or (name.lower(), value) in from_client)
            if hop or key in listed:
                found.append(f"{_req(request)}: hop-by-hop field {name!r}: {value!r} forwarded")
    return found


@rule("trailer_promoted")
def trailer_promoted(ex: Exchange) -> list[str]:
    """RFC 9110 §6.5.1 / RFC 9112 §7.1.2: trailer fields are not header fields; a recipient must
    not merge them into the header section (a second Authorization or Host smuggled in after
    the gateway has checked the first)."""
    found = []
    for request in ex.forwarded:
        framed = ex.reference_of(request)
        if framed is None or not framed.trailers:
            continue
        heads = {(name.lower(), value) for name, value in framed.headers}
        sent = {(name.lower(), value) for name, value in request.headers}
        for name, value in framed.trailers:
            pair = (name.lower(), value)
            if pair in sent and pair not in heads:
                found.append(
                    f"{_req(request)}: trailer {name!r}: {value[:60]!r} reached the upstream "
                    "in the header section"
                )
    return found


@rule("forwarded_family")
def forwarded_family(ex: Exchange) -> list[str]:
    """CONTRACT (X-Forwarded-For appended, Proto and Host the gateway's own view; no
    trusted_proxies in these configs); attack: a client forging its address or scheme for an
    upstream IP allowlist or URL builder. Every other proxy-information header is the client's."""
    found = []
    for request in ex.forwarded:
        for name, value in request.headers:
            if normalised(name) in FORWARDED_FAMILY or (
                normalised(name) in GATEWAY_FORWARDED and b"_" in name
            ):
                found.append(f"{_req(request)}: client's {name!r}: {value!r} reached the upstream")
        chain = request.values(b"x-forwarded-for")
        if len(chain) != 1 or chain[0].rsplit(b",", 1)[-1].strip().decode("latin-1") != PEER:
            found.append(f"{_req(request)}: X-Forwarded-For {chain} (the peer is {PEER})")
        proto = request.values(b"x-forwarded-proto")
        if proto != [b"http"]:
            found.append(f"{_req(request)}: X-Forwarded-Proto {proto} (the listener is http)")
        forwarded_host = request.values(b"x-forwarded-host")
        if forwarded_host and not is_valid_host(forwarded_host[0]):
            found.append(f"{_req(request)}: invalid X-Forwarded-Host {forwarded_host[0]!r}")
        framed = ex.reference_of(request)
        if framed is None or not framed.complete:
            continue  # not a request the client framed: forwarded_unframed says so
        client_hosts = framed.values(b"host")
        if len(forwarded_host) > 1 or (forwarded_host and forwarded_host != client_hosts):
            found.append(
                f"{_req(request)}: X-Forwarded-Host {forwarded_host}, the client sent Host "
                f"{client_hosts}"
            )
    return found


@rule("target_override")
def target_override(ex: Exchange) -> list[str]:
    """Attack: access-control bypass through X-Original-URL / X-Rewrite-URL /
    X-HTTP-Method-Override (PortSwigger): the gateway authorised the request line, an upstream
    framework acts on these instead."""
    return [
        f"{_req(request)}: {name!r}: {value!r} reached the upstream"
        for request in ex.forwarded
        for name, value in request.headers
        if normalised(name) in OVERRIDES
    ]


# --- what the client got back --------------------------------------------------------------------


@rule("client_unreadable")
def client_unreadable(ex: Exchange) -> list[str]:
    """RFC 9112 §4, §6.3: the client must be able to read every response the gateway writes,
    each framed so that the next one starts where it ends."""
    if ex.client.error is None:
        return []
    return [
        f"the client could not read the gateway's responses after #{len(ex.client.responses) - 1}"
        f": {ex.client.error}; unread: {ex.client.leftover[:80]!r}"
    ]


@rule("client_version")
def client_version(ex: Exchange) -> list[str]:
    """RFC 9110 §2.5 / RFC 9112 §2.3: the gateway is an HTTP/1.1 server and answers
    `HTTP/1.1` (never echoing the request's version: `HTTP/2.0 200` over HTTP/1.1 framing)."""
    return [
        f"response #{index} is HTTP/{response.http_version.decode('latin-1')} "
        f"{response.status}, not HTTP/1.1"
        for index, response in enumerate(ex.client.responses)
        if response.http_version != b"1.1"
    ]


@rule("client_5xx")
def client_5xx(ex: Exchange) -> list[str]:
    """The upstream is healthy and answers every request it can parse: a 5xx means the gateway
    broke the exchange (a body it declared and never sent, a message the upstream refused)."""
    found = []
    for index, response in enumerate(ex.client.responses):
        if response.status < 500:
            continue
        framed = ex.reference.requests[index] if index < len(ex.reference.requests) else None
        if response.status == 502 and framed is not None and SWITCH_MARK in framed.target:
            continue  # the upstream answered 101: 502 is the right answer (client_101)
        refused = ex.reference.refused_index
        if response.status in (501, 505) and refused is not None and index >= refused:
            continue  # RFC 9112 §6.1 (unknown coding: 501), RFC 9110 §15.6.6 (505)
        found.append(f"response #{index} is {response.status}")
    return found


@rule("client_101")
def client_101(ex: Exchange) -> list[str]:
    """RFC 9110 §7.8 / §15.2.2: the gateway never proxies an upgrade (Upgrade is stripped), so a
    `101 Switching Protocols` from the upstream is an answer to a question nobody asked: relayed,
    the client and the upstream disagree about the protocol. Expected: 502."""
    return [
        f"response #{index} is 101 Switching Protocols (the upstream's; expected 502)"
        for index, response in enumerate(ex.client.responses)
        if response.status == 101 or 101 in response.interim
    ]


@rule("client_trailer_promoted")
def client_trailer_promoted(ex: Exchange) -> list[str]:
    """RFC 9110 §6.5.1 / RFC 9112 §7.1.2, the response direction: the upstream's trailer fields
    are not header fields; a proxy that buffers a chunked response must not relay its trailers
    as the response's headers (a `Set-Cookie` or `Location` the upstream never put there)."""
    return [
        f"response #{index}: the upstream's trailer {TRAILER_FIELD!r} arrived as a header field"
        for index, response in enumerate(ex.client.responses)
        if response.value(TRAILER_FIELD) is not None
    ]


@rule("client_order")
def client_order(ex: Exchange) -> list[str]:
    """RFC 9112 §9.3.2: responses go out in the order of the requests, one per answered request;
    each is the one the gateway logged (same X-Request-Id, same status); a parse refusal is the
    last thing on the connection, and never a second answer to a request already answered (the
    client would pair it with its next request)."""
    found = []
    ref = ex.reference
    finals = len(ex.client.responses)
    read_to_the_end = ref.refused_index is None and ref.stopped is None
    if read_to_the_end and finals > ref.attempted:
        found.append(
            f"{finals} final responses to {ref.attempted} request(s): "
            f"{[r.status for r in ex.client.responses]}"
        )
    for index, response in enumerate(ex.client.responses[1:], start=1):
        before = ex.log_by_id.get(ex.client.responses[index - 1].request_id or "")
        if (
            response.request_id in ex.error_ids
            and before is not None
            and before[0] == ref.refused_index
            and before[0] < len(ref.requests)  # refused in its body, after its answer
        ):
            found.append(
                f"request #{before[0]} was answered {before[1]['status']}, then refused "
                f"{response.status} as well: two final responses to one request"
            )
    order = [line["request_id"] for line in ex.logs]
    last = -1
    for index, response in enumerate(ex.client.responses):
        rid = response.request_id
        if rid in ex.log_by_id:
            position, line = ex.log_by_id[rid]
            if position <= last:
                found.append(f"response #{index} ({rid}) is out of order: log order {order}")
            last = position
            if line["status"] != response.status:
                found.append(
                    f"response #{index} is {response.status}, the log says {line['status']}"
                )
        elif rid in ex.error_ids:
            event = ex.error_ids[rid]
            if event["status"] != response.status:
                found.append(
                    f"response #{index} is {response.status}, http_error says {event['status']}"
                )
            if index != len(ex.client.responses) - 1:
                found.append(f"response #{index} is a parse refusal, yet more responses follow")
        else:
            found.append(f"response #{index} ({response.status}, id {rid}) was never logged")
    return found


@rule("refusal_kept_open")
def refusal_kept_open(ex: Exchange) -> list[str]:
    """RFC 9112 §9.6 / §11.2: after a request the parser refused, nothing more on the connection
    can be trusted: the refusal announces `Connection: close` and the gateway closes."""
    if not ex.observation.http_errors:
        return []
    found = []
    refusals = [r for r in ex.client.responses if r.request_id in ex.error_ids]
    if any(not response.announces_close for response in refusals):
        found.append("a parse refusal did not announce Connection: close")
    if not ex.observation.closed_by_gateway:
        found.append(
            f"the gateway refused a request ({ex.observation.http_errors[0]['error']}) and kept "
            "the connection open"
        )
    return found


@rule("kept_open_after_close")
def kept_open_after_close(ex: Exchange) -> list[str]:
    """RFC 9112 §6.1 (CL with TE; TE in HTTP/1.0: "close the connection after responding") and
    §9.6 (`Connection: close`): the gateway closes after its answer to such a request and reads
    nothing after it."""
    ref = ex.reference
    if ref.stopped is None or not ref.requests:
        return []
    index = len(ref.requests) - 1
    found = []
    if len(ex.logs) > index + 1:
        extra = ex.logs[index + 1]
        found.append(
            f"after request #{index} ({ref.stopped}) the gateway read another request "
            f"{extra['method']} {extra['path']} (status {extra['status']})"
        )
    if index < len(ex.client.responses):
        response = ex.client.responses[index]
        if not response.announces_close:
            found.append(f"the answer to request #{index} ({ref.stopped}) keeps the connection")
    if not ex.observation.closed_by_gateway:
        found.append(f"the gateway kept the connection open after request #{index} ({ref.stopped})")
    return found


# --- the gateway itself --------------------------------------------------------------------------


@rule("gateway_error")
def gateway_error(ex: Exchange) -> list[str]:
    """An exception that escaped the gateway's code (its `unhandled_error`, or asyncio's "Fatal
    error: protocol.data_received() call failed"), or an exchange that never settled."""
    found = [f"unhandled: {line[-300:]}" for line in ex.observation.unhandled]
    if ex.observation.timed_out:
        found.append("the exchange did not settle within its deadline (the gateway hung)")
    return found


def describe(exchange: Exchange, findings: list[Finding]) -> str:
    """The failure message: the findings, then every reading of the exchange."""
    obs = exchange.observation
    lines = [f"{len(findings)} hop disagreement(s), variant {obs.variant}:"]
    lines += [f"- [{f.rule}] {f.message}" for f in findings]
    lines.append(f"client wrote {len(obs.chunks)} chunk(s): {obs.chunks!r}"[:3000])
    lines.append(
        "reference (h11 server over the client's bytes):\n" + exchange.reference.describe()
    )
    lines.append("client got (h11 client):\n" + exchange.client.describe())
    lines.append(f"gateway closed the connection: {obs.closed_by_gateway}")
    for line in obs.requests_logged:
        keys = ("request_id", "method", "path", "status", "decision", "reason", "client_id",
                "upstream_ms", "body_bytes", "upstream_failure")  # fmt: skip
        lines.append("log: " + str({key: line.get(key) for key in keys}))
    lines += [f"http_error: {event}" for event in obs.http_errors]
    for number, raw in obs.upstream_raw.items():
        lines.append(f"upstream connection {number} received: {raw[:1500]!r}")
    return "\n".join(lines)


class HopDisagreement(AssertionError):
    """A rule of the oracle failed; one subclass per rule, so that hypothesis reports (and
    shrinks) each distinct rule's failure on its own instead of only the first one found."""


_ERRORS: dict[str, type[HopDisagreement]] = {}


def error_for(rule_name: str) -> type[HopDisagreement]:
    if rule_name not in _ERRORS:
        class_name = "".join(part.title() for part in rule_name.split("_"))
        _ERRORS[rule_name] = type(class_name, (HopDisagreement,), {})
    return _ERRORS[rule_name]


def assert_hops_agree(
    target: DifferentialTarget, variant: str, chunks: list[bytes], pause_seconds: float = 0.002
) -> Exchange:
    """Run the exchange and raise the first rule's error (the message lists every finding)."""
    observation = target.exchange(variant, chunks, pause_seconds)
    exchange = Exchange(observation, target.credentials, target.upstream_authority)
    findings = judge(exchange)
    if findings:
        raise error_for(findings[0].rule)(describe(exchange, findings))
    return exchange
