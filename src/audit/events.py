"""The typed events of the data-flow log: small frozen records with a class-level ``name``.

The gateway fills them with plain JSON-able values taken from Decisions, manifests and requests;
``AuditLog.append`` is the one function that records them. ``time`` and ``node`` may be left
empty: the log stamps them with its clock and its node id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from audit.canonical import canonical_json, jsonable

__all__ = [
    "AgreementAccepted",
    "AgreementForwarded",
    "AuthenticationFailed",
    "CheckpointRefused",
    "DatasetRegistered",
    "DecisionMade",
    "DenialsSuppressed",
    "Event",
    "JobChanged",
    "ModelQueried",
    "PolicyChanged",
    "RelayForwarded",
    "RunRegistered",
    "ShareChanged",
    "SliceDelivered",
    "canonical_json",
    "event_from_dict",
    "event_types",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries; ``decision`` is ``allow``, ``deny`` or empty."""

    name: ClassVar[str] = "event"

    time: str = ""
    request_id: str = ""
    node: str = ""
    principal: str = ""
    institution: str = ""
    dataset: str = ""
    action: str = ""
    purpose: str = ""
    decision: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, with the event's ``name``."""
        out: dict[str, Any] = {"name": self.name}
        for key in _field_names(type(self)):
            value = getattr(self, key)
            # most fields are plain strings: skip the generic conversion for them
            out[key] = value if type(value) is str else jsonable(value)
        return out

    def canonical(self) -> bytes:
        """Canonical JSON bytes of ``to_dict()``."""
        return canonical_json(self.to_dict())


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    found = _FIELD_NAMES.get(cls)
    if found is None:
        found = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionMade(Event):
    """An access decision, allow or deny, with its reasons and the policy version consulted."""

    name: ClassVar[str] = "decision"

    policy_version: int = 0
    reasons: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()
    masked: Mapping[str, str] = field(default_factory=dict)
    mask_key: str | None = None
    row_filter: str | None = None
    obligations: tuple[Mapping[str, str], ...] = ()
    matched: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceDelivered(Event):
    """A slice's completion: what was actually sent, and whether the stream ended or broke."""

    name: ClassVar[str] = "slice"

    manifest_id: str = ""
    policy_version: int = 0
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    columns: tuple[str, ...] = ()
    filter: str | None = None
    format: str = ""
    complete: bool = True
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyChanged(Event):
    """A steward changed a domain's policies; ``summary`` says what changed."""

    name: ClassVar[str] = "policy"

    policy_version: int = 0
    previous_version: int = 0
    summary: str = ""
    sha256: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementAccepted(Event):
    """A person or an institution accepted a dataset's terms."""

    name: ClassVar[str] = "agreement"

    agreement_id: str = ""
    party: str = ""
    terms: str = ""
    valid_from: str = ""
    valid_until: str = ""
    via: str = ""
    """The peer node that forwarded the acceptance for its user (empty: accepted here)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementForwarded(Event):
    """The home node forwarded its user's acceptance of a peer's agreement to that peer (the
    owner records the acceptance itself, as an ``agreement`` event naming this node as ``via``)."""

    name: ClassVar[str] = "agreement-relay"

    agreement_id: str = ""
    peer: str = ""
    party: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetRegistered(Event):
    """A dataset was registered or its metadata changed."""

    name: ClassVar[str] = "dataset"

    version: str = ""
    licence: str = ""
    columns: tuple[str, ...] = ()
    embargo_until: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticationFailed(Event):
    """A token was refused; ``suppressed`` counts same-source failures not logged one by one."""

    name: ClassVar[str] = "auth-failure"

    source: str = ""
    issuer: str = ""
    reason: str = ""
    suppressed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DenialsSuppressed(Event):
    """Denied requests of one principal counted, not logged one by one, in ``[since, until)``."""

    name: ClassVar[str] = "denials-suppressed"

    suppressed: int = 0
    since: str = ""
    until: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRegistered(Event):
    """A training run that consumed manifests of this node and produced a model."""

    name: ClassVar[str] = "run"

    run_id: str = ""
    manifests: tuple[str, ...] = ()
    model_name: str = ""
    model_version: str = ""
    model_hash: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayForwarded(Event):
    """The home node relayed a peer's slice to a local user; what it relayed."""

    name: ClassVar[str] = "relay"

    peer: str = ""
    manifest_id: str = ""
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    complete: bool = True
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChanged(Event):
    """A background job (compute-to-data training) was queued, started, finished or failed."""

    name: ClassVar[str] = "job"

    job_id: str = ""
    kind: str = ""
    status: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelQueried(Event):
    """A model kept on the node answered (or refused) a prediction or screening call."""

    name: ClassVar[str] = "model-query"

    job: str = ""
    kind: str = ""  # predict, screen
    rows: int = 0
    refused: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRefused(Event):
    """As a witness, this node refused a peer log's checkpoint: a possible fork or rollback."""

    name: ClassVar[str] = "witness-refusal"

    origin: str = ""
    size: int = 0
    root: str = ""
    old_size: int = 0
    reason: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareChanged(Event):
    """A steward offered (or changed) a Delta Sharing share, or withdrew it."""

    name: ClassVar[str] = "share"

    share: str = ""
    change: str = ""  # "offered" or "withdrawn"
    datasets: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()


_REGISTRY: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        DecisionMade,
        SliceDelivered,
        PolicyChanged,
        AgreementAccepted,
        AgreementForwarded,
        DatasetRegistered,
        AuthenticationFailed,
        DenialsSuppressed,
        RunRegistered,
        RelayForwarded,
        JobChanged,
        ModelQueried,
        CheckpointRefused,
        ShareChanged,
    )
}


def event_types() -> dict[str, type[Event]]:
    """Every event class by its ``name``."""
    return dict(_REGISTRY)


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild an event from ``to_dict()`` output; unknown fields are refused."""
    cls = _REGISTRY.get(str(data.get("name", "")))
    if cls is None:
        raise ValueError(f"unknown event name {data.get('name')!r}")
    names = set(_field_names(cls))
    unknown = set(data) - names - {"name"}
    if unknown:
        raise ValueError(f"{cls.name}: unknown fields {sorted(unknown)}")
    values = {k: _untuple(v) for k, v in data.items() if k != "name"}
    return cls(**values)


def _untuple(value: Any) -> Any:
    # JSON arrays come back as lists; events hold tuples so they stay immutable
    if isinstance(value, list):
        return tuple(_untuple(v) for v in value)
    return value
