import json

import pytest

from m2mgate.auth.token_parsing import decode_segment, parse_token
from m2mgate.errors import MalformedToken
from tests.support.tokens import b64url, raw_token

HEADER = '{"alg":"RS256","kid":"k1","typ":"at+jwt"}'
PAYLOAD = '{"iss":"https://issuer","exp":1}'


def test_parses_a_well_formed_token():
    token = parse_token(raw_token(HEADER, PAYLOAD))
    assert token.algorithm == "RS256"
    assert token.key_id == "k1"
    assert token.claims == {"iss": "https://issuer", "exp": 1}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # JWE compact serialisation
        f"{b64url(HEADER)}.{b64url(PAYLOAD)}.",  # empty signature (alg none style)
        f"{b64url(HEADER)}..{b64url('sig')}",
        f".{b64url(PAYLOAD)}.{b64url('sig')}",
        f"{b64url(HEADER)}=.{b64url(PAYLOAD)}.{b64url('sig')}",  # padding
        f"{b64url(HEADER)}.{b64url(PAYLOAD)}+.{b64url('sig')}",  # not base64url
        f"{b64url(HEADER)}.{b64url(PAYLOAD)}.{b64url('sig')}x",  # length % 4 == 1
    ],
)
def test_structure_errors(token):
    with pytest.raises(MalformedToken):
        parse_token(token)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ('{"alg":"RS256","alg":"none"}', PAYLOAD),  # duplicate member in the header
        (HEADER, '{"iss":"a","iss":"b","exp":1}'),  # duplicate member in the payload
        (HEADER, '{"iss":"a","exp":NaN}'),
        (HEADER, '{"iss":"a","exp":Infinity}'),
        (HEADER, '{"iss":"a","exp":-Infinity}'),
        (HEADER, "[1,2]"),  # not an object
        (HEADER, '"string"'),
        ("[]", PAYLOAD),
        (HEADER, '{"iss": "a", "exp": 1'),  # truncated
        (HEADER, "\xff\xfe"),
        (HEADER, "[" * 5000 + "]" * 5000),  # recursion bomb
        (HEADER, '{"exp": ' + "9" * 5000 + "}"),  # over Python's int digit limit
        ('{"kid":"k"}', PAYLOAD),  # no alg
        ('{"alg":1}', PAYLOAD),
        ('{"alg":"RS256","kid":1}', PAYLOAD),
        ('{"alg":"RS256","crit":["exp"],"exp":1}', PAYLOAD),
        ('{"alg":"RS256","b64":false,"crit":["b64"]}', PAYLOAD),
    ],
)
def test_strict_json_errors(header, payload):
    with pytest.raises(MalformedToken):
        parse_token(raw_token(header, payload))


def test_non_canonical_base64_is_refused():
    canonical = b64url(b"\xff")  # "_w"
    assert decode_segment(canonical) == b"\xff"
    with pytest.raises(MalformedToken):
        decode_segment("_x")  # same byte, non-zero trailing bits


def test_embedded_key_headers_are_parsed_but_carry_no_meaning():
    header = json.dumps({"alg": "RS256", "jku": "http://evil", "jwk": {"kty": "oct"}, "x5u": "x"})
    token = parse_token(raw_token(header, PAYLOAD))
    assert token.algorithm == "RS256"  # nothing in the parsed token selects a key by URL
