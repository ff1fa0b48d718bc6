import pytest

from m2mgate.errors import BadSignature, DisallowedAlgorithm, MalformedToken
from m2mgate.jose import KeyRejected, build_key, verify_signature
from tests.support.tokens import claims_for, rsa_key


def test_key_is_bound_to_one_algorithm(rsa_signer):
    key = build_key(rsa_signer.jwk(), "RS256")
    token = rsa_signer.sign(claims_for("i"))
    verify_signature(token, key)
    ps_key = build_key(rsa_signer.jwk(alg=None), "PS256")
    with pytest.raises(DisallowedAlgorithm):  # an RS256 token never verifies under PS256
        verify_signature(token, ps_key)


def test_bad_signature(rsa_signer):
    key = build_key(rsa_signer.jwk(), "RS256")
    token = rsa_key("other").sign(claims_for("i"))
    with pytest.raises(BadSignature):
        verify_signature(token, key)


def test_library_decode_errors_are_translated(rsa_signer):
    key = build_key(rsa_signer.jwk(), "RS256")
    with pytest.raises(MalformedToken):
        verify_signature("not-a-token", key)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA"},
        {"kty": "RSA", "n": "!!", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed25519"},
    ],
)
def test_broken_jwks_are_rejected_not_crashing(jwk):
    algorithm = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[jwk["kty"]]
    with pytest.raises(KeyRejected):
        build_key(jwk, algorithm)
