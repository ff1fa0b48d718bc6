"""Tokens, client secrets and Authorization values never appear in logs, metrics, error bodies
or `explain` output (explain shows claims, which is its purpose, but never the signature)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from m2mgate.config.errors import validate_model
from m2mgate.issuer.client_secrets import hash_secret
from m2mgate.issuer.config import IssuerConfigSchema, compile_issuer
from m2mgate.issuer.server import DevIssuer
from m2mgate.observability.logging import build_logger
from m2mgate.token_client import basic_authorization
from tests.conftest import base_config
from tests.support.raw_http import get, raw_request

SECRET = "sup3r-s3cret-v4lue"


def fragments(token: str) -> list[str]:
    """The token and each of its base64 segments (any one of them leaks something)."""
    return [token, *token.split(".")]


async def test_nothing_secret_in_logs_metrics_or_error_bodies(
    make_gateway, mint, jwks, rsa_signer, tmp_path
):
    issuer_log = io.StringIO()
    schema = validate_model(
        IssuerConfigSchema,
        {"listen": "127.0.0.1:0", "default_audience": "https://api.example",
         "clients": [{"client_id": "svc", "client_secret_hash": hash_secret(SECRET, 1000), "scopes": ["a"]}]},
    )  # fmt: skip
    issuer = DevIssuer(compile_issuer(schema), log=build_logger(issuer_log))
    await issuer.start()
    gw = await make_gateway(lambda c: c.update(log_level="debug"))
    try:
        async with aiohttp.ClientSession() as http:
            answers = []
            for secret in (SECRET, SECRET + "-wrong"):
                headers = {"Authorization": basic_authorization("svc", secret)}
                form = {"grant_type": "client_credentials"}
                async with http.post(issuer.token_endpoint, data=form, headers=headers) as r:
                    answers.append(await r.json())
        issued = answers[0]["access_token"]
        assert answers[1]["error"] == "invalid_client"
        valid, forbidden = mint(scope="read:data"), mint(scope="read:data", client_id="c2")
        forged = valid[:-6] + "AAAAAA"
        tokens = [valid, forbidden, forged, issued]
        bodies: list[str] = []
        for token in tokens:
            for path in (
                "/api/user/x",
                "/api/admin/x",
                "/nowhere",
                f"/api/user/x?access_token={token}",
            ):
                response = await gw.get(path, token)
                if response.status >= 400:
                    bodies.append(await response.text() + str(dict(response.headers)))
        for raw in (
            get("/api/user/x", f"Authorization: Bearer {valid}", f"Authorization: Bearer {valid}"),
            get("/api/user/x", f"Authorization : Bearer {valid}"),  # a parser error
            get("/api/user/x", f"Authorization: Basic {basic_authorization('svc', SECRET)[6:]}"),
            get("/public/../x", f"Authorization: Bearer {valid}"),
        ):
            response = await raw_request(gw.url, raw)
            bodies.append(response.body.decode() + str(response.headers))
        metrics = await gw.metrics_text()
        places = {
            "gateway log": gw.log_stream.getvalue(),
            "issuer log": issuer_log.getvalue(),
            "metrics": metrics,
            "error bodies": "\n".join(bodies),
        }
        basic_value = basic_authorization("svc", SECRET)[6:]
        for place, text in places.items():
            for token in tokens:
                for fragment in fragments(token):
                    assert fragment not in text, f"a token fragment in the {place}"
            assert SECRET not in text, f"the client secret in the {place}"
            assert basic_value not in text, f"a Basic credential in the {place}"
    finally:
        await issuer.stop()

    # explain: claims yes (that is the point), signature and raw segments never.
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(base_config(jwks, gw_upstream_placeholder())))
    for extra in ([], ["--json"]):
        for token in (valid, forged):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "m2mgate", "explain", "--config", str(config),
                "--path", "/api/admin/x", "--token", token, *extra,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 60)
            text = out.decode() + err.decode()
            assert "svc-orders" in text  # a claim value: shown
            for fragment in fragments(token):
                assert fragment not in text, "explain printed a token segment"


def gw_upstream_placeholder() -> object:
    class Upstream:
        url = "http://127.0.0.1:9"

    return Upstream()


def test_secret_hashes_never_contain_the_secret(tmp_path: Path):
    encoded = hash_secret(SECRET, 1000)
    assert SECRET not in encoded
