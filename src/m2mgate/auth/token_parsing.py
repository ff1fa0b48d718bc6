"""Strict parsing of a compact JWS (RFC 7515 §7.1) before any key is touched.

PyJWT's own parser accepts duplicate JSON members (the last one wins) and NaN/Infinity. Threat:
with duplicates, two components reading "the same" token can see different claims (the gateway
checks one `aud`, the upstream reads the other). So the header and payload are decoded here,
strictly, and the signature is checked over exactly these bytes afterwards (`jose.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from m2mgate.detail_text import quoted
from m2mgate.errors import MalformedToken

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """A structurally valid JWS whose signature has *not* been checked yet."""

    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes  # the ASCII of `header.payload` (RFC 7515 §5.2)
    signature: bytes

    @property
    def algorithm(self) -> str:
        return self.header["alg"]  # type: ignore[no-any-return]  # parse_token checked: str

    @property
    def key_id(self) -> str | None:
        return self.header.get("kid")


def decode_segment(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), canonical encodings only."""
    if not segment or not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise MalformedToken("segment is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("segment is not base64url") from None
    # Non-zero trailing bits make two encodings of one value: refuse the non-canonical one.
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        raise MalformedToken("segment is not canonical base64url")
    return decoded


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedToken(f"duplicate JSON member {quoted(key, 64)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise MalformedToken(f"JSON constant {name} is not allowed")


def decode_json_object(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except MalformedToken:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers bad JSON and integers over Python's digit limit.
        raise MalformedToken("segment is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken("segment is not a JSON object")
    return value


def parse_token(token: str) -> UnverifiedToken:
    segments = token.split(".")
    if len(segments) != 3:
        # 5 segments is JWE (encrypted, RFC 7516): never accepted as an access token here.
        raise MalformedToken(f"expected 3 segments, got {len(segments)}")
    header = _json_segment("header", segments[0])
    claims = _json_segment("payload", segments[1])
    try:
        signature = decode_segment(segments[2])  # an empty signature (alg none) fails here
    except MalformedToken as error:
        raise MalformedToken(f"signature: {error.detail}") from None
    _check_header(header)
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")  # base64url: plain ASCII
    return UnverifiedToken(token, header, claims, signing_input, signature)


def _json_segment(name: str, segment: str) -> dict[str, Any]:
    try:
        return decode_json_object(decode_segment(segment))
    except MalformedToken as error:
        raise MalformedToken(f"{name}: {error.detail}") from None


def _check_header(header: dict[str, Any]) -> None:
    if not isinstance(header.get("alg"), str):
        raise MalformedToken("header alg is missing or not a string")
    if "kid" in header and not isinstance(header["kid"], str):
        raise MalformedToken("header kid is not a string")
    # RFC 7515 §4.1.11: a recipient must reject a token naming a `crit` extension it does not
    # understand. This gateway understands none; `b64: false` (RFC 7797) changes what is signed.
    if "crit" in header or "b64" in header:
        raise MalformedToken("header uses crit/b64 extensions")
    # `jku`, `jwk`, `x5u`, `x5c` are ignored on purpose: a token must never choose its own key.
