import pytest

from m2mgate.keys.source import discovery_urls


@pytest.mark.parametrize(
    ("issuer", "oidc", "rfc8414"),
    [
        (
            "https://id.example",
            "https://id.example/.well-known/openid-configuration",
            "https://id.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://tenant.auth0.com/",
            "https://tenant.auth0.com/.well-known/openid-configuration",
            "https://tenant.auth0.com/.well-known/oauth-authorization-server",
        ),
        (
            "https://h/oauth2/default",
            "https://h/oauth2/default/.well-known/openid-configuration",
            # RFC 8414 §3.1: the well-known segment goes between host and path.
            "https://h/.well-known/oauth-authorization-server/oauth2/default",
        ),
    ],
)
def test_discovery_urls(issuer, oidc, rfc8414):
    assert discovery_urls(issuer) == (oidc, rfc8414)
