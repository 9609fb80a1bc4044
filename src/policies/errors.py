"""The exceptions of the policies room, each with an HTTP-like status, a title and a detail.

They carry no framework import, so the gateway maps them to problem+json in one handler::

    PolicyError                      base: status, title, detail
    ├── PolicyValidationError  422   a write, config or dataset breaks a rule; nothing changed
    ├── IncompatibleLicences   422   licences that cannot be combined in one slice
    ├── PolicyForbidden        403   the principal may not do this (e.g. edit another domain)
    ├── UnknownAgreement       404   no agreement with that id
    ├── PolicyConflict         409   another writer changed the policy first; nothing changed
    └── PolicyUnavailable      503   the change could not be committed; nothing changed
"""

from __future__ import annotations

__all__ = [
    "IncompatibleLicences",
    "PolicyConflict",
    "PolicyError",
    "PolicyForbidden",
    "PolicyUnavailable",
    "PolicyValidationError",
    "UnknownAgreement",
]


class PolicyError(Exception):
    """Base of the room's errors: ``status``, ``title`` and ``detail`` for a problem response."""

    status = 500
    title = "Policy error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PolicyValidationError(PolicyError):
    """A policy write, config or dataset breaks a rule; the store is unchanged."""

    status = 422
    title = "Invalid policy"


class IncompatibleLicences(PolicyError):
    """The licences of the slices to combine are incompatible."""

    status = 422
    title = "Incompatible licences"


class PolicyForbidden(PolicyError):
    """The principal may not perform this governance operation."""

    status = 403
    title = "Forbidden"


class UnknownAgreement(PolicyError):
    """No agreement has that id."""

    status = 404
    title = "Unknown agreement"


class PolicyConflict(PolicyError):
    """Another writer changed the policy since it was read; nothing was changed."""

    status = 409
    title = "Policy changed meanwhile"


class PolicyUnavailable(PolicyError):
    """The policy store could not commit the change; nothing was changed."""

    status = 503
    title = "Policy store unavailable"
