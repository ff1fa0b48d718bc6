import pytest

from m2mgate.auth.bearer import extract_bearer_token
from m2mgate.errors import CredentialsMissing, MalformedAuthorization, TokenTooLarge

MAX = 8192


@pytest.mark.parametrize(
    ("values", "token"),
    [
        (["Bearer abc.def.ghi"], "abc.def.ghi"),
        (["bearer abc.def.ghi"], "abc.def.ghi"),  # RFC 9110 §11.1: scheme is case-insensitive
        (["BEARER abc"], "abc"),
        (["Bearer    abc"], "abc"),  # a run of spaces
        (["Bearer a-b_c~d+e/f=="], "a-b_c~d+e/f=="),  # the whole b64token alphabet
    ],
)
def test_extracts_the_token(values, token):
    assert extract_bearer_token(values, max_bytes=MAX) == token


@pytest.mark.parametrize("values", [[], ["Basic dXNlcjpwYXNz"], ["DPoP abc"], ["Token abc"]])
def test_no_bearer_credentials_is_missing_credentials(values):
    with pytest.raises(CredentialsMissing):
        extract_bearer_token(values, max_bytes=MAX)


@pytest.mark.parametrize(
    "values",
    [
        ["Bearer a", "Bearer b"],  # two headers: which one would the upstream use?
        ["Bearer a", "Bearer a"],
        [""],
        ["Bearer"],
        ["Bearer "],
        ["Bearer a b"],  # space inside the token
        ["Bearer a,b"],
        ["Bearer a\tb"],
        ["Bearer\tabc"],
        ["Bearer ab=c"],  # '=' only as trailing padding
        ["Bearer \u00e9t\u00e9"],
    ],
)
def test_malformed_header_is_invalid_request(values):
    with pytest.raises(MalformedAuthorization):
        extract_bearer_token(values, max_bytes=MAX)


def test_size_cap_is_checked_before_parsing():
    with pytest.raises(TokenTooLarge):
        extract_bearer_token(["Bearer " + "a" * MAX], max_bytes=MAX)
    assert extract_bearer_token(["Bearer " + "a" * (MAX - 7)], max_bytes=MAX)


def test_oversized_garbage_is_too_large_not_malformed():
    # The cap runs first: a huge header never reaches the regular expression.
    with pytest.raises(TokenTooLarge):
        extract_bearer_token(["x" * (MAX + 1)], max_bytes=MAX)
