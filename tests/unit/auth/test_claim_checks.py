import math

import pytest

from m2mgate.auth.claim_checks import (
    TokenTypeGuard,
    check_audience,
    check_times,
    check_token_type,
    numeric_date,
)
from m2mgate.errors import (
    Expired,
    InvalidClaim,
    MissingClaim,
    NotYetValid,
    WrongAudience,
    WrongTokenType,
)

NOW = 1_800_000_000.0
DAY = 86400.0


def times(**claims):
    check_times(claims, now=NOW, leeway=30, max_lifetime=DAY)


def test_valid_times_pass():
    times(exp=NOW + 300, iat=NOW - 10, nbf=NOW - 10)
    times(exp=NOW + 300.5)  # floats are NumericDates too


def test_exp_is_required():
    with pytest.raises(MissingClaim):
        times(iat=NOW)


def test_expiry_and_leeway():
    times(exp=NOW - 29)  # inside the leeway
    with pytest.raises(Expired):
        times(exp=NOW - 30)
    with pytest.raises(Expired):
        times(exp=NOW - 3600)


def test_not_before_and_issued_in_future():
    times(exp=NOW + 300, nbf=NOW + 29)
    with pytest.raises(NotYetValid):
        times(exp=NOW + 300, nbf=NOW + 31)
    with pytest.raises(NotYetValid):
        times(exp=NOW + 300, iat=NOW + 31)


@pytest.mark.parametrize(
    "value",
    ["1800000300", True, False, None, [1], {"a": 1}, math.nan, math.inf, -1, 1e20, 10**30,
     10**400, -(10**400)],  # beyond float: float() of them raised OverflowError, a 500
)  # fmt: skip
def test_numeric_date_type_abuse(value):
    with pytest.raises(InvalidClaim):
        times(exp=value)


def test_bool_is_not_a_number_for_nbf_either():
    with pytest.raises(InvalidClaim):
        times(exp=NOW + 300, nbf=True)


def test_numeric_date_absent_is_none():
    assert numeric_date({}, "nbf") is None


def test_lifetime_cap():
    times(exp=NOW + DAY)
    with pytest.raises(InvalidClaim):
        times(exp=NOW + DAY + 31)
    with pytest.raises(InvalidClaim):  # an old token that was minted for more than a day
        times(exp=NOW + 60, iat=NOW - DAY)


AUD = frozenset({"https://api.example", "api://default"})


@pytest.mark.parametrize(
    "aud", ["https://api.example", ["other", "api://default"], ["https://api.example"]]
)
def test_audience_any_of(aud):
    check_audience({"aud": aud}, AUD)


@pytest.mark.parametrize("aud", ["https://api.example/", "HTTPS://API.EXAMPLE", ["other"], "api"])
def test_wrong_audience(aud):
    with pytest.raises(WrongAudience):
        check_audience({"aud": aud}, AUD)


@pytest.mark.parametrize("aud", [[], [1], 5, None, {"a": 1}, ["https://api.example", 1]])
def test_malformed_audience(aud):
    with pytest.raises(InvalidClaim):
        check_audience({"aud": aud}, AUD)


def test_missing_audience():
    with pytest.raises(MissingClaim):
        check_audience({}, AUD)


def test_audience_check_off_is_explicit_empty_set():
    check_audience({}, frozenset())
    check_audience({"aud": "anything"}, frozenset())


RFC9068 = TokenTypeGuard(header_typ=frozenset({"at+jwt", "application/at+jwt"}))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_header_typ_accepted(typ):
    check_token_type(RFC9068, {"typ": typ}, {})


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt ", 1])
def test_header_typ_refused(typ):
    header = {} if typ is None else {"typ": typ}
    with pytest.raises(WrongTokenType):
        check_token_type(RFC9068, header, {})


def test_claim_guard():
    guard = TokenTypeGuard(claims=((("token_use",), frozenset({"access"})),))
    check_token_type(guard, {}, {"token_use": "access"})
    for claims in ({"token_use": "id"}, {}, {"token_use": ["access"]}):
        with pytest.raises(WrongTokenType):
            check_token_type(guard, {}, claims)
