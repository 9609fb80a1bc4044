"""The node's own keys: Ed25519 to sign tokens, manifests and checkpoints; a secret for masks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

__all__ = ["ALGORITHM", "MaskSecret", "NodeKey", "mask_secret_for"]

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

    def derived(self, label: str) -> bytes:
        """A 32-byte secret for one use, named by ``label``, derived from the private key (so
        what it signs or seals stays valid across restarts and replicas sharing the key)."""
        raw = self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return hashlib.sha256(label.encode() + b"\x00" + raw).digest()

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK dict, with ``kid``, ``alg`` and ``use``."""
        return {**self.jwk.as_dict(private=False), "alg": ALGORITHM, "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        """The JWK Set this node serves at ``/.well-known/jwks.json``."""
        return {"keys": [self.public_jwk()]}


MASK_SECRET_BYTES = 32
_MASK_FORMAT = "matgate-mask-secret-v1"


@dataclass(frozen=True)
class MaskSecret:
    """The key of hash masks (HMAC-SHA-256) and its id, which manifests and decisions name.

    A node makes its own at first start (``mask_secret`` beside its signing key, mode 0600), so
    hashed columns join across the node's datasets and nowhere else; institutions that want to
    join hashed columns across nodes share a named key on purpose (``from_shared``).
    """

    key: bytes = field(repr=False)
    kid: str

    @staticmethod
    def fingerprint(key: bytes) -> str:
        """A short id of ``key`` that reveals nothing of it."""
        return hmac.new(key, b"matgate mask key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MaskSecret:
        """A fresh random node secret."""
        key = secrets.token_bytes(MASK_SECRET_BYTES)
        return cls(key, f"node:{cls.fingerprint(key)}")

    @classmethod
    def from_shared(cls, name: str, value: str) -> MaskSecret:
        """A key shared with other institutions under ``name`` (at least 32 characters)."""
        if len(value) < MASK_SECRET_BYTES:
            raise ValueError(
                f"shared mask key {name!r} is {len(value)} characters long; it needs at least "
                f"{MASK_SECRET_BYTES} random ones (e.g. `openssl rand -hex 32`)"
            )
        key = value.encode("utf-8")
        return cls(key, f"shared:{name}:{cls.fingerprint(key)}")

    @classmethod
    def load(cls, path: Path) -> MaskSecret:
        """Read the node secret at ``path``; ValueError if it is malformed or readable by others."""
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise ValueError(f"{path}: the mask secret must be private to its owner (chmod 600)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key = base64.urlsafe_b64decode(data["secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a matgate mask secret") from exc
        if data.get("format") != _MASK_FORMAT or len(key) < MASK_SECRET_BYTES:
            raise ValueError(f"{path}: not a matgate mask secret")
        return cls(key, f"node:{cls.fingerprint(key)}")

    @classmethod
    def load_or_create(cls, path: Path) -> MaskSecret:
        """Read the node secret at ``path``, creating it (mode 0600) if it does not exist."""
        if path.exists():
            return cls.load(path)
        secret = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # a replica sharing the folder made it meanwhile
            return cls.load(path)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret._document())
        return secret

    @classmethod
    def rotate(cls, path: Path) -> tuple[str | None, MaskSecret]:
        """Replace the node secret at ``path`` with a fresh one; returns the old id and the new.

        Hashes made before no longer match hashes made after: that is what rotation is for.
        A running node keeps its old secret until it restarts.
        """
        old = cls.load(path).kid if path.exists() else None
        secret = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret._document())
        os.replace(temp, path)
        return old, secret

    def _document(self) -> str:
        secret = base64.urlsafe_b64encode(self.key).decode("ascii")
        return json.dumps({"format": _MASK_FORMAT, "kid": self.kid, "secret": secret}) + "\n"


def mask_secret_for(
    mask_key: str, shared: Mapping[str, str], path: Path, env: Mapping[str, str]
) -> MaskSecret:
    """The key hash masks use: the node's own (``mask_key == "node"``, made at ``path`` if
    missing) or the shared key named ``mask_key``, whose secret is in ``env[shared[mask_key]]``.

    ValueError when the key cannot be had: a node whose masks have no key does not start.
    """
    if mask_key == "node":
        return MaskSecret.load_or_create(path)
    variable = shared[mask_key]
    value = env.get(variable, "")
    if not value:
        raise ValueError(
            f"hash masks use the shared key {mask_key!r}, but {variable} is not set: "
            "the node will not hash columns without a key"
        )
    return MaskSecret.from_shared(mask_key, value)
