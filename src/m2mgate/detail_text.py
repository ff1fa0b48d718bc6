"""How request-supplied values appear in a `GatewayError.detail` (the access log, `explain`).

A detail makes a denial actionable: which `iss` the token claimed, which `aud` it carried, how
long ago it expired. Those values are attacker-chosen text (everything before the signature
check is), so in a detail they are always:
- bounded: a value at most `limit` characters, then `...(N chars)`; a list at most `most`
  items, then `+N more`. Threat: log flooding and a 10 KB `iss` per request;
- quoted with `repr`: quotes, backslashes, newlines, other control and non-printable
  characters (bidi overrides included) are escaped, so a value can neither end the line nor
  pose as another field, in the JSON access log (which escapes once more) or in `explain`'s
  text. Threat: log injection (CWE-117).
The token as a whole and its signature never go into a detail; the redaction processor
(observability/logging.py) still runs over every detail as the net under that promise.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def quoted(text: str, limit: int = 200) -> str:
    """`'value'`, escaped and bounded."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}...({len(text)} chars)"


def quoted_list(values: Iterable[str], most: int = 10, limit: int = 100) -> str:
    """`['a', 'b', +3 more]`, each item as `quoted`."""
    items = list(values)
    shown = [quoted(item, limit) for item in items[:most]]
    if len(items) > most:
        shown.append(f"+{len(items) - most} more")
    return "[" + ", ".join(shown) + "]"


def json_type(value: Any) -> str:
    """What kind of JSON value this is, for "expected X, got Y" without the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def utc(seconds: float) -> str:
    """A NumericDate as ISO 8601 UTC (callers bound it to year 3000 first)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: float) -> str:
    """A duration for people: `45s`, `12m05s`, `3h02m`, `2d04h`."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
