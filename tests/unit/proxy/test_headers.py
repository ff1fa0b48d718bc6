from urllib.parse import unquote

import pytest

from m2mgate.auth.claims import build_principal
from m2mgate.auth.presets import PRESETS
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.forwarded import ClientFacts
from m2mgate.proxy.headers import (
    choose_request_id,
    encode_claim_value,
    encode_header_value,
    upstream_request_headers,
)
from m2mgate.proxy.response_headers import downstream_response_headers

RULES = ForwardRules(
    client_id="X-Client-Id",
    scopes="X-Scopes",
    roles="X-Roles",
    issuer="X-Issuer",
    subject="X-Subject",
    tenant=None,
    claims=(("X-Tenant-Id", ("tenant",)), ("X-Level", ("level",))),
    pass_authorization=False,
    preserve_host=False,
)
CLIENT = ClientFacts(address="10.0.0.9", scheme="http", host="api.example:8080")


def principal(**claims):
    base = {"exp": 1, "sub": "svc", "scope": "read write", "roles": ["r1", "r,2"]}
    base.update(claims)
    return build_principal(
        base, PRESETS["generic"].layout, issuer_name="local", issuer="https://iss/", client_id="svc"
    )


def names(headers):
    return [name.lower() for name, _ in headers]


def value(headers, name):
    found = [v for n, v in headers if n.lower() == name.lower()]
    assert len(found) == 1, found
    return found[0]


SPOOFED = [
    ("X-Client-Id", "admin-client"),
    ("x-scopes", "admin"),
    ("X-ROLES", "admin"),
    ("X-Issuer", "https://evil"),
    ("X-Subject", "root"),
    ("X-Tenant-Id", "other-tenant"),
    ("X-Tenant", "other"),
    ("X-Level", "9"),
    ("X-Request-Id", "a b"),  # not sane: replaced
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil"),
    ("Authorization", "Bearer abc"),
    ("Host", "evil"),
    ("Expect", "100-continue"),
]


@pytest.mark.parametrize("with_principal", [True, False])
def test_spoofed_identity_never_reaches_upstream(with_principal):
    incoming = [("Accept", "application/json"), *SPOOFED]
    headers = upstream_request_headers(
        incoming, RULES, principal() if with_principal else None, "rid-1", CLIENT
    )
    for spoofed_name, spoofed_value in SPOOFED:
        assert (spoofed_name, spoofed_value) not in headers
    assert ("Accept", "application/json") in headers
    if with_principal:
        assert value(headers, "X-Client-Id") == "svc"
        assert value(headers, "X-Scopes") == "read write"
        assert value(headers, "X-Roles") == "r1,r%2C2"  # the comma inside a role is encoded
        assert value(headers, "X-Issuer") == "https://iss/"
        assert value(headers, "X-Subject") == "svc"
        assert "x-tenant-id" not in names(headers)  # claim absent: header absent
    else:
        assert not {"x-client-id", "x-scopes", "x-roles", "x-issuer", "x-subject"} & set(
            names(headers)
        )
    assert value(headers, "X-Request-Id") == "rid-1"
    assert value(headers, "X-Forwarded-Proto") == "http"
    assert value(headers, "X-Forwarded-Host") == "api.example:8080"
    assert "host" not in names(headers)
    assert "authorization" not in names(headers)


def test_renamed_header_still_strips_the_default_name():
    rules = ForwardRules(
        client_id="X-Caller", scopes=None, roles=None, issuer=None, subject=None, tenant=None,
        claims=(),
        pass_authorization=False, preserve_host=False,
    )  # fmt: skip
    headers = upstream_request_headers(
        [("X-Client-Id", "spoof"), ("X-Scopes", "admin")], rules, principal(), "r", CLIENT
    )
    assert "x-client-id" not in names(headers)
    assert "x-scopes" not in names(headers)  # disabled, still stripped
    assert value(headers, "X-Caller") == "svc"


def test_authorization_and_host_pass_when_configured():
    rules = ForwardRules(
        client_id=None, scopes=None, roles=None, issuer=None, subject=None, tenant=None, claims=(),
        pass_authorization=True, preserve_host=True,
    )  # fmt: skip
    headers = upstream_request_headers(
        [("Authorization", "Bearer t"), ("Host", "h")], rules, principal(), "r", CLIENT
    )
    assert ("Authorization", "Bearer t") in headers
    assert ("Host", "h") in headers
    # A public route verified nothing: its Authorization is never passed on (#8 review R6).
    unverified = upstream_request_headers(
        [("Authorization", "Bearer t"), ("Host", "h")], rules, None, "r", CLIENT
    )
    assert "authorization" not in names(unverified) and ("Host", "h") in unverified


def test_hop_by_hop_and_connection_listed_headers_are_removed():
    incoming = [
        ("Connection", "keep-alive, X-Private"),
        ("Connection", "Upgrade"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("Trailer", "X"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic x"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Private", "1"),
        ("Content-Length", "5"),
    ]
    headers = upstream_request_headers(incoming, RULES, None, "r", CLIENT)
    # Content-Length too: the upstream pool frames the body it sends itself (#8).
    assert set(names(headers)) == {
        "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    }  # fmt: skip


def test_forwarded_for_is_appended():
    headers = upstream_request_headers(
        [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")], RULES, None, "r", CLIENT
    )
    assert value(headers, "X-Forwarded-For") == "1.1.1.1, 2.2.2.2, 10.0.0.9"


def test_repeated_headers_survive():
    headers = upstream_request_headers([("Accept", "a"), ("Accept", "b")], RULES, None, "r", CLIENT)
    assert [v for n, v in headers if n == "Accept"] == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "a\r\nX-Injected: 1",
        "nul\x00byte",
        "caf\u00e9",
        "100%",
        "a,b",
        "sp ace",
        "\u2028",
        "tab\there",
        "del\x7f",
        "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16"),
    ],
)
def test_encoded_values_are_safe_and_reversible(text):
    encoded = encode_header_value(text)
    assert all(0x21 <= ord(character) <= 0x7E for character in encoded)
    assert unquote(encoded) == text


def test_plain_values_are_untouched():
    assert encode_header_value("svc-orders@clients") == "svc-orders@clients"


@pytest.mark.parametrize(
    ("claim", "encoded"),
    [
        ("t1", "t1"),
        (["a", "b c"], "a,b%20c"),
        (5, "5"),
        (True, "true"),
        ({"k": "v"}, '{"k":"v"}'),
        ([1, "a"], '[1%2C"a"]'),  # JSON too: every ',' is encoded, one unquote() restores
        ({"a": 1, "b": "\u00e9"}, '{"a":1%2C"b":"%C3%A9"}'),
    ],
)
def test_claim_values(claim, encoded):
    assert encode_claim_value(claim) == encoded


def test_claim_headers_are_added_from_the_principal():
    headers = upstream_request_headers([], RULES, principal(tenant="t\n1", level=3), "r", CLIENT)
    assert value(headers, "X-Tenant-Id") == "t%0A1"
    assert value(headers, "X-Level") == "3"


def test_request_id():
    assert choose_request_id(["abc-123"]) == "abc-123"
    minted = {choose_request_id(values) for values in ([], ["a", "b"], ["x" * 200], ["a b"], [""])}
    assert len(minted) == 5
    assert all(len(rid) == 32 for rid in minted)


def test_every_connection_field_lists_hop_by_hop_names():
    incoming = [
        ("Connection", " Close , X-A,"), ("connection", "x-b"), ("X-A", "1"), ("x-b", "2"),
        ("Server", "s"), ("X-C", "3"),
    ]  # fmt: skip
    headers, _ = downstream_response_headers(incoming, "rid", "D")
    assert headers == [("Server", "s"), ("X-C", "3"), ("X-Request-Id", "rid"), ("Date", "D")]
    keep_alive = [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("X-A", "1")]
    headers, _ = downstream_response_headers(keep_alive, "rid", "D")
    assert headers[0] == ("X-A", "1")


def test_a_connection_listed_server_or_length_is_replaced_not_kept():
    incoming = [("Connection", "server, content-length"), ("Server", "s"), ("Content-Length", "3")]
    headers, length = downstream_response_headers(incoming, "rid", "D")
    assert headers == [("X-Request-Id", "rid"), ("Server", "m2mgate"), ("Date", "D")]
    assert length is None


def test_response_headers():
    incoming = [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Connection", "X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("X-Request-Id", "upstream-chosen"),
        ("Content-Length", "10"),
    ]
    headers, length = downstream_response_headers(incoming, "rid", "DATE")
    assert headers == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Request-Id", "rid"),
        ("Server", "m2mgate"),  # the upstream sent none; never aiohttp's version banner
        ("Date", "DATE"),  # RFC 9110 §6.6.1: a proxy adds a missing Date
    ]
    assert length == 10  # apart: the listener writes the length it frames with


def test_response_headers_keep_the_upstreams_server_and_date():
    incoming = [("server", "nginx"), ("date", "Tue, 01 Dec 2026 08:00:00 GMT")]
    headers, length = downstream_response_headers(incoming, "rid", "DATE")
    assert headers == [*incoming, ("X-Request-Id", "rid")]
    assert length is None


def trusting(network: str) -> ForwardRules:
    import ipaddress

    return ForwardRules(
        client_id=None, scopes=None, roles=None, issuer=None, subject=None, tenant=None,
        claims=(), pass_authorization=False, preserve_host=False,
        trusted_proxies=(ipaddress.ip_network(network),),
    )  # fmt: skip


def test_an_ipv4_proxy_seen_through_a_dual_stack_listener_is_still_trusted():
    """#8 review: on a dual-stack socket an IPv4 peer is ::ffff:a.b.c.d."""
    rules = trusting("10.0.0.0/8")
    assert rules.trusts("::ffff:10.1.2.3") and rules.trusts("10.1.2.3")
    assert not rules.trusts("::ffff:11.1.2.3") and not rules.trusts("::1")


def test_a_trusted_proxys_forwarded_host_must_be_an_authority():
    rules = trusting("10.0.0.0/8")
    for sent, expected in (("bank.example", "bank.example"), ("evil/a b?c@d", CLIENT.host)):
        headers = upstream_request_headers([("X-Forwarded-Host", sent)], rules, None, "r", CLIENT)
        assert value(headers, "X-Forwarded-Host") == expected
