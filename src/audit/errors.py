"""The audit room's errors, free of framework imports so the client can raise the same ones.

AuditError
├── AuditUnavailable     the log cannot be written: the caller must fail closed (503)
├── ProofError           a proof was asked for sizes or indexes the log does not have
├── ManifestError        a signed manifest does not verify
│   └── UnknownKey       ... because its key id is not in the JWKS
└── LineageError         a training run cannot be registered (foreign or unknown manifest)
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "AuditUnavailable",
    "LineageError",
    "ManifestError",
    "ProofError",
    "UnknownKey",
]


class AuditError(Exception):
    """Base of the audit errors; ``status`` and ``title`` feed an RFC 9457 problem body."""

    status = 500
    title = "Audit error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AuditUnavailable(AuditError):
    """The audit store could not be written; nothing may be released."""

    status = 503
    title = "Audit log unavailable"


class ProofError(AuditError):
    """A proof was requested for a size or index outside the log."""

    status = 400
    title = "Invalid proof request"


class ManifestError(AuditError):
    """A manifest token is malformed or its signature does not verify."""

    status = 400
    title = "Invalid manifest"


class UnknownKey(ManifestError):
    """A manifest names a key id that the given JWKS does not hold."""

    title = "Unknown signing key"


class LineageError(AuditError):
    """A training run refers to manifests this node did not release."""

    status = 422
    title = "Invalid lineage"
