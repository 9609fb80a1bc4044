"""Record: the append-only, verifiable event log, signed manifests and the lineage graph."""

from audit.bundle import read_bundle, verify_bundle, verify_log, write_bundle
from audit.canonical import canonical_json
from audit.checkpoints import Checkpoint, Notary
from audit.errors import (
    AuditError,
    AuditUnavailable,
    LineageError,
    ManifestError,
    ProofError,
    UnknownKey,
)
from audit.events import (
    AgreementAccepted,
    AuthenticationFailed,
    DatasetRegistered,
    DecisionMade,
    Event,
    JobChanged,
    PolicyChanged,
    RelayForwarded,
    RunRegistered,
    SliceDelivered,
)
from audit.keys import Signer, public_jwk
from audit.lineage import Lineage, Run
from audit.log import AuditLog, ConsistencyProof, InclusionProof
from audit.manifests import sign_manifest, verify_manifest
from audit.provenance import to_openlineage, to_prov_json
from audit.ratelimit import FailureLimiter
from audit.report import build_report, verify_report
from audit.search import EventFilter, EventPage
from audit.store import create_tables, metadata
from audit.verify import Problem, Report, Trust, verify

__all__ = [
    "AgreementAccepted",
    "AuditError",
    "AuditLog",
    "AuditUnavailable",
    "AuthenticationFailed",
    "Checkpoint",
    "ConsistencyProof",
    "DatasetRegistered",
    "DecisionMade",
    "Event",
    "EventFilter",
    "EventPage",
    "FailureLimiter",
    "InclusionProof",
    "JobChanged",
    "Lineage",
    "LineageError",
    "ManifestError",
    "Notary",
    "PolicyChanged",
    "Problem",
    "ProofError",
    "RelayForwarded",
    "Report",
    "Run",
    "RunRegistered",
    "Signer",
    "SliceDelivered",
    "Trust",
    "UnknownKey",
    "build_report",
    "canonical_json",
    "create_tables",
    "metadata",
    "public_jwk",
    "read_bundle",
    "sign_manifest",
    "to_openlineage",
    "to_prov_json",
    "verify",
    "verify_bundle",
    "verify_log",
    "verify_manifest",
    "verify_report",
    "write_bundle",
]
