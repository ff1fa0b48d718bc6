"""The verifier in isolation: real keys, a key provider stub that counts its calls."""

import hashlib
import hmac
import json
import time

import pytest

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.presets import PRESETS
from m2mgate.auth.verifier import IssuerPolicy, TokenVerifier
from m2mgate.errors import (
    BadSignature,
    ClientNotAllowed,
    DisallowedAlgorithm,
    Expired,
    InvalidClaim,
    MalformedToken,
    MissingClaim,
    UnknownIssuer,
    UnknownKey,
    WrongAudience,
    WrongTokenType,
)
from m2mgate.keys.keyset import build_keyset
from tests.support.rejections import refused
from tests.support.tokens import b64url, claims_for, ed_key, sign_raw

ISSUER = "https://issuer.example/"


def policy(**changes):
    base = {
        "name": "main",
        "issuer": ISSUER,
        "audiences": frozenset({"https://api.example"}),
        "client_ids": frozenset(),
        "algorithms": frozenset({"RS256", "ES256", "EdDSA"}),
        "layout": PRESETS["generic"].layout,
        "guard": TokenTypeGuard(),
        "leeway_seconds": 5.0,
        "max_token_lifetime_seconds": 86400.0,
    }
    base.update(changes)
    return IssuerPolicy(**base)


class Keys:
    def __init__(self, *signers, algorithms=frozenset({"RS256", "ES256", "EdDSA"})):
        self.keyset = build_keyset({"keys": [s.jwk() for s in signers]}, algorithms)
        self.calls = 0

    async def __call__(self, issuer_name, kid, alg):
        self.calls += 1
        found = self.keyset.candidates(kid, alg)
        if not found and kid is not None and self.keyset.has_kid(kid):
            raise DisallowedAlgorithm()  # as KeyCache does: a known key never changes algorithm
        if not found:
            raise UnknownKey()
        return found


def verifier(keys, *policies):
    policies = policies or (policy(),)
    return TokenVerifier({p.issuer: p for p in policies}, keys)


async def test_valid_token_gives_a_principal(rsa_signer):
    keys = Keys(rsa_signer)
    token = rsa_signer.sign(claims_for(ISSUER, scope="a b", roles=["r"], client_id="c1"))
    principal = await verifier(keys).verify(token)
    assert (principal.client_id, principal.scopes, principal.roles) == ("c1", ("a", "b"), ("r",))
    assert principal.issuer_name == "main"
    assert principal.issuer == ISSUER


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ec_signer"])
async def test_each_algorithm_family(request, signer_name):
    signer = request.getfixturevalue(signer_name)
    assert await verifier(Keys(signer)).verify(signer.sign(claims_for(ISSUER)))


async def test_eddsa():
    signer = ed_key("ed")
    assert await verifier(Keys(signer)).verify(signer.sign(claims_for(ISSUER)))


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"iss": "https://issuer.example"}, UnknownIssuer),  # trailing slash is significant
        ({"iss": "https://evil/"}, UnknownIssuer),
        ({"iss": None}, UnknownIssuer),
        ({"exp": int(time.time()) - 60}, Expired),
        ({"exp": None}, MissingClaim),
        ({"aud": "https://other"}, WrongAudience),
        ({"client_id": None, "sub": None, "azp": None}, MissingClaim),
        ({"scope": ["read"]}, InvalidClaim),  # the layout reads a space-delimited string
        ({"roles": "admin"}, InvalidClaim),  # ... and an array
    ],
)
async def test_claim_failures_never_touch_keys(rsa_signer, claims, error):
    keys = Keys(rsa_signer)
    with refused(error):
        await verifier(keys).verify(rsa_signer.sign(claims_for(ISSUER, **claims)))
    assert keys.calls == 0  # cheap checks first: no key lookup, so never a fetch


async def test_non_string_iss_is_an_unknown_issuer(rsa_signer):
    payload = json.dumps({**claims_for(ISSUER), "iss": [ISSUER]})
    token = sign_raw(rsa_signer, json.dumps({"alg": "RS256", "kid": "rsa-1"}), payload)
    with refused(UnknownIssuer):
        await verifier(Keys(rsa_signer)).verify(token)


@pytest.mark.parametrize(
    ("claims", "error"),
    [({"exp": int(time.time()) - 60}, Expired), ({"scope": ["read"]}, InvalidClaim)],
)
async def test_errors_carry_the_claimed_issuer_name(rsa_signer, claims, error):
    with refused(error) as caught:
        await verifier(Keys(rsa_signer)).verify(rsa_signer.sign(claims_for(ISSUER, **claims)))
    assert caught.value.issuer_name == "main"


async def test_client_allowlist(rsa_signer):
    keys = Keys(rsa_signer)
    strict = verifier(keys, policy(client_ids=frozenset({"allowed"})))
    assert await strict.verify(rsa_signer.sign(claims_for(ISSUER, client_id="allowed")))
    with refused(ClientNotAllowed):
        await strict.verify(rsa_signer.sign(claims_for(ISSUER, client_id="other")))


async def test_token_type_guard(rsa_signer):
    rfc9068 = verifier(Keys(rsa_signer), policy(guard=PRESETS["rfc9068"].guard))
    with refused(WrongTokenType):
        await rfc9068.verify(rsa_signer.sign(claims_for(ISSUER), header={"typ": "JWT"}))


async def test_alg_none_in_any_casing(rsa_signer):
    for alg in ("none", "None", "NONE", "nOnE"):
        header = b64url(json.dumps({"alg": alg, "kid": "rsa-1"}))
        token = f"{header}.{b64url(json.dumps(claims_for(ISSUER)))}.{b64url(b'x')}"
        with refused(DisallowedAlgorithm):
            await verifier(Keys(rsa_signer)).verify(token)


def hmac_forgery(secret: bytes, claims: dict, kid: str = "rsa-1") -> str:
    header = b64url(json.dumps({"alg": "HS256", "kid": kid, "typ": "at+jwt"}))
    signing_input = f"{header}.{b64url(json.dumps(claims))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


async def test_hmac_signed_with_the_public_key_is_refused(rsa_signer):
    """The classic confusion: HS256 keyed with the RSA public key's PEM bytes."""
    forged = hmac_forgery(rsa_signer.public_pem(), claims_for(ISSUER))
    with refused(DisallowedAlgorithm):
        await verifier(Keys(rsa_signer)).verify(forged)
    # Even with HS256 on the allowlist, no key is bound to HS256: the RSA key stays RS256.
    lax = verifier(Keys(rsa_signer), policy(algorithms=frozenset({"RS256", "HS256"})))
    with refused(DisallowedAlgorithm):
        await lax.verify(forged)


async def test_signature_from_another_key_fails(rsa_signer, spare_rsa_signer):
    impostor = type(spare_rsa_signer)("rsa-1", "RS256", spare_rsa_signer.private)
    with refused(BadSignature):
        await verifier(Keys(rsa_signer)).verify(impostor.sign(claims_for(ISSUER)))


async def test_tampered_payload_fails(rsa_signer):
    token = rsa_signer.sign(claims_for(ISSUER, scope="read"))
    header, _, signature = token.split(".")
    forged_payload = b64url(json.dumps(claims_for(ISSUER, scope="admin")))
    with refused(BadSignature):
        await verifier(Keys(rsa_signer)).verify(f"{header}.{forged_payload}.{signature}")


async def test_duplicate_claims_are_refused_even_when_correctly_signed(rsa_signer):
    """Signed by the real key, but `aud` appears twice: two parsers would disagree."""
    claims = claims_for(ISSUER)
    payload = json.dumps(claims)[:-1] + ', "aud": "https://other"}'
    token = sign_raw(rsa_signer, json.dumps({"alg": "RS256", "kid": "rsa-1"}), payload)
    with refused(MalformedToken):
        await verifier(Keys(rsa_signer)).verify(token)


async def test_kidless_token_tries_fitting_keys(rsa_signer, spare_rsa_signer):
    kidless = type(spare_rsa_signer)(None, "RS256", spare_rsa_signer.private)
    keys = Keys(type(rsa_signer)(None, "RS256", rsa_signer.private), kidless)
    token = kidless.sign(claims_for(ISSUER))
    assert await verifier(keys).verify(token)


async def test_an_observer_sees_each_step_in_order(rsa_signer):
    from m2mgate.auth.trace import Step, Trace

    trace = Trace()
    keys = Keys(rsa_signer)
    principal = await verifier(keys).verify(rsa_signer.sign(claims_for(ISSUER)), trace)
    assert [result.step for result in trace.steps] == [
        Step.PARSE, Step.ISSUER, Step.ALGORITHM, Step.TOKEN_TYPE, Step.TIMES, Step.AUDIENCE,
        Step.CLIENT, Step.PRINCIPAL, Step.KEY, Step.SIGNATURE,
    ]  # fmt: skip
    assert all(result.is_ok for result in trace.steps)
    assert trace.value_of(Step.PRINCIPAL) is principal
    assert trace.value_of(Step.ISSUER).name == "main"


async def test_an_observer_sees_the_failing_step_last(rsa_signer):
    from m2mgate.auth.trace import Step, Trace

    trace = Trace()
    keys = Keys(rsa_signer)
    with refused(Expired) as caught:
        token = rsa_signer.sign(claims_for(ISSUER, exp=int(time.time()) - 60))
        await verifier(keys).verify(token, trace)
    last = trace.steps[-1]
    assert (last.step, last.is_ok, last.error) == (Step.TIMES, False, caught.value.error)
    assert keys.calls == 0
