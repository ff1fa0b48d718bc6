import pytest

from m2mgate.auth.claims import build_principal
from m2mgate.auth.policy import ClaimRule, Requirement, authorize, evaluate, first_failure
from m2mgate.auth.presets import PRESETS
from m2mgate.errors import InsufficientScope


def principal(issuer_name="local", **claims):
    base = {"exp": 1}
    base.update(claims)
    return build_principal(
        base, PRESETS["generic"].layout, issuer_name=issuer_name, issuer="i", client_id="c"
    )


def test_empty_requirement_allows_any_valid_token():
    authorize(Requirement(), principal())


def test_all_of_scopes():
    requirement = Requirement(scopes=frozenset({"a", "b"}), challenge_scopes=("a", "b"))
    authorize(requirement, principal(scope="b a c"))
    with pytest.raises(InsufficientScope) as caught:
        authorize(requirement, principal(scope="a"))
    assert caught.value.required_scopes == ("a", "b")


def test_scopes_are_whole_strings_never_substrings():
    requirement = Requirement(scopes=frozenset({"admin"}))
    for scope in ("read:data-admin", "administrator", "admi", "ADMIN", "admin:read"):
        assert first_failure(requirement, principal(scope=scope)) is not None


def test_any_of_scopes():
    requirement = Requirement(any_scopes=frozenset({"read:data", "admin"}))
    authorize(requirement, principal(scope="admin"))
    authorize(requirement, principal(scope="read:data other"))
    assert first_failure(requirement, principal(scope="write:data")) == (
        "any_scopes one of [admin, read:data]"
    )
    assert first_failure(requirement, principal()) is not None


def test_roles_all_and_any():
    assert first_failure(Requirement(roles=frozenset({"r1", "r2"})), principal(roles=["r1"]))
    authorize(Requirement(roles=frozenset({"r1", "r2"})), principal(roles=["r2", "r1"]))
    authorize(Requirement(any_roles=frozenset({"x", "r2"})), principal(roles=["r2"]))
    assert first_failure(Requirement(any_roles=frozenset({"x"})), principal(roles=["r2"]))


def test_issuer_restriction():
    requirement = Requirement(issuers=frozenset({"okta"}))
    authorize(requirement, principal(issuer_name="okta"))
    assert first_failure(requirement, principal(issuer_name="local"))


@pytest.mark.parametrize(
    ("rule", "claims", "holds"),
    [
        (ClaimRule(("tid",), ("t1",)), {"tid": "t1"}, True),
        (ClaimRule(("tid",), ("t1", "t2")), {"tid": "t2"}, True),
        (ClaimRule(("tid",), ("t1",)), {"tid": "t3"}, False),
        (ClaimRule(("tid",), ("t1",)), {}, False),
        (ClaimRule(("groups",), ("ops",)), {"groups": ["dev", "ops"]}, True),
        (ClaimRule(("groups",), ("ops",)), {"groups": "devops"}, False),  # no substring match
        (ClaimRule(("verified",), (True,)), {"verified": True}, True),
        (ClaimRule(("verified",), (True,)), {"verified": 1}, False),  # 1 is not true
        (ClaimRule(("verified",), (True,)), {"verified": "true"}, False),
        (ClaimRule(("level",), (1,)), {"level": True}, False),  # true is not 1
        (ClaimRule(("level",), (1,)), {"level": 1.0}, False),
        (ClaimRule(("a", "b"), ("x",)), {"a": {"b": "x"}}, True),
        (ClaimRule(("a", "b"), ("x",)), {"a": {"b": {"c": "x"}}}, False),
    ],
)
def test_claim_rules_are_type_strict(rule, claims, holds):
    requirement = Requirement(claims=(rule,))
    assert (first_failure(requirement, principal(**claims)) is None) is holds


def test_all_conditions_must_hold():
    requirement = Requirement(scopes=frozenset({"a"}), roles=frozenset({"r"}))
    assert first_failure(requirement, principal(scope="a")) == "roles all of [r]"
    assert first_failure(requirement, principal(roles=["r"])) == "scopes all of [a]"
    authorize(requirement, principal(scope="a", roles=["r"]))


def test_evaluate_lists_every_condition_in_order():
    requirement = Requirement(
        issuers=frozenset({"local"}),
        scopes=frozenset({"a"}),
        any_roles=frozenset({"x", "y"}),
        claims=(ClaimRule(("tid",), ("t1", 2)),),
    )
    assert evaluate(requirement, principal(scope="a", roles=["z"], tid="t1")) == [
        ("issuer in [local]", True),
        ("scopes all of [a]", True),
        ("any_roles one of [x, y]", False),
        ("claim tid in ['t1', 2]", True),
    ]
