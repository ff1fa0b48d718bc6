import pytest

from m2mgate.config.errors import validate_model
from m2mgate.errors import ConfigError
from m2mgate.issuer.client_secrets import hash_secret, parse_hash, verify_secret
from m2mgate.issuer.config import IssuerConfigSchema, compile_issuer
from m2mgate.issuer.keyring import KeyRing

FAST = 1000  # iterations: the format carries its own cost, tests keep it cheap


def test_secret_hash_round_trip_and_salt():
    first, second = hash_secret("s3cret", FAST), hash_secret("s3cret", FAST)
    assert first != second  # salted
    assert first.startswith("pbkdf2_sha256$1000$")
    assert verify_secret("s3cret", first)
    assert not verify_secret("s3cret ", first)
    assert "s3cret" not in first


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain-secret",
        "md5$1000$AA$AA",
        "pbkdf2_sha256$10$AAAAAAAAAAA$" + "A" * 43,
        "pbkdf2_sha256$x$AAAAAAAAAAA$" + "A" * 43,
        "pbkdf2_sha256$1000$AA$" + "A" * 43,
    ],
)
def test_bad_hashes(encoded):
    with pytest.raises(ValueError, match=r"expected|iterations|base64url|length"):
        parse_hash(encoded)


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_rotation_pre_publishes_and_retires():
    clock = Clock()
    ring = KeyRing("ES256", clock)
    first, upcoming = ring.current.kid, ring.next.kid
    assert [key["kid"] for key in ring.jwks()["keys"]] == [first, upcoming]
    ring.rotate(keep_retired_seconds=300)
    assert ring.current.kid == upcoming  # signs with the key verifiers already had
    kids = [key["kid"] for key in ring.jwks()["keys"]]
    assert kids[:1] == [upcoming] and first in kids and len(kids) == 3
    clock.now += 301
    assert first not in [key["kid"] for key in ring.jwks()["keys"]]
    assert all("d" not in key for key in ring.jwks()["keys"])  # never a private member


def config(**changes):
    base = {
        "default_audience": "https://api.example",
        "clients": [
            {"client_id": "svc", "client_secret_hash": hash_secret("x", FAST), "scopes": ["a"]}
        ],
    }
    base.update(changes)
    return base


def test_issuer_config_compiles():
    settings = compile_issuer(validate_model(IssuerConfigSchema, config()))
    client = settings.clients["svc"]
    assert client.audiences == ("https://api.example",)
    assert client.is_active and client.token_lifetime_seconds == 300
    assert str(settings.listen) == "127.0.0.1:8081"


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        (
            {"clients": [{"client_id": "a:b", "client_secret_hash": hash_secret("x", FAST)}]},
            "clients[0].client_id",
            "no ':'",
        ),
        (
            {"clients": [{"client_id": "a", "client_secret_hash": "s3cret"}]},
            "clients[0].client_secret_hash",
            "hash-secret",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "a",
                        "client_secret_hash": hash_secret("x", FAST),
                        "claims": {"iss": "x"},
                    }
                ]
            },
            "clients[0].claims",
            "registered",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "a",
                        "client_secret_hash": hash_secret("x", FAST),
                        "scopes": ["a b"],
                    }
                ]
            },
            "clients[0].scopes",
            "scope-tokens",
        ),
        ({"default_audience": None}, "clients", "no audiences"),
        ({"algorithm": "HS256"}, "algorithm", "must be one of"),
        ({"clients": []}, "clients", "at least 1"),
    ],
)
def test_issuer_config_errors(changes, path, fragment):
    with pytest.raises(ConfigError) as caught:
        validate_model(IssuerConfigSchema, config(**changes))
    problems = dict(caught.value.problems)
    assert fragment in problems[path], problems
