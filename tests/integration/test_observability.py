"""Access log, redaction and metric labels, observed on a real gateway."""

from __future__ import annotations

import re
import uuid

from tests.integration.test_key_lifecycle import metric
from tests.support.raw_http import get, raw_request
from tests.support.tokens import claims_for


async def test_one_access_event_per_request_with_the_decision(gw, mint):
    await gw.get("/api/user/x?secret=1", mint(client_id="svc-a"), headers={"X-Request-Id": "r-1"})
    await gw.get("/api/admin/x", mint(client_id="svc-a"), headers={"X-Request-Id": "r-2"})
    await gw.get("/api/user/x", headers={"X-Request-Id": "r-3"})
    events = {event["request_id"]: event for event in gw.access_events()}
    allowed, forbidden, anonymous = events["r-1"], events["r-2"], events["r-3"]
    assert allowed | {"duration_ms": 0, "upstream_ms": 0, "timestamp": ""} == {
        "event": "request", "level": "info", "timestamp": "", "request_id": "r-1",
        "method": "GET", "path": "/api/user/x", "route": "user", "status": 200,
        "decision": "allow", "reason": "ok", "issuer": "local", "client_id": "svc-a",
        "duration_ms": 0, "upstream_ms": 0, "body_bytes": None, "detail": None, "upstream_failure": None,
        "upstream_detail": None, "client_gone": None, "remote": "127.0.0.1",
    }  # fmt: skip
    assert "secret" not in str(allowed)  # the query string is never logged
    assert (forbidden["status"], forbidden["reason"], forbidden["detail"]) == (
        403, "insufficient_scope",
        "requirement not met: scopes all of [admin]; token scopes ['read:data'], roles []",
    )  # fmt: skip
    assert forbidden["upstream_ms"] is None  # denied: the upstream never saw it
    assert (anonymous["reason"], anonymous["client_id"], anonymous["issuer"]) == (
        "missing_token", None, None,
    )  # fmt: skip


async def test_unverified_client_ids_are_never_logged(gw, jwks, spare_rsa_signer):
    forged = spare_rsa_signer.sign(
        claims_for(jwks.issuer, client_id="pretend-admin"), header={"kid": "rsa-1"}
    )
    await gw.get("/api/user/x", forged)
    (event,) = gw.access_events()
    assert event["reason"] == "bad_signature"
    assert event["issuer"] == "local"  # the claimed issuer: a bounded label
    assert event["client_id"] is None
    assert "pretend-admin" not in gw.log_stream.getvalue()


async def test_a_claim_the_layout_cannot_read_is_counted_under_the_claimed_issuer(gw, mint):
    """Issue #8 item 23: the token names a configured issuer, so the label is that issuer."""
    response = await gw.get("/api/user/x", mint(scope=["read:data"]))  # rfc9068: a string
    assert response.status == 401
    text = await gw.metrics_text()
    labels = {"route": "user", "issuer": "local", "decision": "deny", "reason": "invalid_claim"}
    assert metric(text, "m2mgate_auth_decisions_total", **labels) == 1
    (event,) = gw.access_events()
    assert (event["reason"], event["issuer"]) == ("invalid_claim", "local")


async def test_no_token_ever_appears_in_the_logs(make_gateway, jwks, rsa_signer, mint):
    gw = await make_gateway(lambda c: c.update(log_level="debug"))
    good = mint(scope="admin")
    tokens = [
        good,
        mint(scope="read:data"),  # 403
        mint(exp=1, iat=0),  # expired
        rsa_signer.sign(claims_for("https://unknown.example")),
        rsa_signer.sign(claims_for(jwks.issuer), header={"kid": "unknown"}),
        good[:-4] + "AAAA",  # bad signature
    ]
    for token in tokens:
        await gw.get("/api/admin/x", token)
        await gw.get(f"/api/user/{token}")  # token in the path
        await gw.get(f"/api/user/x?access_token={token}")
        await gw.get("/nowhere", token)
    await raw_request(
        gw.url, get("/api/user/x", f"Authorization: Bearer {good}", f"Authorization: Bearer {good}")
    )
    await gw.get("/api/user/x", headers={"Authorization": f"Bearer {good}{'A' * 9000}"})
    log = gw.log_stream.getvalue()
    assert len(gw.access_events()) == len(tokens) * 4 + 2
    for token in tokens:
        for part in token.split("."):
            assert part not in log


async def test_metric_labels_stay_bounded(gw, mint):
    for _ in range(50):
        await gw.get(f"/random/{uuid.uuid4()}", mint())
        await gw.get(f"/api/user/{uuid.uuid4()}", mint())
    async with gw.http.request("PROPFIND", gw.url + "/api/user/x") as response:
        assert response.status == 401
    text = await gw.metrics_text()
    label_values = set(re.findall(r'="([^"]*)"', text))
    assert not any(re.fullmatch(r"[0-9a-f-]{36}", value) for value in label_values)
    assert not any(value.startswith("/") for value in label_values)
    assert metric(text, "m2mgate_requests_total", route="(none)", method="GET", status="404") == 50
    assert metric(text, "m2mgate_requests_total", route="user", method="OTHER", status="401") == 1
    assert metric(text, "m2mgate_auth_decisions_total", route="(none)", reason="no_route") == 50


async def test_upstream_failures_are_counted(make_gateway, mint):
    gw = await make_gateway(lambda c: c["upstream"].update(timeout_seconds=0.2))
    assert (await gw.get("/api/user/x?behaviour=hang", mint())).status == 504
    text = await gw.metrics_text()
    assert metric(text, "m2mgate_upstream_errors_total", route="user", kind="timeout") == 1
    assert metric(text, "m2mgate_auth_decisions_total", route="user", decision="allow") == 1


async def test_a_bug_is_a_500_with_a_logged_trace(gw, mint, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(gw.gateway.gatekeeper, "decide", broken)
    response = await gw.get("/api/user/x", mint())
    assert response.status == 500
    assert (await response.json())["error"] == "server_error"
    (event,) = [e for e in gw.log_events() if e["event"] == "unhandled_error"]
    assert "RuntimeError: simulated bug" in event["exception"]


async def test_request_lines_are_written_within_the_flush_interval(gw, mint):
    """The access log is batched; a quiet gateway still writes each line within ~0.1 s."""
    from tests.support.waiting import eventually

    assert (await gw.get("/api/user/x", mint())).status == 200
    await eventually(
        lambda: any('"event": "request"' in line for line in gw.stream.getvalue().splitlines()),
        within_seconds=2,
    )


async def test_in_flight_requests_are_counted_at_scrape_time(gw, mint, upstream):
    import asyncio

    from tests.support.waiting import eventually

    hanging = asyncio.create_task(gw.get("/api/user/x?behaviour=hang", mint()))
    await asyncio.wait_for(upstream.entered.wait(), 5)
    assert "m2mgate_requests_in_flight 1.0" in await gw.metrics_text()
    upstream.release.set()
    assert (await asyncio.wait_for(hanging, 5)).status == 200
    await eventually(lambda: gw.gateway.open_connections <= 1)
    assert "m2mgate_requests_in_flight 0.0" in await gw.metrics_text()
