import base64
from types import MappingProxyType

import pytest

from m2mgate.issuer.config import Client
from m2mgate.issuer.grant import OAuthError, grant_token, parse_token_request


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


CLIENT = Client(
    client_id="svc",
    secret_hash="unused",
    scopes=("read", "write", "admin"),
    audiences=("https://api.example", "https://other.example"),
    claims=MappingProxyType({"tenant": "acme", "tier": 2}),
    token_lifetime_seconds=300,
    is_active=True,
)
GRANT = [("grant_type", "client_credentials")]


def test_basic_authentication():
    request = parse_token_request(GRANT, [basic("svc", "s3cret")])
    assert (request.client_id, request.client_secret, request.auth_method) == (
        "svc",
        "s3cret",
        "client_secret_basic",
    )


def test_basic_credentials_are_form_urlencoded():
    # RFC 6749 §2.3.1: "a:b c" is sent as "a%3Ab+c"
    request = parse_token_request(GRANT, [basic("svc", "a%3Ab+c")])
    assert request.client_secret == "a:b c"


def test_post_authentication():
    form = [*GRANT, ("client_id", "svc"), ("client_secret", "s3cret")]
    assert parse_token_request(form, []).auth_method == "client_secret_post"


@pytest.mark.parametrize(
    ("form", "authorization", "error", "status"),
    [
        ([], [basic("a", "b")], "invalid_request", 400),
        ([("grant_type", "password")], [basic("a", "b")], "unsupported_grant_type", 400),
        ([("grant_type", "authorization_code")], [], "unsupported_grant_type", 400),
        ([*GRANT, ("grant_type", "client_credentials")], [basic("a", "b")], "invalid_request", 400),
        ([*GRANT, ("scope", "a"), ("scope", "b")], [basic("a", "b")], "invalid_request", 400),
        (GRANT, [], "invalid_client", 401),
        (GRANT, [basic("a", "b"), basic("a", "b")], "invalid_request", 400),
        (
            [*GRANT, ("client_id", "a"), ("client_secret", "b")],
            [basic("a", "b")],
            "invalid_request",
            400,
        ),
        ([*GRANT, ("client_secret", "b")], [], "invalid_request", 400),
        ([*GRANT, ("client_id", "a")], [], "invalid_client", 401),
        (GRANT, ["Bearer abc"], "invalid_client", 401),
        (GRANT, ["Basic !!!"], "invalid_client", 401),
        (GRANT, ["Basic " + base64.b64encode(b"no-colon").decode()], "invalid_client", 401),
        ([*GRANT, ("audience", "a"), ("resource", "b")], [basic("a", "b")], "invalid_request", 400),
    ],
)
def test_request_errors(form, authorization, error, status):
    with pytest.raises(OAuthError) as caught:
        parse_token_request(form, authorization)
    assert (caught.value.error, caught.value.status) == (error, status)


def decide(*extra, client=CLIENT):
    request = parse_token_request([*GRANT, *extra], [basic("svc", "x")])
    return grant_token(request, client, issuer="https://issuer", now=1_000_000)


def test_claims_are_rfc9068_shaped():
    grant = decide()
    assert grant.claims == {
        "tenant": "acme",
        "tier": 2,
        "iss": "https://issuer",
        "sub": "svc",
        "client_id": "svc",
        "aud": "https://api.example",
        "iat": 1_000_000,
        "exp": 1_000_300,
        "jti": grant.claims["jti"],
        "scope": "read write admin",
    }
    assert len(grant.claims["jti"]) >= 16
    assert decide().claims["jti"] != grant.claims["jti"]


def test_requested_scope_subset_and_audience():
    grant = decide(("scope", "admin  read"), ("resource", "https://other.example"))
    assert grant.claims["scope"] == "admin read"
    assert grant.claims["aud"] == "https://other.example"
    assert decide(("audience", "https://other.example")).claims["aud"] == "https://other.example"


def test_empty_scope_request_grants_no_scope():
    assert "scope" not in decide(("scope", "")).claims


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (("scope", "read delete"), "invalid_scope"),
        (("scope", "READ"), "invalid_scope"),
        (("audience", "https://evil.example"), "invalid_target"),
        (("resource", "https://api.example/"), "invalid_target"),
    ],
)
def test_decision_errors(extra, error):
    with pytest.raises(OAuthError) as caught:
        decide(extra)
    assert caught.value.error == error


def test_inactive_client_is_refused():
    inactive = Client(**{**{f: getattr(CLIENT, f) for f in CLIENT.__slots__}, "is_active": False})
    with pytest.raises(OAuthError) as caught:
        decide(client=inactive)
    assert caught.value.error == "invalid_grant"


def test_requested_scopes_are_separated_by_sp_only():
    from m2mgate.issuer.grant import _requested_scopes

    assert _requested_scopes("a  b a") == ("a", "b")
    assert _requested_scopes("read:data\u00a0admin") == ("read:data\u00a0admin",)
