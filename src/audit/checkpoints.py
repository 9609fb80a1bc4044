"""Signed tree heads: ``(size, root)`` of the log at a time, signed with the node's key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.canonical import canonical_json
from audit.keys import Signer, b64url, b64url_decode, verify_signature

__all__ = ["Checkpoint", "sign_checkpoint"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head; ``root`` is hex, ``signature`` base64url over ``signed_bytes()``."""

    size: int
    root: str
    time: str
    node: str
    kid: str
    signature: str

    def signed_bytes(self) -> bytes:
        """The canonical JSON the signature covers (every field but the signature)."""
        return canonical_json(
            {
                "kid": self.kid,
                "node": self.node,
                "root": self.root,
                "size": self.size,
                "time": self.time,
            }
        )

    def verify(self, key: Ed25519PublicKey) -> bool:
        """Whether the signature is ``key``'s."""
        try:
            signature = b64url_decode(self.signature)
        except ValueError:
            return False
        return verify_signature(key, signature, self.signed_bytes())

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``GET /audit/checkpoint`` returns)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Rebuild from ``to_dict()`` output."""
        return cls(
            size=int(data["size"]),
            root=str(data["root"]),
            time=str(data["time"]),
            node=str(data["node"]),
            kid=str(data["kid"]),
            signature=str(data["signature"]),
        )


def sign_checkpoint(signer: Signer, *, size: int, root: bytes, time: str, node: str) -> Checkpoint:
    """A checkpoint of ``(size, root)`` signed by ``signer``."""
    unsigned = Checkpoint(size, root.hex(), time, node, signer.kid, "")
    signature = b64url(signer.sign(unsigned.signed_bytes()))
    return Checkpoint(size, root.hex(), time, node, signer.kid, signature)
