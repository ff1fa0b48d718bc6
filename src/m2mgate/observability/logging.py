"""Structured JSON logs (structlog), with a redaction processor that runs on every event.

Threat: a bearer token in a log is a credential handed to everyone who can read logs. The
gateway never logs a token on purpose; the redaction processor is the net under that promise:
- values under sensitive keys (`authorization`, `token`, `client_secret`, ...) are replaced;
- any string that contains something JWT-shaped (`eyJ...`.`...`.`...`) or `Bearer <x>` has that
  part replaced, wherever it hides (an exception message, a nested dict, a list).
It runs after exception formatting, so tracebacks are redacted too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from m2mgate.observability.outcome import Outcome

REDACTED = "[redacted]"
_SENSITIVE_KEYS = frozenset(
    {
        "authorization", "proxy-authorization", "token", "access_token", "refresh_token",
        "id_token", "client_secret", "password", "secret", "cookie", "set-cookie",
    }
)  # fmt: skip
_JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_SUSPECT = re.compile(r"eyJ|(?i:bearer)")
_MAX_LOGGED_PATH = 512
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def redact_text(text: str) -> str:
    if not _SUSPECT.search(text):
        return text  # the common case: one cheap scan, no substitutions
    return _BEARER.sub(r"\1 " + REDACTED, _JWT_SHAPED.sub(REDACTED, text))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in _SENSITIVE_KEYS else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(item) for item in value]
    return value


_PLAIN = (int, float, bool, type(None))


def redact_tokens(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif type(value) is str:
            # One request event per request passes here: strings (the common case) are
            # scanned once and only written back when something was redacted.
            if _SUSPECT.search(value):
                event_dict[key] = redact_text(value)
        elif not isinstance(value, _PLAIN):
            event_dict[key] = _redact(value)
    return event_dict


def _processors() -> list[Any]:
    return [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_tokens,
        structlog.processors.JSONRenderer(sort_keys=False),
    ]


def build_logger(stream: TextIO | None = None, level: str = "info") -> Any:
    """A JSON-lines logger writing to `stream` (stdout by default), with redaction."""
    return structlog.wrap_logger(
        structlog.WriteLogger(stream if stream is not None else sys.stdout),
        processors=_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
    )


class AccessLog:
    """The one `request` event per request: the hottest log line, rendered without structlog's
    generic pipeline (bench/RESULTS.md: 13 us per line through it).

    The line is the same as every other event's: the fields, then `event`, `level` and an ISO
    UTC `timestamp`, as JSON (byte for byte what `json.dumps` writes: tested); every string
    goes through the same redaction (`redact_text`); same stream, whole lines per write.
    `log_level` above info turns it off.
    """

    def __init__(
        self, stream: TextIO | None = None, level: str = "info", batch_lines: int = 1
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.enabled = _LEVELS[level] <= logging.INFO
        self._extra = ""  # fields on every line (the worker index), rendered once
        # Lines held before one write (1: every line written at once). The gateway batches
        # and flushes on a short timer and at shutdown, as Envoy's file access log does.
        self._batch_lines = batch_lines
        self._pending: list[str] = []
        self._second = -1
        self._second_text = ""

    def tag(self, **fields: Any) -> None:
        """Fields added to every line from now on (a worker's index)."""
        self._extra = "".join(
            f", {_json(key)}: {json.dumps(value)}" for key, value in fields.items()
        )

    def flush(self) -> None:
        """Write the lines held back, in one write."""
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            self._stream.write(text)
            self._stream.flush()

    def record(self, outcome: Outcome) -> None:
        """The `request` line of one answered request."""
        if not self.enabled:
            return
        upstream_seconds = outcome.upstream_seconds
        self.write_request(
            outcome.request_id,
            outcome.method,
            outcome.path[:_MAX_LOGGED_PATH],
            outcome.route,
            outcome.status,
            "allow" if outcome.is_allowed else "deny",
            outcome.reason,
            outcome.issuer,
            outcome.client_id,
            round(outcome.duration_seconds * 1000, 3),
            round(upstream_seconds * 1000, 3) if upstream_seconds is not None else None,
            outcome.body_bytes,
            outcome.detail,
            outcome.upstream_failure,
            outcome.upstream_detail,
            outcome.client_gone or None,
            outcome.remote,
        )

    def write_request(
        self,
        request_id: str,
        method: str,
        path: str,
        route: str | None,
        status: int,
        decision: str,
        reason: str | None,
        issuer: str | None,
        client_id: str | None,
        duration_ms: float,
        upstream_ms: float | None,
        body_bytes: int | None,
        detail: str | None,
        upstream_failure: str | None,
        upstream_detail: str | None,
        client_gone: bool | None,
        remote: str | None,
    ) -> None:
        if not self.enabled:
            return
        texts = (request_id, method, path, client_id, detail, upstream_detail, remote)
        # One scan over every field a client or a library could have filled, not one each.
        if _SUSPECT.search("\x00".join(text for text in texts if text)):
            request_id, method, path = map(redact_text, (request_id, method, path))
            client_id, detail, upstream_detail, remote = (
                redact_text(text) if text else text
                for text in (client_id, detail, upstream_detail, remote)
            )
        # Fields that come from config or a closed set (route, decision, reason, issuer,
        # upstream_failure) are encoded, never redacted: they cannot hold a token.
        self._pending.append(
            f'{{"request_id": {_json(request_id)}, "method": {_json(method)}, '
            f'"path": {_json(path)}, "route": {_json(route)}, "status": {status}, '
            f'"decision": {_json(decision)}, "reason": {_json(reason)}, '
            f'"issuer": {_json(issuer)}, "client_id": {_json(client_id)}, '
            f'"duration_ms": {duration_ms!r}, "upstream_ms": {_number(upstream_ms)}, '
            f'"body_bytes": {_number(body_bytes)}, '
            f'"detail": {_json(detail)}, "upstream_failure": {_json(upstream_failure)}, '
            f'"upstream_detail": {_json(upstream_detail)}, '
            f'"client_gone": {"true" if client_gone else "null"}, '
            f'"remote": {_json(remote)}{self._extra}, "event": "request", "level": "info", '
            f'"timestamp": "{self._timestamp()}"}}'
        )
        if len(self._pending) >= self._batch_lines:
            self.flush()

    def _timestamp(self) -> str:
        """ISO 8601 UTC with microseconds, as structlog's TimeStamper(fmt="iso") writes it;
        the date and time of day are formatted once per second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((now - second) * 1_000_000):06d}Z"


def _json(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)


def _number(value: float | None) -> str:
    return "null" if value is None else repr(value)


def route_stdlib_logging(stream: TextIO | None = None, level: str = "info") -> None:
    """Send library logs (aiohttp, asyncio) through the same JSON + redaction pipeline."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_processors(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    logging.getLogger("aiohttp.access").disabled = True  # the gateway logs each request itself
