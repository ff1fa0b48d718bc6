"""Turning a JWKS document (RFC 7517 §5) into verification keys, with key hygiene.

Pure: no I/O. Each usable JWK becomes one `VerificationKey` per algorithm it may verify, where
that algorithm is on the issuer's allowlist. Skipped, with the reason kept for the log:
- `use` other than `sig`, or `key_ops` without `verify` (an encryption key is not a signing key;
  Keycloak publishes both side by side);
- `kty: oct`: a symmetric secret has no business in a public key set, and accepting it would let
  anyone who read the set mint HMAC tokens;
- RSA under 2048 bits (NIST SP 800-131A, RFC 8725 §3.5);
- an `alg` not on the issuer's allowlist, or one that contradicts the key type or curve.
Private members (`d`, `p`, ...) are dropped before use: a key set that leaks them is the IdP's
incident, but the gateway never needs them and never verifies with a private key object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m2mgate.jose import KeyRejected, VerificationKey, build_key

MIN_RSA_BITS = 2048
MAX_KEYS = 100  # a key set larger than this is garbage, not a rotation
MAX_KIDLESS_CANDIDATES = 4  # tokens without `kid`: try at most this many keys, then fail

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHM_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
# Every algorithm some key type verifies: the only list of them (config's `algorithms` allows
# these, and nothing else: never `none`, never HS*).
SUPPORTED_ALGORITHMS = (*_RSA_ALGORITHMS, *_EC_ALGORITHM_BY_CURVE.values(), "EdDSA")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidKeySet(Exception):
    """The document is not a usable key set. `result` labels the fetch metric."""

    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail)
        self.result = result


@dataclass(frozen=True)
class KeySet:
    keys: tuple[VerificationKey, ...]
    skipped: tuple[str, ...] = ()
    _by_kid: dict[str, tuple[VerificationKey, ...]] = field(init=False, repr=False, compare=False)
    # Identities of the key objects: the token cache asks "is this exact key still here?".
    # The asker holds a reference to its key, so that key's id cannot be reused meanwhile.
    _identities: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_identities", frozenset(id(key) for key in self.keys))
        by_kid: dict[str, list[VerificationKey]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        object.__setattr__(self, "_by_kid", {kid: tuple(keys) for kid, keys in by_kid.items()})

    def holds(self, key: VerificationKey) -> bool:
        return id(key) in self._identities

    def has_kid(self, kid: str) -> bool:
        return kid in self._by_kid

    def candidates(self, kid: str | None, algorithm: str) -> tuple[VerificationKey, ...]:
        """Keys that may verify a token with this `kid` and `alg` (most often exactly one)."""
        if kid is not None:
            return tuple(key for key in self._by_kid.get(kid, ()) if key.algorithm == algorithm)
        fitting = tuple(key for key in self.keys if key.algorithm == algorithm)
        return fitting[:MAX_KIDLESS_CANDIDATES]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._by_kid)


def algorithms_for(jwk: dict[str, Any], allowed: frozenset[str]) -> tuple[str, ...]:
    """Which allowed algorithms this JWK may verify; raises KeyRejected with the reason."""
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    if declared is not None and not isinstance(declared, str):
        raise KeyRejected("alg is not a string")
    if kty == "RSA":
        possible: tuple[str, ...] = _RSA_ALGORITHMS
    elif kty == "EC":
        curve_algorithm = _EC_ALGORITHM_BY_CURVE.get(jwk.get("crv"))  # type: ignore[arg-type]
        if curve_algorithm is None:
            raise KeyRejected("unsupported EC curve")
        possible = (curve_algorithm,)
    elif kty == "OKP":
        if jwk.get("crv") not in _OKP_CURVES:
            raise KeyRejected("unsupported OKP curve")
        possible = ("EdDSA",)  # RFC 8037 §3.1: Ed25519 and Ed448 both sign as EdDSA
    elif kty == "oct":
        raise KeyRejected("symmetric (oct) key in a public key set")
    else:
        raise KeyRejected("unsupported kty")
    if declared is not None:
        if declared not in possible:
            raise KeyRejected("alg contradicts the key type or curve")
        possible = (declared,)
    usable = tuple(algorithm for algorithm in possible if algorithm in allowed)
    if not usable:
        raise KeyRejected("alg not allowed for this issuer")
    return usable


def _purpose_check(jwk: dict[str, Any]) -> None:
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyRejected(f"use is {use!r}, not 'sig'" if isinstance(use, str) else "bad use")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyRejected("key_ops does not include verify")


def keys_from_jwk(jwk: dict[str, Any], allowed: frozenset[str]) -> list[VerificationKey]:
    _purpose_check(jwk)
    algorithms = algorithms_for(jwk, allowed)
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    keys = [build_key(public, algorithm) for algorithm in algorithms]
    bits = keys[0].rsa_bits
    if bits is not None and bits < MIN_RSA_BITS:
        raise KeyRejected(f"RSA key of {bits} bits is under {MIN_RSA_BITS}")
    return keys


def build_keyset(document: Any, allowed: frozenset[str]) -> KeySet:
    """A KeySet from a parsed JWKS document; InvalidKeySet when nothing usable is in it."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidKeySet("invalid_jwks", "document is not a JWK Set (no 'keys' array)")
    entries = document["keys"]
    if len(entries) > MAX_KEYS:
        raise InvalidKeySet("invalid_jwks", f"{len(entries)} keys is more than {MAX_KEYS}")
    keys: list[VerificationKey] = []
    skipped: list[str] = []
    for index, jwk in enumerate(entries):
        if not isinstance(jwk, dict):
            skipped.append(f"keys[{index}]: not a JSON object")
            continue
        try:
            keys.extend(keys_from_jwk(jwk, allowed))
        except KeyRejected as error:
            kid = jwk.get("kid")
            label = f"kid {kid!r}" if isinstance(kid, str) else f"keys[{index}]"
            skipped.append(f"{label[:80]}: {error}")
    if not keys:
        raise InvalidKeySet("no_usable_keys", "; ".join(skipped) or "the key set is empty")
    return KeySet(tuple(keys), tuple(skipped))
