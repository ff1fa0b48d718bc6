"""`upstream:`: the API behind the gateway. The URL rules live with UpstreamSettings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from m2mgate.config.schema_types import EnvBool, EnvInt, ParsedFrom, Seconds, Strict
from m2mgate.proxy.settings import UpstreamTarget, parse_upstream_url


def _url_text(target: UpstreamTarget) -> str:
    return target.url


class UpstreamSchema(Strict):
    url: Annotated[UpstreamTarget, ParsedFrom(str, parse_upstream_url, _url_text)] = Field(
        description="Base URL of the API behind the gateway (scheme, host, port)."
    )
    connect_timeout_seconds: Seconds = Field(
        2.0, gt=0, le=60, description="Longest wait to connect to the upstream (then 504)."
    )
    timeout_seconds: Seconds = Field(
        30.0, gt=0, le=3600,
        description="Longest wait for the response head, and for each later read of the body.",
    )  # fmt: skip
    max_connections: EnvInt = Field(256, ge=1, le=10000, description="Pooled connection cap.")
    preserve_host: EnvBool = Field(
        False, description="Send the client's Host upstream instead of the upstream URL's host."
    )
