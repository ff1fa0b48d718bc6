"""Config shapes that used to fail open, checked through a real gateway (issue #8, part B).

Each test names the shape: what the config says must be what the gateway does, and a zero, an
empty list or a method nobody listed never widens access.
"""

from __future__ import annotations

from tests.support.raw_http import raw_request


def _request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway.test", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- limits.max_body_bytes: 0 means zero, null means unlimited ----------------------------------


async def test_max_body_bytes_zero_refuses_any_body_byte(make_gateway, mint):
    """Found in review: `max_body_bytes: 0` was compiled as "no limit" (`0 or None`)."""
    gw = await make_gateway(lambda c: c.update(limits={"max_body_bytes": 0}))
    auth = f"Authorization: Bearer {mint()}"
    declared = await raw_request(
        gw.url, _request("POST", "/api/x", auth, "Content-Length: 1", body=b"x")
    )
    assert declared.status == 413
    chunked = await raw_request(
        gw.url,
        _request("POST", "/api/x", auth, "Transfer-Encoding: chunked", body=b"1\r\nx\r\n0\r\n\r\n"),
    )
    assert chunked.status == 413
    bodiless = await raw_request(gw.url, _request("GET", "/api/x", auth))
    assert bodiless.status == 200
    empty = await raw_request(gw.url, _request("POST", "/api/x", auth, "Content-Length: 0"))
    assert empty.status == 200


async def test_max_body_bytes_null_is_unlimited(make_gateway, mint, upstream):
    gw = await make_gateway(lambda c: c.update(limits={"max_body_bytes": None}))
    body = b"x" * (17 * 1024 * 1024)  # over the 16 MiB default
    response = await gw.http.post(
        gw.url + "/api/x", data=body, headers={"Authorization": f"Bearer {mint()}"}
    )
    assert response.status == 200
    assert (await response.json())["body_length"] == len(body)
