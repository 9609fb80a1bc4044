"""The node's Ed25519 signing key and public keys as JWKs (OKP/Ed25519), for offline checks."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "ALGORITHM",
    "Signer",
    "b64url",
    "b64url_decode",
    "public_jwk",
    "public_keys",
    "thumbprint",
    "verify_signature",
]

# RFC 9864's fully specified name for EdDSA over Ed25519 (the node's JWKS uses it too)
ALGORITHM = "Ed25519"


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: Ed25519PrivateKey | Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The public half of ``key`` as a JWK with ``kid``, ``alg`` and ``use``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(raw),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


@dataclass(frozen=True)
class Signer:
    """The node's private key and its key id: signs checkpoints and manifests."""

    key: Ed25519PrivateKey
    kid: str

    def sign(self, data: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``data``."""
        return self.key.sign(data)

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK."""
        return public_jwk(self.key, self.kid)

    def jwks(self) -> dict[str, Any]:
        """A JWK Set holding the public key."""
        return {"keys": [self.public_jwk()]}

    @classmethod
    def generate(cls, kid: str) -> Signer:
        """A fresh key (for tests and first start)."""
        return cls(Ed25519PrivateKey.generate(), kid)


def _jwk_list(keys: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(keys, Mapping):
        return list(keys["keys"]) if "keys" in keys else [keys]
    return list(keys)


def public_keys(
    keys: Mapping[str, Any] | Iterable[Mapping[str, Any]],
) -> dict[str, Ed25519PublicKey]:
    """Ed25519 public keys by kid from a JWKS, a list of JWKs or one JWK; other keys are skipped."""
    out: dict[str, Ed25519PublicKey] = {}
    for jwk in _jwk_list(keys):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "x" not in jwk:
            continue
        raw = b64url_decode(str(jwk["x"]))
        out[str(jwk.get("kid", ""))] = Ed25519PublicKey.from_public_bytes(raw)
    return out


def verify_signature(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an OKP public JWK (base64url): a key fingerprint."""
    required = {
        "crv": str(jwk.get("crv", "")),
        "kty": str(jwk.get("kty", "")),
        "x": str(jwk.get("x", "")),
    }
    data = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(data).digest())
