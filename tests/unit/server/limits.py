"""The listener limits the server unit tests run with (the config defaults, a small cap)."""

from m2mgate.server.limits import ConnectionLimits

LIMITS = ConnectionLimits(
    head_timeout_seconds=10,
    keepalive_timeout_seconds=75,
    max_connections=10,
    max_url_bytes=8190,
    max_header_bytes=16384,
    max_headers=100,
)
