"""The only module that imports PyJWT: verification keys, signature checks, and (for the
embedded dev issuer) signing keys and signing.

PyJWT's exceptions are translated here, once, into the gateway's error tree. Some failures inside
key handling escape PyJWT's own exception classes (plain ValueError/TypeError from the crypto
backend on hostile input); they are translated here too, never allowed to crash a request and
never turned into an allow (PROVIDERS.md, attacks §9).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS

from m2mgate.errors import BadSignature, DisallowedAlgorithm, MalformedToken


class KeyRejected(Exception):
    """A JWK that cannot become a verification key; the message says why (for logs)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key bound to exactly one algorithm.

    Binding happens when the key set is loaded: the token's `alg` header only *selects* among
    keys; it never decides how a key is used (RFC 8725 §3.1, and the HS256-with-an-RSA-public-key
    confusion).
    """

    kid: str | None
    algorithm: str
    handle: Any  # jwt.PyJWK; typed Any so no other module needs PyJWT's types
    rsa_bits: int | None = None


# One verifier object for the process; the allowlist is passed per call (`algorithms=[...]`).
_JWS = PyJWS(options={"verify_signature": True, "enforce_minimum_key_length": True})


def build_key(jwk: dict[str, Any], algorithm: str) -> VerificationKey:
    try:
        handle = jwt.PyJWK(jwk, algorithm=algorithm)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
        raise KeyRejected(f"{type(error).__name__}: {error}") from None
    if handle.algorithm_name != algorithm:  # defensive: PyJWK must honour the argument
        raise KeyRejected("key algorithm binding failed")
    bits = int(handle.key.key_size) if jwk.get("kty") == "RSA" else None
    kid = jwk.get("kid")
    return VerificationKey(
        kid=kid if isinstance(kid, str) else None, algorithm=algorithm, handle=handle, rsa_bits=bits
    )


def verify_parsed(
    signing_input: bytes, signature: bytes, algorithm: str, key: VerificationKey
) -> None:
    """The signature check alone, for a token already parsed strictly by auth/token_parsing
    (canonical base64url, JSON objects, no `crit`/`b64`). The request path uses this one:
    PyJWT's decode would parse the token again, and its per-character base64url check in
    Python costs about three RSA verifications (bench/RESULTS.md, micro-benchmarks).

    The algorithm is the key's own (RFC 8725 §3.1): the token's `alg` only selected the key.
    """
    if algorithm != key.algorithm:
        raise DisallowedAlgorithm("token alg does not match the key's algorithm")
    try:
        valid = key.handle.Algorithm.verify(signing_input, key.handle.key, signature)
    except jwt.PyJWTError as error:
        raise BadSignature(f"verification error {type(error).__name__}") from None
    except (ValueError, TypeError, OverflowError) as error:
        # Escapes from the crypto backend on hostile input: a failed verification, logged.
        raise BadSignature(f"verification error {type(error).__name__}: {error}") from None
    if not valid:
        raise BadSignature("signature verification failed")


def verify_signature(token: str, key: VerificationKey) -> None:
    """Raise unless `token` is signed by `key` with the key's own algorithm."""
    try:
        _JWS.decode_complete(token, key=key.handle, algorithms=[key.algorithm])
    except jwt.InvalidSignatureError:
        raise BadSignature("signature verification failed") from None
    except jwt.InvalidAlgorithmError:
        raise DisallowedAlgorithm("token alg does not match the key's algorithm") from None
    except jwt.InvalidKeyError as error:
        raise BadSignature(f"key unusable: {error}") from None
    except jwt.PyJWTError as error:  # DecodeError, InvalidTokenError (crit, b64, ...)
        raise MalformedToken(f"{type(error).__name__}: {error}") from None
    except (ValueError, TypeError, OverflowError) as error:
        # Escapes from the crypto backend on hostile input: a failed verification, logged.
        raise BadSignature(f"verification error {type(error).__name__}: {error}") from None


# --- signing (the embedded dev issuer) -----------------------------------------------------------

# What `generate_signing_key` can make; the dev issuer's config allows exactly these.
SigningAlgorithm = Literal["ES256", "RS256"]
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any  # a cryptography private key
    public_jwk: dict[str, Any]


def generate_signing_key(algorithm: str) -> SigningKey:
    """A fresh key pair; its kid is the RFC 7638 JWK thumbprint of the public key."""
    if algorithm == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}")
    public = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(private.public_key()))
    kid = jwk_thumbprint(public)
    return SigningKey(
        kid, algorithm, private, {**public, "kid": kid, "use": "sig", "alg": algorithm}
    )


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace; base64url."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(
    claims: dict[str, Any],
    key: SigningKey,
    token_type: str = "at+jwt",  # noqa: S107 - a typ
) -> str:
    return jwt.encode(
        claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid, "typ": token_type}
    )


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims *without* verification, for display only (`m2mgate token --decode`)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise MalformedToken(f"{type(error).__name__}: {error}") from None
    return header, claims
