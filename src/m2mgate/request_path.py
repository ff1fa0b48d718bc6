"""The path policy: routes are matched on exactly the path the upstream will act on.

Threat (path confusion, PROVIDERS.md attacks §11): the gateway matches `/public/../api/admin`
against `/public/**` and lets it through, while the upstream normalises it to `/api/admin`. The
same with `%2e%2e`, `//`, `%2f`, `\\`, or `;` parameters that Tomcat-style servers strip.

Policy: *refuse* what is ambiguous rather than rewrite it, so the path forwarded upstream is the
byte-for-byte path the client sent, and the path matched is that path percent-decoded.

- the request-target must be origin-form (RFC 9112 §3.2.1), starting with `/`;
- only RFC 3986 pchar characters, and no `;` (path parameters);
- percent-escapes must be valid; they may not encode `/`, `\\`, NUL or any control character,
  nor another escape (`%252e` is `%2e` after one decoding: an upstream or a second proxy that
  decodes twice would see `.`), and the decoded path must be UTF-8;
- no empty segment (`//`) except a trailing slash, and no `.` or `..` segment, encoded or not.
Once those are refused, decoding every escape is safe (no escape can create a segment boundary),
so `/api/%61dmin` matches the `/api/admin` route, as the upstream will read it. Matching is
case-sensitive, and a path that another route would claim if case or a trailing slash were
ignored is refused (see routing.py, `CaseConfusion` and `TrailingSlashConfusion`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, unquote_to_bytes

from m2mgate.errors import InvalidPath

# RFC 3986 §3.3 pchar plus "/", minus ";" (see above). "%" starts an escape, checked below.
_ALLOWED = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/%]*")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_DECODED = re.compile(rb"[\x00-\x1f\x7f/\\]")
_ESCAPE_AFTER_DECODING = re.compile(rb"%[0-9A-Fa-f]{2}")


# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]. Stricter than RFC 3986's
# reg-name on purpose: no sub-delims (`,` `;` would split X-Forwarded-Host lists), no
# percent-encoding, so an authority the gateway accepts means the same to every parser after
# it. An IP-literal is bracketed hex, dots and colons. An empty value is valid (RFC 9112 §3.2).
_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._~-]*)(?::[0-9]{0,5})?")


def is_valid_authority(value: str) -> bool:
    """Is this a Host (or X-Forwarded-Host) value every hop reads alike?"""
    return _AUTHORITY.fullmatch(value) is not None


def split_target(target: str) -> tuple[str, str]:
    """`/a/b?x=1` -> ("/a/b", "x=1"); the query is forwarded as is and never routed on."""
    path, _, query = target.partition("?")
    return path, query


# Query parameters some upstream frameworks read as the request's method (Symfony and Laravel's
# `_method` with httpMethodParameterOverride, Express `methodOverride('_method')`), compared
# percent-decoded and case-insensitively. The gateway decided on the request line's method.
_METHOD_OVERRIDE_PARAMETERS = frozenset(
    {"_method", "x-http-method-override", "x-http-method", "x-method-override"}
)


def check_query(query: str) -> None:
    """InvalidPath when the query asks the upstream for another method than the request
    line's. Threat (#8 review R5): `POST /api/items/1?_method=DELETE` passes a POST rule and
    runs the DELETE handler. (A `_method` in a form body cannot be seen here; see the threat
    model: such overrides must be off upstream.)"""
    # The common case: no parsing. A name can only spell an override with the letters of
    # "method" in it or with percent-escapes: `_m%65thod` decodes to `_method` upstream.
    if "%" not in query and "method" not in query.lower():
        return
    for parameter in query.replace(";", "&").split("&"):
        name = unquote_plus(parameter.partition("=")[0]).strip().lower()
        # PHP (Laravel, Symfony) turns `.` and spaces inside a name into `_` and reads
        # `_method[...]` as `_method`; qs (Express) reads the brackets alike.
        name = name.partition("[")[0].replace(".", "_").replace(" ", "_")
        if name in _METHOD_OVERRIDE_PARAMETERS:
            raise InvalidPath("the query overrides the method (a `_method` parameter)")


def normalize_request_path(raw_path: str) -> str:
    """The decoded path to route on; InvalidPath (400) for anything ambiguous."""
    if not raw_path.startswith("/"):
        raise InvalidPath("request-target is not origin-form")
    if not _ALLOWED.fullmatch(raw_path):
        raise InvalidPath("path has characters outside RFC 3986 pchar (or a ';')")
    if _ESCAPE.search(raw_path):
        raise InvalidPath("invalid percent-escape")
    raw_segments = raw_path[1:].split("/")
    decoded_segments: list[str] = []
    last = len(raw_segments) - 1
    for index, raw_segment in enumerate(raw_segments):
        if raw_segment == "" and index != last:
            raise InvalidPath("empty path segment")
        segment = _decode_segment(raw_segment)
        if segment in (".", ".."):
            raise InvalidPath("dot segment in path")
        decoded_segments.append(segment)
    return "/" + "/".join(decoded_segments)


def _decode_segment(raw_segment: str) -> str:
    if "%" not in raw_segment:
        return raw_segment
    data = unquote_to_bytes(raw_segment)
    if _FORBIDDEN_DECODED.search(data):
        raise InvalidPath("escape encodes '/', '\\' or a control character")
    if _ESCAPE_AFTER_DECODING.search(data):
        raise InvalidPath("double-encoded escape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPath("escape does not decode to UTF-8") from None
