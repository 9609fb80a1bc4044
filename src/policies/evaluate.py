"""From matched policy lines to a Decision: licence, embargo, agreements, columns and rows.

Allow lines are permissive: a column gets the most open treatment any matching allow line gives
it, and the row filter is the OR of their row rules (a line without one opens every row).
Restrictive deny lines then narrow: their columns get the least open treatment, their rows are
excluded. The order of openness is clear > hash > redact > null > drop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from connectors.datasets import Dataset
from connectors.filters import And, Compare, CompareOp, Filter, Known, Not, Or
from connectors.query import Mask, MaskKind
from policies.agreements import AgreementBook
from policies.compiled import CompiledLine, CompiledPolicy
from policies.decisions import Action, Decision, Obligation, ObligationKind
from policies.licences import LicenceRegistry
from policies.lines import Rule
from policies.principals import Principal

__all__ = ["Context", "evaluate"]

_CLEAR = "clear"
_ROW_EMBARGO_GRAIN = dt.timedelta(seconds=1)


_KINDS = ("drop", "null", "redact", "hash", _CLEAR)
_DROP, _OPEN = 0, 4


class _View:
    """What evaluation needs of one dataset, computed once: names, licence, column vectors."""

    __slots__ = ("columns", "dataset", "licence", "names", "obligations", "vectors")

    def __init__(self, dataset: Dataset, licences: LicenceRegistry) -> None:
        self.dataset = dataset
        self.names = dataset.column_names
        self.columns = [(c.name, c.sensitivity.value, c.pspp.value) for c in dataset.columns]
        self.licence = licences.get(dataset.license)
        citation = dataset.citation or dataset.persistent_id or dataset.title
        self.obligations = self.licence.obligations(citation)
        self.vectors: dict[tuple[CompiledLine, bool], tuple[int, ...]] = {}

    def vector(self, line: CompiledLine, restrict: bool) -> tuple[int, ...]:
        """Openness of each column under one line (a restrictive line leaves the rest open)."""
        key = (line, restrict)
        vec = self.vectors.get(key)
        if vec is None:
            shut = _KINDS.index(line.line.mask)
            if restrict:
                vec = tuple(
                    shut if line.has_columns_rule and line.withholds(*c) else _OPEN
                    for c in self.columns
                )
            else:
                vec = tuple(shut if line.withholds(*c) else _OPEN for c in self.columns)
            self.vectors[key] = vec
        return vec


@dataclass(frozen=True, slots=True)
class Context:
    """What evaluation needs beside the compiled policy."""

    purposes: frozenset[str]
    licences: LicenceRegistry
    agreements: AgreementBook
    mask_key: bytes = field(default=b"", repr=False)
    mask_key_id: str = ""
    views: dict[int, _View] = field(default_factory=dict)

    def masks(self) -> tuple[Mask, ...]:
        """The mask of each openness level below clear (index: drop, null, redact, hash)."""
        return (
            Mask(MaskKind.NULL),  # never used: dropped columns are not in the output
            Mask(MaskKind.NULL),
            Mask(MaskKind.REDACT),
            Mask(MaskKind.HASH, self.mask_key, self.mask_key_id),
        )

    def view(self, dataset: Dataset) -> _View:
        """The evaluation view of ``dataset`` (kept while the dataset object lives)."""
        hit = self.views.get(id(dataset))
        if hit is None or hit.dataset is not dataset:
            if len(self.views) > 50_000:
                self.views.clear()
            hit = self.views[id(dataset)] = _View(dataset, self.licences)
        return hit


def _deny(
    action: Action,
    purpose: str,
    dataset: Dataset,
    version: int,
    reasons: Sequence[str],
    matched: Sequence[CompiledLine] = (),
    agreements: Sequence[str] = (),
) -> Decision:
    return Decision(
        allowed=False,
        action=action,
        purpose=purpose,
        dataset_id=dataset.id,
        reasons=tuple(reasons),
        policy_version=version,
        matched=tuple(line.rule for line in matched),
        agreements=tuple(dict.fromkeys(agreements)),
    )


def _treatments(
    view: _View, allows: Sequence[CompiledLine], restricts: Sequence[CompiledLine]
) -> Sequence[int]:
    vectors = [view.vector(line, False) for line in allows]
    best: Sequence[int] = vectors[0]
    if len(vectors) > 1:
        best = [max(v) for v in zip(*vectors, strict=True)]
    for line in restricts:
        if line.has_columns_rule:
            best = [min(a, b) for a, b in zip(best, view.vector(line, True), strict=True)]
    return best


def _opened(allows: Sequence[CompiledLine], restricts: Sequence[CompiledLine]) -> list[Filter]:
    """The row rules of the matched lines, as items to AND together."""
    items: list[Filter] = []
    if all(line.rows is not None for line in allows):
        rules = tuple(line.rows for line in allows if line.rows is not None)
        items.append(rules[0] if len(rules) == 1 else Or(rules))
    items += [Not(line.rows) for line in restricts if line.rows is not None]
    return items


def _embargo(dataset: Dataset, now: dt.datetime) -> Filter:
    """Rows whose embargo column has passed (or is empty)."""
    col = dataset.embargo_column
    assert col is not None
    # Floor to the grain: a row whose embargo lifted within it stays hidden (fail-safe).
    floor = now - dt.timedelta(microseconds=now.microsecond)
    is_date = dataset.column(col).type == "date"
    stamp = floor.date().isoformat() if is_date else floor.isoformat()
    return Or((Known(col, known=False), Compare(col, CompareOp.LE, stamp)))


@dataclass(frozen=True, slots=True)
class _Shape:
    """The columns, masks, row rules and notes that a set of matched lines gives a dataset."""

    permitted: tuple[str, ...]
    withheld: tuple[str, ...]
    masks: MappingProxyType[str, Mask]
    rows: tuple[Filter, ...]
    matched: tuple[Rule, ...]
    notes: tuple[str, ...]
    obligations: tuple[Obligation, ...]


def _shape(
    ctx: Context,
    allows: tuple[CompiledLine, ...],
    restricts: tuple[CompiledLine, ...],
    view: _View,
    columns: tuple[str, ...] | None,
) -> _Shape | tuple[str, tuple[CompiledLine, ...]]:
    """What the matched lines give, or why they give nothing (a reason and the lines)."""
    openness = _treatments(view, allows, restricts)
    treat = dict(zip(view.names, openness, strict=True))
    names = view.names
    if columns is not None:
        for name in columns:
            if name not in treat:
                return f"{view.dataset.id} has no column {name!r}", allows
            if treat[name] == _DROP:
                return f"column {name!r} is withheld from you by policy", allows + restricts
        wanted = set(columns)
        names = tuple(n for n in names if n in wanted)
    permitted = tuple(n for n in names if treat[n] != _DROP)
    withheld = tuple(n for n, o in zip(view.names, openness, strict=True) if o == _DROP)
    if not permitted:
        return "every column of the dataset is withheld from you by policy", allows
    kinds = ctx.masks()
    masks = {n: kinds[treat[n]] for n in permitted if treat[n] != _OPEN}
    if not ctx.mask_key and any(m.kind is MaskKind.HASH for m in masks.values()):
        # An unkeyed hash falls to a dictionary of guesses: refuse rather than serve one.
        return "this node has no mask key, so it cannot serve hashed columns", allows
    notes = [f"allowed by {len(allows)} policy line(s)"]
    if withheld:
        notes.append(f"columns withheld: {', '.join(withheld)}")
    if masks:
        notes.append("columns masked: " + ", ".join(f"{n} ({k.kind})" for n, k in masks.items()))
    agreements = [
        Obligation(ObligationKind.AGREEMENT, line.line.agreement)
        for line in allows
        if line.line.agreement is not None
    ]
    return _Shape(
        permitted,
        withheld,
        MappingProxyType(masks),
        tuple(_opened(allows, restricts)),
        tuple(line.rule for line in (*allows, *restricts)),
        tuple(notes),
        tuple(agreements),
    )


def evaluate(
    ctx: Context,
    policy: CompiledPolicy,
    principal: Principal,
    dataset: Dataset,
    action: Action,
    purpose: str,
    columns: Sequence[str] | None,
    now: dt.datetime,
) -> tuple[Decision, dt.datetime | None]:
    """The decision for one request, and the instant until which it stays true (None: forever)."""
    version = policy.version
    if action is not Action.DISCOVER and purpose not in ctx.purposes:
        return _deny(action, purpose, dataset, version, [f"unknown purpose {purpose!r}"]), None
    m = policy.match(principal, dataset.institution, dataset.name, action.value, purpose)
    if m.denies:
        denied = [f"denied by policy line {', '.join(line.rule[:6])}" for line in m.denies]
        return _deny(action, purpose, dataset, version, denied, m.denies), None
    if not m.allows:
        reason = f"no policy line allows {action.value} of {dataset.id} for purpose {purpose!r}"
        return _deny(action, purpose, dataset, version, [reason]), None
    boundaries: list[dt.datetime] = []
    reasons: list[str] = []
    allows = list(m.allows)
    kept: list[CompiledLine] = []
    missing: list[str] = []  # agreements whose acceptance would let a line allow
    for line in allows:
        agreement = line.line.agreement
        if agreement is None:
            kept.append(line)
            continue
        boundaries += ctx.agreements.boundaries(agreement, principal)
        why = ctx.agreements.check(agreement, principal, now)
        if why is None:
            kept.append(line)
        else:
            reasons.append(why)
            if ctx.agreements.acceptable(agreement, now):
                missing.append(agreement)
    if not kept:
        refused = _deny(action, purpose, dataset, version, reasons, allows, missing)
        return refused, _next(boundaries, now)
    allows = kept
    if action is Action.DISCOVER:
        reasons.append(f"discoverable by policy ({len(allows)} line(s))")
        decision = Decision(
            True,
            action,
            purpose,
            dataset.id,
            tuple(reasons),
            version,
            matched=tuple(line.rule for line in allows),
        )
        return decision, _next(boundaries, now)
    view = ctx.view(dataset)
    licence = view.licence
    if (why := licence.refuses(purpose)) is not None:
        return _deny(action, purpose, dataset, version, [why], allows), None
    obligations = list(view.obligations)
    if licence.requires_agreement is not None:
        boundaries += ctx.agreements.boundaries(licence.requires_agreement, principal)
        why = ctx.agreements.check(licence.requires_agreement, principal, now)
        if why is not None:
            reason = f"licence {licence.id} requires an agreement: {why}"
            wanted = licence.requires_agreement
            missing = [wanted] if ctx.agreements.acceptable(wanted, now) else []
            refused = _deny(action, purpose, dataset, version, [reason], allows, missing)
            return refused, _next(boundaries, now)
        obligations.append(Obligation(ObligationKind.AGREEMENT, licence.requires_agreement))
    until = dataset.embargo_until
    if until is not None and now < until and principal.institution != dataset.institution:
        boundaries.append(until)
        allows = [line for line in allows if line.line.embargo]
        if not allows:
            reason = f"{dataset.id} is under embargo until {until.isoformat()}"
            return _deny(action, purpose, dataset, version, [reason]), _next(boundaries, now)
        reasons.append(f"embargo until {until.isoformat()} waived by policy")
    # Requests matching the same lines share a shape: compute it once per policy version.
    key = (tuple(allows), m.restricts, view, None if columns is None else tuple(columns))
    shape = policy.shapes.get(key)
    if shape is None:
        shape = _shape(ctx, *key)
        if len(policy.shapes) > 100_000:
            policy.shapes.clear()
        policy.shapes[key] = shape
    if not isinstance(shape, _Shape):
        return _deny(action, purpose, dataset, version, [shape[0]], shape[1]), None
    rows = shape.rows
    exempt = principal.institution == dataset.institution or any(a.line.embargo for a in allows)
    if dataset.embargo_column is not None and not exempt:
        rows = (*rows, _embargo(dataset, now))
        boundaries.append(now - dt.timedelta(microseconds=now.microsecond) + _ROW_EMBARGO_GRAIN)
    decision = Decision(
        allowed=True,
        action=action,
        purpose=purpose,
        dataset_id=dataset.id,
        reasons=shape.notes + tuple(reasons) if reasons else shape.notes,
        policy_version=version,
        columns=shape.permitted,
        masks=shape.masks,
        withheld=shape.withheld,
        row_filter=None if not rows else rows[0] if len(rows) == 1 else And(rows),
        obligations=tuple(dict.fromkeys((*obligations, *shape.obligations))),
        matched=shape.matched,
    )
    return decision, _next(boundaries, now) if boundaries else None


def _next(boundaries: Sequence[dt.datetime], now: dt.datetime) -> dt.datetime | None:
    """The earliest boundary after ``now``, when a cached decision must be recomputed."""
    later = [b for b in boundaries if b > now]
    return min(later) if later else None
