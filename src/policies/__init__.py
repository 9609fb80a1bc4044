"""Decide: Casbin policies, purposes, licences, embargoes and agreements, producing Decisions."""

from policies.agreements import Acceptance
from policies.config import AgreementSpec, CustomLicence, PolicyConfig
from policies.decisions import Action, Decision, Obligation, ObligationKind
from policies.errors import (
    IncompatibleLicences,
    PolicyError,
    PolicyForbidden,
    PolicyValidationError,
    UnknownAgreement,
)
from policies.governance import Governance, PolicyChange, Statement
from policies.licences import Licence, LicenceRegistry, combine
from policies.lines import PolicyLine, RoleAssignment
from policies.principals import Principal
from policies.store import create_tables, metadata
from policies.watcher import RedisWatcher, Watcher

__all__ = [
    "Acceptance",
    "Action",
    "AgreementSpec",
    "CustomLicence",
    "Decision",
    "Governance",
    "IncompatibleLicences",
    "Licence",
    "LicenceRegistry",
    "Obligation",
    "ObligationKind",
    "PolicyChange",
    "PolicyConfig",
    "PolicyError",
    "PolicyForbidden",
    "PolicyLine",
    "PolicyValidationError",
    "Principal",
    "RedisWatcher",
    "RoleAssignment",
    "Statement",
    "UnknownAgreement",
    "Watcher",
    "combine",
    "create_tables",
    "metadata",
]
