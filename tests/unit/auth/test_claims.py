import pytest

from m2mgate.auth.claims import (
    MISSING,
    ClaimKind,
    ClaimLayout,
    ClaimSource,
    build_principal,
    format_claim_path,
    lookup_claim,
    parse_claim_path,
    read_client_id,
    read_string_list,
)
from m2mgate.auth.presets import PRESETS
from m2mgate.errors import InvalidClaim, MissingClaim

GENERIC = PRESETS["generic"].layout


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("scope", ("scope",)),
        ("realm_access.roles", ("realm_access", "roles")),
        (r"https://example\.com/roles", ("https://example.com/roles",)),
        (r"a\\b", ("a\\b",)),
        ("tenants.t-1.roles", ("tenants", "t-1", "roles")),
    ],
)
def test_claim_paths_round_trip(text, path):
    assert parse_claim_path(text) == path
    assert parse_claim_path(format_claim_path(path)) == path


@pytest.mark.parametrize("text", ["", ".a", "a.", "a..b", r"a\b", "a\\"])
def test_bad_claim_paths(text):
    with pytest.raises(ValueError, match=r"claim path|may only escape"):
        parse_claim_path(text)


def test_lookup_descends_objects_only():
    claims = {"a": {"b": [1, 2]}, "s": "text"}
    assert lookup_claim(claims, ("a", "b")) == [1, 2]
    assert lookup_claim(claims, ("a", "c")) is MISSING
    assert lookup_claim(claims, ("s", "0")) is MISSING  # never index into a string
    assert lookup_claim(claims, ("a", "b", "0")) is MISSING  # nor into an array


def test_space_delimited_string_is_split_on_spaces():
    source = ClaimSource(("scope",), ClaimKind.SPACE_DELIMITED)
    assert read_string_list({"scope": "read  write "}, source) == ["read", "write"]


@pytest.mark.parametrize("kind", [ClaimKind.SPACE_DELIMITED, ClaimKind.ARRAY_OR_SPACE_DELIMITED])
@pytest.mark.parametrize(
    "separator", ["\u00a0", "\t", "\n", "\r", "\x0b", "\x0c", "\u2003", "\u3000", "\x1c"]
)
def test_only_sp_separates_scope_tokens(kind, separator):
    """RFC 6749 §3.3: scope-tokens are separated by SP (0x20) only. Found in review: str.split()
    also split on NBSP, tabs, line breaks and other Unicode whitespace, so a token carrying
    `read:data<NBSP>admin` as one (unmatchable) scope granted `admin`."""
    source = ClaimSource(("scope",), kind)
    scope = f"read:data{separator}admin"
    assert read_string_list({"scope": scope}, source) == [scope]
    assert read_string_list({"scope": f"x {scope}  y"}, source) == ["x", scope, "y"]


def test_a_string_is_never_iterated_as_characters():
    source = ClaimSource(("roles",), ClaimKind.ARRAY)
    with pytest.raises(InvalidClaim):
        read_string_list({"roles": "admin"}, source)


def test_array_where_string_expected_is_invalid():
    source = ClaimSource(("scope",), ClaimKind.SPACE_DELIMITED)
    with pytest.raises(InvalidClaim):
        read_string_list({"scope": ["read"]}, source)


@pytest.mark.parametrize("value", [[1], ["a", None], [["a"]], {"a": 1}, 5, True])
def test_non_string_members_are_invalid(value):
    source = ClaimSource(("scp",), ClaimKind.ARRAY_OR_SPACE_DELIMITED)
    with pytest.raises(InvalidClaim):
        read_string_list({"scp": value}, source)


def test_array_or_space_delimited_accepts_both_documented_forms():
    source = ClaimSource(("scp",), ClaimKind.ARRAY_OR_SPACE_DELIMITED)
    assert read_string_list({"scp": "a b"}, source) == ["a", "b"]
    assert read_string_list({"scp": ["a", "b c"]}, source) == ["a", "b c"]
    assert read_string_list({}, source) is None


def test_generic_client_id_precedence():
    assert read_client_id({"client_id": "c", "azp": "a", "sub": "s"}, GENERIC) == "c"
    assert read_client_id({"azp": "a", "sub": "s"}, GENERIC) == "a"
    assert read_client_id({"sub": "s"}, GENERIC) == "s"
    with pytest.raises(MissingClaim):
        read_client_id({}, GENERIC)
    with pytest.raises(InvalidClaim):
        read_client_id({"client_id": 42}, GENERIC)
    with pytest.raises(InvalidClaim):
        read_client_id({"client_id": ""}, GENERIC)


def test_rfc9068_requires_client_id_itself():
    layout = PRESETS["rfc9068"].layout
    with pytest.raises(MissingClaim):
        read_client_id({"azp": "a", "sub": "s"}, layout)


def test_principal_unions_sources_in_token_order_without_duplicates():
    claims = {
        "exp": 10,
        "scope": "b a b",
        "scp": ["c", "a"],
        "scopes": ["d"],
        "roles": ["r1", "r1"],
    }
    principal = build_principal(claims, GENERIC, issuer_name="n", issuer="i", client_id="c")
    assert principal.scopes == ("b", "a", "c", "d")
    assert principal.roles == ("r1",)
    assert principal.scope_set == frozenset({"a", "b", "c", "d"})
    assert principal.subject is None
    assert principal.expires_at == 10.0


def test_principal_claims_are_read_only():
    principal = build_principal({"exp": 1}, GENERIC, issuer_name="n", issuer="i", client_id="c")
    with pytest.raises(TypeError):
        principal.claims["x"] = 1  # type: ignore[index]


def test_nested_role_paths_and_tenant():
    layout = ClaimLayout(
        client_id=(("azp",),),
        scopes=(),
        roles=(
            ClaimSource(("realm_access", "roles"), ClaimKind.ARRAY),
            ClaimSource(("resource_access", "api", "roles"), ClaimKind.ARRAY),
        ),
        tenant=("tid",),
    )
    claims = {
        "exp": 1,
        "realm_access": {"roles": ["a"]},
        "resource_access": {"api": {"roles": ["b", "a"]}},
        "tid": "t1",
    }
    principal = build_principal(claims, layout, issuer_name="n", issuer="i", client_id="c")
    assert principal.roles == ("a", "b")
    assert principal.tenant == "t1"
