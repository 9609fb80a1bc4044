"""The node's own Ed25519 key: it signs tokens, manifests and audit checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

__all__ = ["ALGORITHM", "NodeKey"]

ALGORITHM = "Ed25519"  # RFC 9864's fully-specified name for EdDSA over Ed25519


@dataclass(frozen=True)
class NodeKey:
    """A private Ed25519 key with its JWK form and key id (the RFC 7638 thumbprint)."""

    private: Ed25519PrivateKey
    jwk: OKPKey

    @property
    def kid(self) -> str:
        """The key id."""
        return str(self.jwk.kid)

    @classmethod
    def generate(cls) -> NodeKey:
        """A fresh key."""
        return cls.from_private(Ed25519PrivateKey.generate())

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> NodeKey:
        """Wrap a cryptography key."""
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        jwk = OKPKey.import_key(pem)
        jwk.ensure_kid()
        return cls(private=private, jwk=jwk)

    @classmethod
    def load_or_create(cls, path: Path) -> NodeKey:
        """Read the PEM key at ``path``, creating it (mode 0600) if it does not exist."""
        if path.exists():
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{path}: not an Ed25519 private key")
            return cls.from_private(private)
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return key

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK dict, with ``kid``, ``alg`` and ``use``."""
        return {**self.jwk.as_dict(private=False), "alg": ALGORITHM, "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        """The JWK Set this node serves at ``/.well-known/jwks.json``."""
        return {"keys": [self.public_jwk()]}
