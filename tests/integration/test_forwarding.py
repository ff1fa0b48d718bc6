"""What the upstream receives and what the client gets back, through real sockets."""

from __future__ import annotations

import gzip
import hashlib
import os
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.support.raw_http import get, raw_request
from tests.support.servers import header_values
from tests.support.tokens import claims_for, sign_raw

SPOOFED = {
    "X-Client-Id": "admin-client",
    "X-Scopes": "admin",
    "X-Roles": "superuser",
    "X-Issuer": "https://evil.example",
    "X-Subject": "root",
    "X-Tenant": "other-tenant",
    "X-Forwarded-Proto": "https",
}


async def echoed(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    return await response.json()


async def test_identity_headers_come_from_the_verified_token(gw, mint):
    token = mint(
        scope="read:data admin read:data", roles=["ops", "dev"], client_id="svc-a", sub="s-1"
    )
    seen = await echoed(await gw.get("/api/user/x", token))
    assert header_values(seen, "X-Client-Id") == ["svc-a"]
    assert header_values(seen, "X-Scopes") == ["read:data admin"]  # token order, no duplicates
    assert header_values(seen, "X-Roles") == ["ops,dev"]
    assert header_values(seen, "X-Issuer") == [gw.gateway.settings.issuers[0].policy.issuer]
    assert header_values(seen, "X-Subject") == ["s-1"]
    assert header_values(seen, "Authorization") == []  # dropped unless forward.authorization


@pytest.mark.parametrize("path", ["/public/x", "/api/user/x"])
async def test_spoofed_identity_headers_never_reach_the_upstream(gw, mint, path):
    token = mint(scope="read:data", client_id="svc-real")
    seen = await echoed(await gw.get(path, token, headers=SPOOFED))
    for name, spoofed in SPOOFED.items():
        assert spoofed not in header_values(seen, name), name
    if path.startswith("/public"):
        for name in ("X-Client-Id", "X-Scopes", "X-Roles", "X-Issuer", "X-Subject"):
            assert header_values(seen, name) == []  # public: nothing verified, nothing added
    else:
        assert header_values(seen, "X-Client-Id") == ["svc-real"]


async def test_spoofing_through_connection_and_case_games(gw, mint):
    request = get(
        "/api/user/x",
        f"Authorization: Bearer {mint(client_id='svc-real')}",
        "x-client-id: evil-1",
        "X-CLIENT-ID: evil-2",
        "Connection: close, X-Client-Id",
    )
    response = await raw_request(gw.url, request)
    assert response.status == 200
    assert header_values(response.json(), "X-Client-Id") == ["svc-real"]


async def test_authorization_is_forwarded_when_configured(make_gateway, mint):
    gw = await make_gateway(lambda c: c.update(forward={"authorization": True}))
    token = mint()
    seen = await echoed(await gw.get("/api/user/x", token))
    assert header_values(seen, "Authorization") == [f"Bearer {token}"]


async def test_custom_claim_headers_and_disabled_headers(make_gateway, mint):
    gw = await make_gateway(
        lambda c: c.update(forward={"claims": {"X-Tenant-Id": "org.id"}, "roles": None})
    )
    seen = await echoed(await gw.get("/api/user/x", mint(org={"id": "t-42"}, roles=["r"])))
    assert header_values(seen, "X-Tenant-Id") == ["t-42"]
    assert header_values(seen, "X-Roles") == []


async def test_claim_values_cannot_break_framing(gw, jwks, rsa_signer):
    evil = "svc\r\nX-Injected: 1\x00caf\u00e9,%"
    token = rsa_signer.sign(claims_for(jwks.issuer, client_id=evil))
    seen = await echoed(await gw.get("/api/user/x", token))
    (client_id,) = header_values(seen, "X-Client-Id")
    assert all(0x21 <= ord(c) <= 0x7E for c in client_id)
    assert unquote(client_id) == evil
    assert header_values(seen, "X-Injected") == []


async def test_method_path_and_query_are_forwarded_unchanged(gw, mint, upstream):
    path = "/api/user/a%20b/%C3%A9?x=%2F&y=1&y=2&z"
    request = get(path, f"Authorization: Bearer {mint()}")
    response = await raw_request(gw.url, request)
    assert response.status == 200
    assert response.json()["raw_path"] == path
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        async with gw.http.request(
            method, gw.url + "/api/user/m", headers={"Authorization": f"Bearer {mint()}"}
        ) as answer:
            assert (await echoed(answer))["method"] == method


async def test_request_id_is_kept_or_minted_and_echoed(gw, mint):
    response = await gw.get("/api/user/x", mint(), headers={"X-Request-Id": "trace-123"})
    assert response.headers["X-Request-Id"] == "trace-123"
    assert header_values(await response.json(), "X-Request-Id") == ["trace-123"]
    response = await gw.get("/api/user/x", mint(), headers={"X-Request-Id": "bad id with spaces"})
    minted = response.headers["X-Request-Id"]
    assert minted != "bad id with spaces"
    assert len(minted) == 32
    assert header_values(await response.json(), "X-Request-Id") == [minted]
    denied = await gw.get("/api/user/x", headers={"X-Request-Id": "trace-456"})
    assert denied.headers["X-Request-Id"] == "trace-456"


async def test_forwarded_headers(gw, mint):
    host = gw.url.removeprefix("http://")
    response = await gw.get("/api/user/x", mint(), headers={"X-Forwarded-For": "203.0.113.7"})
    seen = await echoed(response)
    assert header_values(seen, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert header_values(seen, "X-Forwarded-Proto") == ["http"]
    assert header_values(seen, "X-Forwarded-Host") == [host]
    assert header_values(seen, "Host") != [host]  # Host is the upstream's unless preserve_host


async def test_preserve_host(make_gateway, mint):
    gw = await make_gateway(lambda c: c["upstream"].update(preserve_host=True))
    seen = await echoed(await gw.get("/api/user/x", mint(), headers={"Host": "api.example"}))
    assert header_values(seen, "Host") == ["api.example"]


async def test_hop_by_hop_headers_are_removed_both_ways(gw, mint):
    request = get(
        "/api/user/x?behaviour=hop",
        f"Authorization: Bearer {mint()}",
        "Connection: X-Private-Hop",
        "X-Private-Hop: 1",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Proxy-Authorization: Basic abc",
    )
    response = await raw_request(gw.url, request)
    seen = response.json()
    for name in ("X-Private-Hop", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert header_values(seen, name) == [], name
    assert response.header("X-Secret-Hop") is None  # listed in the upstream's Connection
    assert response.header("Keep-Alive") is None
    assert response.header("X-Upstream") == "echo"


async def test_repeated_response_headers_survive(gw, mint):
    response = await gw.get("/api/user/x?behaviour=cookies", mint())
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("chunked", [False, True])
async def test_one_mebibyte_request_body_streams_through(gw, mint, upstream, chunked):
    body = os.urandom(1024 * 1024)

    async def pieces():
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    data: Any = pieces() if chunked else body
    async with gw.http.post(
        gw.url + "/api/user/upload", data=data, headers={"Authorization": f"Bearer {mint()}"}
    ) as response:
        seen = await echoed(response)
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    if chunked:
        assert header_values(seen, "Transfer-Encoding") == ["chunked"]
    else:
        assert header_values(seen, "Content-Length") == [str(len(body))]


async def test_one_mebibyte_response_streams_through(gw, mint):
    async with gw.http.get(
        gw.url + "/api/user/big?behaviour=big", headers={"Authorization": f"Bearer {mint()}"}
    ) as response:
        assert response.status == 200
        received = 0
        async for chunk in response.content.iter_chunked(65536):
            received += len(chunk)
    assert received == 1024 * 1024


async def test_compressed_bodies_pass_byte_for_byte(gw, mint):
    body = gzip.compress(b'{"hello": "world"}' * 100)
    headers = {"Authorization": f"Bearer {mint()}", "Content-Encoding": "gzip"}
    async with gw.http.post(gw.url + "/api/user/z", data=body, headers=headers) as response:
        seen = await echoed(response)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_expect_100_continue_is_answered_after_authorization(gw, mint):
    headers = {"Authorization": f"Bearer {mint()}"}
    async with gw.http.post(
        gw.url + "/api/user/x", data=b"payload", headers=headers, expect100=True
    ) as response:
        seen = await echoed(response)
    assert seen["body_length"] == 7
    assert header_values(seen, "Expect") == []
    # Unauthorized: the final answer comes instead of 100 Continue; no upload happens.
    async with gw.http.post(gw.url + "/api/user/x", data=b"payload", expect100=True) as response:
        assert response.status == 401


async def test_head_request(gw, mint):
    async with gw.http.head(
        gw.url + "/api/user/x", headers={"Authorization": f"Bearer {mint()}"}
    ) as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_upstream_abort_mid_body_cuts_the_client_connection(gw, mint):
    headers = {"Authorization": f"Bearer {mint()}"}
    async with gw.http.get(gw.url + "/api/user/x?behaviour=abort", headers=headers) as response:
        assert response.status == 200  # the head was out before the upstream failed
        with pytest.raises(aiohttp.ClientPayloadError):  # ...so the body must not look whole
            await response.read()
    again = await gw.get("/api/user/x", mint())  # the gateway is fine afterwards
    assert again.status == 200
    (event,) = [e for e in gw.access_events() if e["upstream_failure"] == "aborted"]
    assert event["status"] == 200


async def test_duplicate_json_members_in_a_signed_token_are_refused(gw, jwks, rsa_signer):
    """Signed by the trusted key, yet `scope` twice: the upstream might read the other one."""
    claims = claims_for(jwks.issuer, scope="read:data")
    payload = __import__("json").dumps(claims)[:-1] + ', "scope": "admin"}'
    header = '{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}'
    token = sign_raw(rsa_signer, header, payload)
    response = await gw.get("/api/admin/x", token)
    assert response.status == 401


async def test_many_headers_multidict_input(gw, mint):
    headers = CIMultiDict([("Accept", "a"), ("Accept", "b"), ("Authorization", f"Bearer {mint()}")])
    async with gw.http.get(gw.url + "/api/user/x", headers=headers) as response:
        seen = await echoed(response)
    assert header_values(seen, "Accept") == ["a", "b"]


async def test_the_gateway_never_announces_its_runtime_versions(gw, mint):
    """aiohttp's default Server header ("Python/3.x aiohttp/3.y") would tell a scanner exact
    versions: every response the gateway makes says `Server: m2mgate`; an upstream's own
    Server header passes through unchanged."""
    responses = [
        await gw.get("/api/user/x"),  # 401
        await gw.get("/nowhere"),  # 404
        await gw.get("/api/user/x", "not-a-jwt"),  # 401 invalid_token
    ]
    assert [r.status for r in responses] == [401, 404, 401]
    assert {r.headers.getall("Server") == ["m2mgate"] for r in responses} == {True}
    raw = await raw_request(gw.url, b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    assert raw.status == 400 and raw.header("Server") == "m2mgate"
    proxied = await gw.get("/api/user/x", mint())
    assert proxied.status == 200 and proxied.headers["Server"] != "m2mgate"  # the upstream's own
    # An upstream without a Server header (aiohttp test servers always send one): the rule.
    from m2mgate.proxy.response_headers import downstream_response_headers

    assert ("Server", "m2mgate") in downstream_response_headers([("A", "1")], "rid", "D")[0]
    headers, _ = downstream_response_headers([("server", "nginx")], "rid", "D")
    assert headers.count(("Server", "m2mgate")) == 0
