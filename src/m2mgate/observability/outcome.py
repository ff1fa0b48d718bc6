"""What happened to one request, as plain facts: the one value the metrics and the access log
each record (`metrics.record(outcome)`, `access_log.record(outcome)`).

Plain fields only (names, numbers, closed-set strings), so any listener can build one: the
HTTP/1.1 handler today; an HTTP/2 stream, a gRPC call or a check-only endpoint later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Outcome:
    request_id: str
    method: str
    path: str  # as received, without the query (still percent-encoded)
    remote: str | None  # the peer address
    status: int  # what the client was answered (500 for a response never started)
    duration_seconds: float
    route: str | None  # the matched route's name (config: a bounded label)
    is_allowed: bool
    reason: str | None  # errors.Reason; None when no decision was reached (a bug)
    issuer: str | None  # the token's claimed issuer name, once known
    # Only a *verified* client id: an unverified one could be anything.
    client_id: str | None
    detail: str | None  # why it was refused or cut, for the log only
    upstream_seconds: float | None  # None: no upstream exchange
    body_bytes: int | None  # request body bytes handed to the upstream (None: none sent)
    upstream_failure: str | None  # unavailable | timeout | aborted
    upstream_detail: str | None
    client_gone: bool  # the client left mid-response
