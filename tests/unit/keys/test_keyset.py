import pytest

from m2mgate.keys.keyset import (
    MAX_KIDLESS_CANDIDATES,
    InvalidKeySet,
    KeyRejected,
    algorithms_for,
    build_keyset,
)
from tests.support.tokens import b64url, ec_key, ed_key, rsa_key

ALL = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def test_usable_keys_are_bound_to_their_algorithms(rsa_signer, ec_signer):
    keyset = build_keyset({"keys": [rsa_signer.jwk(), ec_signer.jwk()]}, ALL)
    assert [(k.kid, k.algorithm) for k in keyset.keys] == [("rsa-1", "RS256"), ("ec-1", "ES256")]
    assert keyset.candidates("rsa-1", "RS256")[0].rsa_bits == 2048
    assert keyset.candidates("rsa-1", "PS256") == ()  # declared alg binds the key
    assert keyset.has_kid("rsa-1")


def test_rsa_key_without_alg_serves_each_allowed_rsa_algorithm(rsa_signer):
    keyset = build_keyset(
        {"keys": [rsa_signer.jwk(alg=None)]}, frozenset({"RS256", "PS256", "ES256"})
    )
    assert sorted(key.algorithm for key in keyset.keys) == ["PS256", "RS256"]


@pytest.mark.parametrize(
    ("jwk_changes", "reason"),
    [
        ({"use": "enc"}, "use"),
        ({"key_ops": ["encrypt"]}, "key_ops"),
        ({"key_ops": "verify"}, "key_ops"),
        ({"alg": "HS256"}, "contradicts"),
        ({"alg": "ES256"}, "contradicts"),
        ({"alg": "RS512"}, "not allowed"),
        ({"kty": "oct", "k": b64url(b"secret")}, "symmetric"),
        ({"kty": "XYZ"}, "unsupported kty"),
        ({"alg": 5}, "not a string"),
    ],
)
def test_key_hygiene(rsa_signer, jwk_changes, reason):
    jwk = {**rsa_signer.jwk(), **jwk_changes}
    with pytest.raises(InvalidKeySet) as caught:
        build_keyset({"keys": [jwk]}, frozenset({"RS256", "ES256"}))
    assert caught.value.result == "no_usable_keys"
    assert reason in str(caught.value)


def test_weak_rsa_key_is_skipped():
    weak = rsa_key("weak", bits=1024)
    with pytest.raises(InvalidKeySet, match="1024 bits"):
        build_keyset({"keys": [weak.jwk()]}, ALL)


def test_ec_curve_must_match(ec_signer):
    with pytest.raises(KeyRejected):
        algorithms_for({**ec_signer.jwk(), "crv": "secp256k1"}, ALL)
    p384 = ec_key("p384", alg="ES384")
    assert algorithms_for(p384.jwk(alg=None), ALL) == ("ES384",)


def test_eddsa_key():
    keyset = build_keyset({"keys": [ed_key("ed").jwk()]}, ALL)
    assert keyset.keys[0].algorithm == "EdDSA"


def test_private_members_are_dropped(rsa_signer):
    private_numbers = rsa_signer.private.private_numbers()
    jwk = {**rsa_signer.jwk(), "d": b64url(private_numbers.d.to_bytes(256, "big"))}
    keyset = build_keyset({"keys": [jwk]}, ALL)
    assert not hasattr(keyset.keys[0].handle.key, "private_numbers")  # a public key object


def test_bad_members_are_skipped_good_ones_kept(rsa_signer):
    keyset = build_keyset(
        {
            "keys": [
                "junk",
                {"kty": "RSA", "n": "AA", "e": "AQAB", "kid": "broken"},
                rsa_signer.jwk(),
            ]
        },
        ALL,
    )
    assert [key.kid for key in keyset.keys] == ["rsa-1"]
    assert len(keyset.skipped) == 2


@pytest.mark.parametrize(
    ("document", "result"),
    [
        ([], "invalid_jwks"),
        ({"keys": "x"}, "invalid_jwks"),
        ({"issuer": "x"}, "invalid_jwks"),
        ({"keys": []}, "no_usable_keys"),
        ({"keys": [{"kty": "oct", "k": "AA"}]}, "no_usable_keys"),
        ({"keys": [{}] * 101}, "invalid_jwks"),
    ],
)
def test_invalid_documents(document, result):
    with pytest.raises(InvalidKeySet) as caught:
        build_keyset(document, ALL)
    assert caught.value.result == result


def test_kidless_candidates_are_bounded():
    keys = [rsa_key(None).jwk() for _ in range(MAX_KIDLESS_CANDIDATES + 2)]
    keyset = build_keyset({"keys": keys}, ALL)
    assert len(keyset.candidates(None, "RS256")) == MAX_KIDLESS_CANDIDATES
    assert keyset.candidates(None, "ES256") == ()
