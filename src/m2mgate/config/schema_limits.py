"""`limits:`: request sizes, client timeouts, connection and token cache bounds."""

from __future__ import annotations

from pydantic import Field, model_validator

from m2mgate.config.schema_types import EnvInt, Seconds, Strict


class LimitsSchema(Strict):
    max_token_bytes: EnvInt = Field(
        8192, ge=512, le=65536, description="Authorization header size cap, checked before parsing."
    )
    max_header_bytes: EnvInt = Field(
        16384, ge=1024, le=1024 * 1024, description="Longest header field line (else 431)."
    )
    max_headers: EnvInt = Field(100, ge=10, le=1000, description="Most header fields (else 431).")
    max_url_bytes: EnvInt = Field(
        8190, ge=256, le=1024 * 1024, description="Longest request line (else 414)."
    )
    max_body_bytes: EnvInt | None = Field(
        16 * 1024 * 1024,
        ge=0,
        description="Largest request body forwarded (else 413); 0: no body at all; null: no limit.",
    )
    head_timeout_seconds: Seconds = Field(
        10.0, gt=0, le=600, description="A request head must arrive within this (slowloris)."
    )
    body_idle_timeout_seconds: Seconds = Field(
        30.0, gt=0, le=3600, description="Longest pause while a client sends its body (else 408)."
    )
    keepalive_timeout_seconds: Seconds = Field(
        75.0, gt=0, le=3600, description="Idle keep-alive connections are closed after this."
    )
    send_timeout_seconds: Seconds = Field(
        60.0,
        gt=0,
        le=3600,
        description="A client that reads nothing of a response for this long is cut off, and "
        "the upstream connection it held is freed (nginx's send_timeout).",
    )
    max_connections: EnvInt = Field(
        10000, ge=1, le=1_000_000, description="Concurrent client connections; more are closed."
    )
    token_cache_entries: EnvInt = Field(
        10000,
        ge=0,
        le=1_000_000,
        description="Verified tokens remembered (LRU) so a repeat token skips the signature "
        "check; an entry never outlives the token's exp or its key. 0: off.",
    )
    token_cache_max_bytes: EnvInt = Field(
        32 * 1024 * 1024,
        ge=0,
        description="Memory the verified-token cache may hold, per process, as estimated per "
        "entry (a SHA-256 of the token, the principal and the claims the config reads); "
        "least recently used entries are dropped past it or past token_cache_entries. The "
        "default keeps the cache within the 256Mi Kubernetes manifest whatever the tokens "
        "look like. 0: no byte bound.",
    )

    @model_validator(mode="after")
    def _token_fits_in_a_header(self) -> LimitsSchema:
        if self.max_header_bytes < self.max_token_bytes + len("Authorization: Bearer "):
            raise ValueError(
                "max_header_bytes must exceed max_token_bytes (plus the header name), so an "
                "oversized token gets a 401 invalid_token rather than a parser error"
            )
        return self
