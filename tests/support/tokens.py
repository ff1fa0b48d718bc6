"""Keys and tokens minted at test time. Nothing here is ever committed as a constant."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


@dataclass
class SigningKey:
    kid: str | None
    alg: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self, **extra: Any) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.public))
        if self.kid is not None:
            data["kid"] = self.kid
        data.setdefault("use", "sig")
        data.setdefault("alg", self.alg)
        data.update(extra)
        return {key: value for key, value in data.items() if value is not None}

    def public_pem(self) -> bytes:
        return bytes(
            self.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(
        self,
        claims: dict[str, Any],
        *,
        header: dict[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        headers: dict[str, Any] = {"typ": "at+jwt"}
        if self.kid is not None:
            headers["kid"] = self.kid
        headers.update(header or {})
        headers = {key: value for key, value in headers.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


def rsa_key(kid: str | None = "rsa-1", bits: int = 2048, alg: str = "RS256") -> SigningKey:
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_key(kid: str | None = "ec-1", alg: str = "ES256") -> SigningKey:
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return SigningKey(kid, alg, ec.generate_private_key(curve))


def ed_key(kid: str | None = "ed-1") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def claims_for(issuer: str, **overrides: Any) -> dict[str, Any]:
    """RFC 9068-shaped access token claims, valid from now for five minutes."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "svc-orders",
        "client_id": "svc-orders",
        "aud": "https://api.example",
        "scope": "read:data",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_token(header: str | bytes, payload: str | bytes, signature: bytes = b"sig") -> str:
    """A compact token from raw JSON text: for duplicate members and other malformed JSON."""
    return f"{b64url(header)}.{b64url(payload)}.{b64url(signature)}"


def sign_raw(key: SigningKey, header_json: str, payload_json: str) -> str:
    """A correctly signed token over exactly these JSON texts (duplicates and all)."""
    signing_input = f"{b64url(header_json)}.{b64url(payload_json)}".encode()
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = algorithm.sign(signing_input, algorithm.prepare_key(key.private))
    return f"{signing_input.decode()}.{b64url(signature)}"
