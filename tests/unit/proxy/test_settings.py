"""The upstream URL is parsed once, into what the pool connects to."""

import pytest

from m2mgate.proxy.settings import UpstreamTarget, parse_upstream_url


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "http://127.0.0.1:3000",
            UpstreamTarget("http://127.0.0.1:3000", "127.0.0.1", 3000, False),
        ),
        ("https://api.example", UpstreamTarget("https://api.example", "api.example", 443, True)),
        ("http://API.Example/", UpstreamTarget("http://API.Example/", "api.example", 80, False)),
        ("http://[::1]:8080", UpstreamTarget("http://[::1]:8080", "::1", 8080, False)),
    ],
)
def test_the_target_is_the_origin_the_pool_connects_to(url, target):
    assert parse_upstream_url(url) == target


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://h", "http:// or https://"),
        ("http://h/api", "only scheme, host and port"),
        ("http://u:p@h", "credentials"),
        ("http://h:99999", "0 to 65535"),
        # urlsplit finds a host here, the pool's parser none: it used to pass `check` and stop
        # `run` when the forwarder was built.
        ("http://h\\x", "RFC 3986"),
        # A space in the host went upstream in the Host header; a bad IDNA label failed with
        # the codec's own message (found in the #9 review).
        ("http://exa mple:80", "RFC 3986"),
        ("http://xn--:80", "RFC 3986"),
    ],
)
def test_a_url_the_pool_cannot_use_is_refused(url, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_upstream_url(url)
