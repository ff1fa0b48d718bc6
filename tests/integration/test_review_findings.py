"""Hostile review of the #8 fixes (branch wt-review). Each test states what the gateway must do
and fails on the code reviewed: a failing test is the bug report. The lead fixes src/; these
tests then pass unchanged.

Upstreams used:
- `upstream` (tests/support/servers.py): an aiohttp server. aiohttp parses requests with llhttp,
  like Node.js and uvicorn[httptools], so it reads CONNECT the way RFC 9110 §9.3.6 says: a
  CONNECT request has no content. It stands in for every llhttp-based API server.
- `recorder` (tests/support/recording_upstream.py): h11, records what arrived.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from m2mgate.errors import ConfigError
from tests.support.raw_http import RawResponse, raw_request

FORGED = b"X-Client-Id: admin\r\nX-Scopes: admin\r\n"


def _request(method: str, target: str, *fields: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: gw", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- R1 (critical): request smuggling through CONNECT ------------------------------------------


def _connect_smuggling(inner: bytes, target: str = "/public/a") -> bytes:
    return _request("CONNECT", target, f"Content-Length: {len(inner)}", body=inner)


async def test_r1_connect_body_is_never_run_upstream_as_a_request(gw, upstream):
    """CRITICAL. llhttp flags CONNECT as an upgrade; the #8 fix reads its Content-Length body by
    count and forwards `CONNECT /public/a` *with* that body. An llhttp-based upstream (aiohttp
    here; uvicorn/httptools, anything on llhttp) treats CONNECT as bodyless (RFC 9110 §9.3.6:
    "A CONNECT request message does not have content"), so the forwarded body is parsed as the
    next request on the pooled connection: the upstream runs `GET /api/admin/users` with a
    client-written X-Client-Id: admin / X-Scopes: admin, from a public route, with no token.
    The gateway logs one request (CONNECT /public/a, 404 from upstream, reason public)."""
    inner = b"GET /api/admin/users HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    response = await raw_request(gw.url, _connect_smuggling(inner))
    assert response.status < 500
    await asyncio.sleep(0.3)  # the upstream has parsed whatever it will parse by now
    ran = [(seen["method"], seen["raw_path"]) for seen in upstream.requests]
    assert ("GET", "/api/admin/users") not in ran, upstream.requests
    # Whatever the fix answers, the gateway logged (at most) the CONNECT it decided on.
    assert {e["path"] for e in gw.access_events()} <= {"/public/a"}


async def test_r1_connect_smuggling_poisons_the_pool_and_leaks_another_clients_response(
    gw, upstream, mint
):
    """CRITICAL, the same hole used for response-queue poisoning: the smuggled request is slow,
    so after the gateway reads the CONNECT's 404 it puts the upstream connection back in the
    pool while the upstream still owes a response. The next client (an authenticated victim)
    is sent down that connection and receives the smuggled request's response; the victim's
    own response (echoing its verified X-Client-Id/X-Scopes) goes to whoever takes the
    connection next: here an unauthenticated attacker polling a public path."""
    inner = b"GET /public/x?behaviour=sleep&seconds=0.3 HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    await raw_request(gw.url, _connect_smuggling(inner))
    token = mint()
    victim_request = _request(
        "GET", "/api/user/me?behaviour=sleep&seconds=0.3", "Connection: close",
        f"Authorization: Bearer {token}",
    )  # fmt: skip

    async def attacker() -> list[bytes]:
        stolen = []
        await asyncio.sleep(0.1)  # the victim has taken the poisoned connection
        for _ in range(30):
            await asyncio.sleep(0.02)
            polled = await raw_request(gw.url, _request("GET", "/public/poll", "Connection: close"))
            if b"/public/poll" not in polled.body:
                stolen.append(polled.body)
        return stolen

    victim, stolen = await asyncio.gather(raw_request(gw.url, victim_request), attacker())
    assert json.loads(victim.body)["raw_path"].startswith("/api/user/me"), victim.body
    assert not [body for body in stolen if b"svc-orders" in body], stolen


async def test_r1_connect_is_not_forwarded_with_a_body(through, recorder):
    """The same request seen by h11: the gateway sends CONNECT upstream with a Content-Length
    body, a message RFC 9110 §9.3.6 says has no content (and whose 2xx would turn the pooled
    connection into a tunnel, RFC 9112 §6.3, which the pool never considers)."""
    gw = await through()
    inner = b"GET /api/admin/users HTTP/1.1\r\nHost: u\r\n" + FORGED + b"\r\n"
    await raw_request(gw.url, _connect_smuggling(inner))
    await asyncio.sleep(0.2)
    for raw in (c.raw for c in recorder.connections):  # per upstream connection
        sent = bytes(raw)
        if sent.startswith(b"CONNECT "):
            head, _, after = sent.partition(b"\r\n\r\n")
            assert b"content-length" not in head.lower() and after == b"", sent


# --- R2 (medium): slow readers hold the upstream pool forever ----------------------------------


async def test_r2_clients_that_stop_reading_cannot_starve_everyone(make_gateway, upstream):
    """MEDIUM (DoS). Relaying a response, the gateway waits in drain() for a client that stopped
    reading with no deadline, holding its upstream pool slot; a request that finds every slot
    taken waits on the pool's semaphore with no deadline either. `upstream.max_connections`
    clients (256 by default; 2 here) that GET a large response and never read it make every
    later request hang: no 504 after `upstream.timeout_seconds` (5 here), nothing logged."""
    gw = await make_gateway(lambda config: config["upstream"].update(max_connections=2))
    host, port = gw.url.removeprefix("http://").split(":")
    stalled = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(_request("GET", f"/public/big?behaviour=big&bytes={32 * 1024 * 1024}"))
        stalled.append(sock)
    try:
        await asyncio.sleep(1.0)
        started = time.monotonic()
        try:
            answer: RawResponse | None = await raw_request(
                gw.url, _request("GET", "/public/x", "Connection: close"), within_seconds=9
            )
        except TimeoutError:
            answer = None
        waited = time.monotonic() - started
        assert answer is not None, f"no answer at all after {waited:.1f}s (timeout_seconds=5)"
    finally:
        for sock in stalled:
            sock.close()


# --- R3 (high, upstream-conditional): format-suffix confusion ---------------------------------

# Rails routes every `get "/api/admin"` as `/api/admin(.:format)`; Django REST framework's
# format_suffix_patterns and Grape do the same; Spring MVC before 5.3 (suffix pattern match) too.
# Such an upstream serves `/api/admin.json` from the `/api/admin` handler.
_SUFFIX_BLIND = __import__("re").compile(r"\.[A-Za-z0-9]+$")

SUFFIX_LAYOUTS: dict[str, list[dict[str, Any]]] = {
    "admin then public catch-all": [
        {"name": "admin", "path": "/api/admin/**", "require": {"scopes": ["admin"]}},
        {"name": "public", "path": "/**", "public": True},
    ],
    "CONTRACT example": [],  # base_config's routes: /api/admin/** admin, then /api/** any token
    "exact admin route then public catch-all": [
        {"name": "admin-root", "path": "/api/admin", "require": {"scopes": ["admin"]}},
        {"name": "public", "path": "/**", "public": True},
    ],
}


@pytest.mark.parametrize("layout", SUFFIX_LAYOUTS, ids=list(SUFFIX_LAYOUTS))
async def test_r3_a_format_suffix_never_slips_past_the_route_it_names(
    make_gateway, upstream, mint, layout
):
    """HIGH for Rails/DRF/Grape upstreams. T46 refuses `/api/admin/` when it would pass a weaker
    route than `/api/admin`, because slash-blind upstreams serve both from one handler.
    Format-suffix-blind upstreams are the same class and are not covered: `/api/admin.json`
    misses `/api/admin/**` (segment `admin.json`), lands on the public catch-all (or `/api/**`,
    any token), and Rails runs admin#index. No token, or a read:data token, gets the admin
    handler."""

    def configure(config: dict[str, Any]) -> None:
        if SUFFIX_LAYOUTS[layout]:
            config["routes"] = SUFFIX_LAYOUTS[layout]

    gw = await make_gateway(configure)
    reader = mint(scope="read:data")
    reached = []
    for path in ("/api/admin.json", "/api/admin.xml", "/api/admin.html?x=1"):
        for token in (None, reader):
            fields = [f"Authorization: Bearer {token}"] if token else []
            response = await raw_request(
                gw.url, _request("GET", path, "Connection: close", *fields)
            )
            if 200 <= response.status < 300:
                forwarded = json.loads(response.body)["raw_path"].split("?")[0]
                if _SUFFIX_BLIND.sub("", forwarded) == "/api/admin":
                    reached.append((path, "reader token" if token else "no token"))
    assert reached == []


# --- R4 (medium): `token_type: {}` silently removes the preset's token-type guard ---------------


async def test_r4_an_empty_token_type_block_does_not_turn_the_guard_off(make_gateway, mint):
    """MEDIUM (fail-open config, `m2mgate check` silent). README's issuer reference block shows
    `token_type: {}  # optional: replace the preset's token-type guard` next to `claims: {}`.
    `claims: {}` keeps the preset's layout (keys left out keep the preset's value), but
    `token_type: {}` replaces the guard with an empty one: Descope refresh tokens (`drn: DSR`),
    Keycloak ID/refresh tokens (`typ`), Cognito id tokens (`token_use: id`) and RFC 9068's
    `typ: at+jwt` requirement are all accepted as access tokens (T6 off). The same class as
    T42 (`any_scopes: []` compiling to no condition), which is refused."""

    def configure(config: dict[str, Any]) -> None:
        config["issuers"][0].update(preset="descope", token_type={})

    # Fixed by refusing the block (a guard that checks nothing must be written out).
    with pytest.raises(ConfigError) as refused:
        await make_gateway(configure)
    ((where, _),) = refused.value.problems
    assert where == "issuers[0].token_type"
    gw = await make_gateway(lambda config: config["issuers"][0].update(preset="descope"))
    refresh = mint(drn="DSR", dsub="svc-orders", scope=None, permissions=["read:data"])
    response = await gw.get("/api/x", refresh)
    assert response.status == 401, "a Descope refresh token passed as an access token"


# --- R5 (medium): `_method` overrides in the query -------------------------------------------


async def test_r5_a_query_method_override_cannot_pick_another_route(make_gateway, upstream, mint):
    """MEDIUM (upstream-conditional). T33 strips X-HTTP-Method-Override & co. because
    "Express and Laravel method-override ... act on them instead of the request line". The same
    frameworks take `_method` from the query: Laravel/Symfony (`httpMethodParameterOverride`,
    on in Laravel: `$request->query->get('_method')`), Express `methodOverride('_method')`.
    POST is allowed with `write`; DELETE needs `admin`; `POST ...?_method=DELETE` with a write
    token is forwarded unchanged and such an upstream runs its DELETE handler."""

    def configure(config: dict[str, Any]) -> None:
        config["routes"] = [
            {"name": "items-delete", "path": "/api/items/**", "methods": ["DELETE"],
             "require": {"scopes": ["admin"]}},
            {"name": "items", "path": "/api/items/**", "require": {"scopes": ["write"]}},
        ]  # fmt: skip

    gw = await make_gateway(configure)
    writer = mint(scope="write")
    assert (await gw.http.delete(gw.url + "/api/items/1",
                                 headers={"Authorization": f"Bearer {writer}"})).status == 403  # fmt: skip
    for target in (
        "/api/items/1?_method=DELETE",
        "/api/items/1?_METHOD=delete&x=1",
        "/api/items/1?_m%65thod=DELETE",
    ):
        response = await raw_request(gw.url, _request(
            "POST", target, "Connection: close", f"Authorization: Bearer {writer}",
            "Content-Length: 0"))  # fmt: skip
        assert response.status != 200, f"{target}: forwarded, the upstream runs DELETE"


# --- R6 (low): forward.authorization forwards unverified credentials on public routes ----------


async def test_r6_public_routes_never_forward_an_unverified_authorization(through, recorder):
    """LOW/MEDIUM. With `forward.authorization: true` the upstream gets `Authorization` as the
    credential behind X-Client-Id. On a public route the gateway inspects no token, yet the
    client's Authorization (a forged JWT, or Basic) is forwarded, indistinguishable from a
    verified one. An upstream that decodes the forwarded JWT (\"the gateway verified it\") takes
    the client's word for its identity."""
    gw = await through(lambda config: config.update(forward={"authorization": True}))
    forged = "eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJhZG1pbiIsInNjb3BlIjoiYWRtaW4ifQ."
    response = await raw_request(
        gw.url, _request("GET", "/public/a", "Connection: close", f"Authorization: Bearer {forged}")
    )
    assert response.status == 200
    (seen,) = recorder.complete
    assert seen.text("authorization") == []


# --- R7 (low): client-supplied connection/identity facts other gateways use ----------------------

PASSED_THROUGH = {
    # client address: Rails ActionDispatch::RemoteIp (HTTP_CLIENT_IP), PHP get_client_ip idioms
    "Client-IP": "6.6.6.6", "X-Forwarded": "for=6.6.6.6", "Forwarded-For": "6.6.6.6",
    "X-Originating-IP": "6.6.6.6", "X-Remote-IP": "6.6.6.6", "X-Remote-Addr": "6.6.6.6",
    "X-ProxyUser-Ip": "6.6.6.6", "X-Envoy-External-Address": "6.6.6.6",
    # scheme/host: Tornado xheaders (X-Scheme), Microsoft Front-End-Https
    "X-Scheme": "https", "X-Url-Scheme": "https", "Front-End-Https": "on", "X-Host": "evil",
    "X-Original-Host": "evil",
    # client certificates forwarded by a TLS terminator: ASP.NET Core CertificateForwarding reads
    # X-ARR-ClientCert by default; nginx recipes use X-SSL-Client-Cert / -Verify / -DN
    "X-ARR-ClientCert": "MIIB", "X-SSL-Client-Cert": "MIIB", "X-SSL-Client-Verify": "SUCCESS",
    # identity from other gateways an upstream may still honour
    "X-Auth-Request-User": "admin", "Remote-User": "admin", "X-Remote-User": "admin",
    "X-WEBAUTH-USER": "admin", "X-Consumer-Username": "admin", "X-Authenticated-Userid": "admin",
    "X-Amzn-Oidc-Identity": "admin", "X-MS-CLIENT-PRINCIPAL-NAME": "admin",
    "X-Apigateway-Api-Userinfo": "eyJzdWIiOiJhZG1pbiJ9",
    # Envoy (Istio sidecar as the upstream's hop): retries of a POST the gateway sent once
    "X-Envoy-Retry-On": "5xx", "X-Envoy-Max-Retries": "10", "X-Envoy-Original-Path": "/api/admin",
    # routing: the nginx auth_request names the authz mode itself reads (CONTRACT)
    "X-Original-URI": "/api/admin/x", "X-Original-Method": "DELETE",
}  # fmt: skip


async def test_r7_client_supplied_connection_and_identity_facts_are_removed(through, recorder):
    """LOW (defence in depth; T32/T33 claim the class). With `trusted_proxies` set, an untrusted
    client's forwarded family is removed, but only the names listed in FORWARDED_FAMILY and
    `X-Forwarded-*`: every header below reaches the upstream as the client wrote it."""
    gw = await through(lambda config: config.update(forward={"trusted_proxies": ["10.0.0.0/8"]}))
    fields = [f"{name}: {value}" for name, value in PASSED_THROUGH.items()]
    response = await raw_request(gw.url, _request("GET", "/public/a", "Connection: close", *fields))
    assert response.status == 200
    (seen,) = recorder.complete
    assert [name for name in PASSED_THROUGH if seen.values(name)] == []


# --- R8, R9 (low): a buggy or hostile upstream --------------------------------------------------


class ScriptedUpstream:
    """A raw upstream: `answer(head) -> [(delay_seconds, bytes), ...]` per request head read."""

    def __init__(self, answer: Callable[[bytes], list[tuple[float, bytes]]]) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                for delay, data in self.answer(head):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Any]]:
    started: list[ScriptedUpstream] = []

    async def make(answer: Callable[[bytes], list[tuple[float, bytes]]]) -> ScriptedUpstream:
        upstream = await ScriptedUpstream(answer).start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        await upstream.stop()


async def test_r8_late_bytes_after_a_head_response_never_reach_the_next_client(
    make_gateway, scripted
):
    """LOW (needs an upstream that writes a body for HEAD, late). The pool ends a HEAD exchange
    at the response head and puts the connection back at once; bytes the upstream writes a
    moment later (a body it should not have sent, here shaped as a response) are read as the
    response of the next request that reuses the connection: another client gets `PWNED!`.
    T24 says bytes after a complete response retire the connection; only those that arrive
    before the connection is reused do."""

    def answer(head: bytes) -> list[tuple[float, bytes]]:
        if head.startswith(b"HEAD "):
            late = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Evil: 1\r\n\r\nPWNED!"
            return [(0, b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"), (0.2, late)]
        body = b"the real answer"
        return [(0, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))]

    upstream = await scripted(answer)
    gw = await make_gateway(lambda config: config["upstream"].update(url=upstream.url))
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_request("HEAD", "/public/a", "Connection: close"))
    assert (await asyncio.wait_for(reader.read(), 3)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    await asyncio.sleep(0.05)
    victim = await raw_request(gw.url, _request("GET", "/public/victim", "Connection: close"))
    assert victim.body != b"PWNED!"


async def test_r9_an_upstream_response_head_is_bounded(make_gateway, scripted):
    """LOW (hostile upstream; memory). Request heads are capped (431); response heads are not:
    the pool keeps every header field llhttp hands it, and relays them all. 8 MB of response
    header fields are buffered and sent on to the client; a response head of any size is held
    in memory within `upstream.timeout_seconds`."""
    fields = b"".join(b"X-H%d: %s\r\n" % (index, b"a" * 8000) for index in range(1000))

    def answer(_: bytes) -> list[tuple[float, bytes]]:
        return [(0, b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nhi")]

    upstream = await scripted(answer)
    gw = await make_gateway(lambda config: config["upstream"].update(url=upstream.url))
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=64 * 1024 * 1024)
    writer.write(_request("GET", "/public/a", "Connection: close"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert len(head) < 1024 * 1024, f"{len(head)} bytes of response head relayed"
    assert head.startswith(b"HTTP/1.1 502 ")
