"""The config file's schema: strict types, unknown keys forbidden, every field documented.

This module only says what a valid file looks like; `compiling.py` turns a validated file into the
frozen objects the request path uses. YAML key names equal the Python field names, so one grep
finds both. `m2mgate schema` prints the JSON Schema generated from these models.

The sections live in schema_*.py (types, upstream, issuers, claims, forward, routes, limits);
this module assembles them into the whole file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from m2mgate.config.schema_forward import ForwardSchema
from m2mgate.config.schema_issuers import IssuerSchema
from m2mgate.config.schema_limits import LimitsSchema
from m2mgate.config.schema_routes import RouteSchema
from m2mgate.config.schema_types import ParsedFrom, Seconds, Strict
from m2mgate.config.schema_upstream import UpstreamSchema
from m2mgate.listen_address import ListenAddress, parse_listen_address

LogLevel = Literal["debug", "info", "warning", "error"]


# Written `host:port`; validated into the ListenAddress the listeners bind. The defaults are
# written too, and validated like any value.
Listen = Annotated[ListenAddress, ParsedFrom(str, parse_listen_address, str)]


class ConfigSchema(Strict):
    listen: Listen = Field(
        "127.0.0.1:8080", validate_default=True, description="Proxy address, host:port."
    )
    admin_listen: Listen = Field(
        "127.0.0.1:9901", validate_default=True, description="/metrics, /healthz, /readyz."
    )
    upstream: UpstreamSchema = Field(description="The API behind the gateway.")
    issuers: list[IssuerSchema] = Field(
        min_length=1, description="Trusted token issuers, each with its keys and claim layout."
    )
    forward: ForwardSchema = Field(
        default_factory=ForwardSchema, description="Identity headers sent to the upstream."
    )
    routes: list[RouteSchema] = Field(
        min_length=1, description="First match wins; no match -> 404 (default deny)."
    )
    limits: LimitsSchema = Field(
        default_factory=LimitsSchema, description="Request size limits and client timeouts."
    )
    shutdown_grace_seconds: Seconds = Field(
        20.0, ge=0, le=600, description="How long SIGTERM waits for in-flight requests."
    )
    shutdown_delay_seconds: Seconds = Field(
        0.0,
        ge=0,
        le=300,
        description="On SIGTERM, /readyz answers 503 at once but the gateway goes on accepting "
        "and serving for this long before it drains, while load balancers (Kubernetes "
        "endpoints, kube-proxy, ingress) stop sending to it. A second SIGTERM/SIGINT skips the "
        "rest. 0: drain at once.",
    )
    log_level: LogLevel = Field("info", description="Least severe log level written.")

    # Unique names and `issuer` values, case-only duplicate route paths and `admin_listen` vs
    # `listen` span several items: they are checked in config/cross_checks.py, which pydantic's
    # list validators could not do in the same pass as the items' own problems.
