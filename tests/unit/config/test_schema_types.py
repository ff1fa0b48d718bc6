"""Validation parses each value once: the validated model holds what compiling consumes."""

import ipaddress

import pytest

from m2mgate.auth.claims import ClaimRef, format_claim_path, parse_claim_path
from m2mgate.config.compiling import validate_tree
from m2mgate.config.schema import ConfigSchema
from m2mgate.listen_address import ListenAddress
from m2mgate.routing import PathPattern

TREE = {
    "listen": "[::1]:8080",
    "upstream": {"url": "http://127.0.0.1:3000"},
    "issuers": [
        {
            "name": "local",
            "issuer": "http://127.0.0.1:8081",
            "audiences": ["https://api.example"],
            "claims": {"client_id": ["azp"], "tenant": "org.id"},
        }
    ],
    "forward": {"claims": {"X-Org": "org.id"}, "trusted_proxies": ["10.0.0.0/8", "::1"]},
    "routes": [
        {"name": "api", "path": "/api/**", "require": {"claims": {"tier": "gold", "n": [1, 2]}}}
    ],
}


def test_the_validated_model_holds_parsed_values():
    config = validate_tree(TREE)
    assert config.listen == ListenAddress("::1", 8080)
    assert config.admin_listen == ListenAddress("127.0.0.1", 9901)  # defaults are parsed too
    assert isinstance(config.routes[0].path, PathPattern)
    assert config.routes[0].path.matches("/api/x")
    assert config.routes[0].require is not None
    assert config.routes[0].require.claims == {("tier",): ("gold",), ("n",): (1, 2)}
    assert config.forward.claims == {"X-Org": ("org", "id")}
    assert config.forward.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1"),
    )
    layout = config.issuers[0].claims
    assert layout is not None
    assert layout.client_id == [("azp",)]
    assert layout.tenant == ("org", "id")


def test_a_dumped_config_is_the_config_as_written_and_validates_again():
    config = validate_tree(TREE)
    dumped = config.model_dump()
    assert dumped["listen"] == "[::1]:8080"
    assert dumped["routes"][0]["path"] == "/api/**"
    assert dumped["forward"]["claims"] == {"X-Org": "org.id"}
    assert dumped["forward"]["trusted_proxies"] == ["10.0.0.0/8", "::1/128"]
    assert dumped["routes"][0]["require"]["claims"] == {"tier": ["gold"], "n": [1, 2]}
    # Defaults dumped as written would be refused (`scopes: []` names nothing): the keys set.
    assert ConfigSchema.model_validate(config.model_dump(exclude_unset=True)) == config


@pytest.mark.parametrize(
    "text", ["a.b", r"https://example\.com/roles", "tenants.{dct}.roles", r"back\\slash.x"]
)
def test_claim_path_text_is_parse_claim_path_backwards(text):
    path = parse_claim_path(text)
    assert format_claim_path(path) == text
    assert parse_claim_path(format_claim_path(path)) == path


def test_a_reference_segment_is_written_in_braces():
    assert format_claim_path(("tenants", ClaimRef("dct"))) == "tenants.{dct}"
