"""The outcome of an access check: never a bare bool, always reasons and a policy version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from connectors.filters import Filter
from connectors.query import Mask, MaskKind

__all__ = ["Action", "Decision", "Obligation", "ObligationKind"]


class Action(StrEnum):
    """What a principal wants to do with a dataset or a domain."""

    DISCOVER = "discover"
    READ = "read"
    TRAIN = "train"
    # Taking a model trained on site (compute-to-data) off the node: a right of its own, never
    # implied by ``train`` or ``read``.
    EXPORT_MODEL = "export-model"
    MANAGE = "manage"
    AUDIT = "audit"


class ObligationKind(StrEnum):
    """What a receiver of data must do."""

    ATTRIBUTE = "attribute"
    NO_REDISTRIBUTION = "no-redistribution"
    DELETE_AFTER = "delete-after"
    SHARE_ALIKE = "share-alike"
    NON_COMMERCIAL = "non-commercial"
    NO_DERIVATIVES = "no-derivatives"
    AGREEMENT = "agreement"


@dataclass(frozen=True, slots=True)
class Obligation:
    """One obligation with its detail (citation text, a date, a licence id)."""

    kind: ObligationKind
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"kind": self.kind.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of ``decide``: whether, which columns and rows, and why.

    ``columns`` lists the permitted columns in schema order (masked ones included), ``masks`` says
    how masked ones are replaced, ``withheld`` lists the columns dropped, ``row_filter`` is ANDed
    into the store's query. ``matched`` holds the policy lines that decided, ``reasons`` says why in
    words, ``policy_version`` names the policy state that was consulted. A denial that accepting
    agreements would lift names them in ``agreements``.
    """

    allowed: bool
    action: Action
    purpose: str
    dataset_id: str
    reasons: tuple[str, ...]
    policy_version: int
    columns: tuple[str, ...] = ()
    masks: Mapping[str, Mask] = field(default_factory=lambda: MappingProxyType({}))
    withheld: tuple[str, ...] = ()
    row_filter: Filter | None = None
    obligations: tuple[Obligation, ...] = ()
    matched: tuple[tuple[str, ...], ...] = ()
    agreements: tuple[str, ...] = ()

    @property
    def mask_key_id(self) -> str | None:
        """The id of the key that hashes this decision's hashed columns (None: nothing hashed)."""
        return next((m.key_id for m in self.masks.values() if m.kind is MaskKind.HASH), None)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary for manifests and audit events."""
        from connectors.filterparser import unparse  # the filter tree's text form

        return {
            "allowed": self.allowed,
            "action": self.action.value,
            "purpose": self.purpose,
            "dataset": self.dataset_id,
            "columns": list(self.columns),
            "masked": {name: mask.kind.value for name, mask in self.masks.items()},
            "mask_key": self.mask_key_id,
            "withheld": list(self.withheld),
            "row_filter": unparse(self.row_filter) if self.row_filter is not None else None,
            "obligations": [o.to_dict() for o in self.obligations],
            "matched": [list(line) for line in self.matched],
            "reasons": list(self.reasons),
            "policy_version": self.policy_version,
        }
