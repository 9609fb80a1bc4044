"""PSPP-aware training sets: inputs chosen by role from a slice and its catalog schema.

The default inputs are the processing, structure and condition columns; the target must be a
property or performance column; identifiers are never inputs. Each input gets a kind that says how
the forward model's pipeline will featurise it (``formula`` strings through the composition
featuriser, ``*_wt_pct`` columns through the weight-percent featuriser, strings one-hot encoded,
numbers as they are), so that a raw candidate table can be scored by the same pipeline later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from connectors.datasets import Column, ColumnType, PSPPRole
from training.errors import TrainingSetError
from training.featurizers import weight_percent_element

__all__ = ["DEFAULT_ROLES", "InputKind", "InputSpec", "TrainingSet", "coerce_inputs"]

DEFAULT_ROLES = (PSPPRole.PROCESSING, PSPPRole.STRUCTURE, PSPPRole.CONDITION)
TARGET_ROLES = (PSPPRole.PROPERTY, PSPPRole.PERFORMANCE)
FORMULA_NAMES = frozenset({"formula", "composition", "chemical_formula", "reduced_formula"})
MAX_CATEGORIES = 50  # more distinct strings than this is a name or free text, not a category
_NUMERIC = (ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.BOOLEAN)


class InputKind(StrEnum):
    """How an input column enters the model."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    FORMULA = "formula"
    WEIGHT_PERCENT = "weight_percent"


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One model input (or the target): its catalog role and unit, and how it is featurised."""

    name: str
    role: PSPPRole
    kind: InputKind
    unit: str | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "role": self.role.value,
            "kind": self.kind.value,
            "unit": self.unit,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Inverse of ``to_dict``."""
        return cls(
            name=data["name"],
            role=PSPPRole(data["role"]),
            kind=InputKind(data["kind"]),
            unit=data.get("unit"),
            description=data.get("description", ""),
        )


def _kind(col: Column, formula_columns: frozenset[str] | None) -> InputKind:
    if col.type == ColumnType.STRING:
        named = col.name in formula_columns if formula_columns is not None else None
        if named or (named is None and col.name.lower() in FORMULA_NAMES):
            return InputKind.FORMULA
        return InputKind.CATEGORICAL
    if weight_percent_element(col.name) is not None:
        return InputKind.WEIGHT_PERCENT
    return InputKind.NUMERIC


def coerce_inputs(frame: pd.DataFrame, inputs: Sequence[InputSpec]) -> pd.DataFrame:
    """The input columns of ``frame`` in model order, with the dtypes the pipeline expects."""
    missing = [spec.name for spec in inputs if spec.name not in frame.columns]
    if missing:
        raise TrainingSetError(f"missing input columns: {missing}")
    out: dict[str, Any] = {}
    for spec in inputs:
        values = frame[spec.name]
        if spec.kind in (InputKind.NUMERIC, InputKind.WEIGHT_PERCENT):
            out[spec.name] = pd.to_numeric(values, errors="coerce").astype(float)
        elif spec.kind == InputKind.CATEGORICAL:
            # object dtype with NaN for missing: what the one-hot encoder treats as a category
            out[spec.name] = values.astype(object).where(values.notna(), np.nan)
        else:
            out[spec.name] = values.astype(object)
    return pd.DataFrame(out, index=frame.index)


def _manifests(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    # the client puts a slice's manifest under "matgate"; lists come from combined slices
    found = attrs.get("matgate", attrs.get("manifests", attrs.get("manifest")))
    if isinstance(found, Mapping):
        return (dict(found),)
    if isinstance(found, list | tuple):
        return tuple(dict(m) for m in found if isinstance(m, Mapping))
    return ()


def _signatures(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    found = attrs.get("matgate_signatures", attrs.get("matgate_signature"))
    if isinstance(found, str):
        return (found,) if found else ()
    if isinstance(found, list | tuple):
        return tuple(str(s) for s in found if s)
    return ()


def _masked(manifests: Iterable[Mapping[str, Any]]) -> set[str]:
    """Columns a manifest says were masked: their values are placeholders, not data."""
    names: set[str] = set()
    for manifest in manifests:
        for key in ("masked", "masks"):
            value = manifest.get(key) or manifest.get("decision", {}).get(key)
            if isinstance(value, Mapping | list | tuple):
                names.update(str(v) for v in value)
    return names


@dataclass(frozen=True)
class TrainingSet:
    """Raw model inputs ``X`` and target ``y`` with the PSPP role, unit and kind of each column.

    ``dropped`` says, per schema column left out, why; ``manifests`` are those of the slices the
    rows came from (read from the frame's ``attrs``), carried on to the model card, and
    ``signatures`` their signed forms, which the lineage endpoint takes to register a run.
    """

    X: pd.DataFrame
    y: pd.Series
    inputs: tuple[InputSpec, ...]
    target: InputSpec
    dropped: Mapping[str, str] = field(default_factory=dict)
    rows_without_target: int = 0
    manifests: tuple[dict[str, Any], ...] = ()
    signatures: tuple[str, ...] = ()

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        columns: Sequence[Column],
        target: str,
        inputs: Sequence[str] | None = None,
        roles: Iterable[PSPPRole | str] = DEFAULT_ROLES,
        *,
        exclude: Iterable[str] = (),
        formula_columns: Iterable[str] | None = None,
        manifests: Sequence[Mapping[str, Any]] | None = None,
    ) -> TrainingSet:
        """Choose inputs by PSPP role (or take ``inputs``), check the target, keep labelled rows."""
        schema = {c.name: c for c in columns}
        found = tuple(dict(m) for m in manifests) if manifests is not None else _manifests(df.attrs)
        excluded = set(exclude) | _masked(found)
        formulas = frozenset(formula_columns) if formula_columns is not None else None
        target_spec = cls._target(df, schema, target)
        dropped: dict[str, str] = {}
        if inputs is not None:
            chosen = cls._explicit(df, schema, target, inputs, excluded)
        else:
            wanted = {PSPPRole(r) for r in roles} - {PSPPRole.IDENTIFIER}
            chosen, dropped = cls._by_role(df, schema, target, wanted, excluded)
        specs = tuple(_spec(schema[name], formulas) for name in chosen)
        specs = tuple(s for s in specs if not _too_many_categories(df[s.name], s, dropped))
        if not specs:
            raise TrainingSetError(f"no usable inputs for {target!r}; left out: {dropped}")
        y = pd.to_numeric(df[target], errors="coerce").astype(float)
        labelled = y.notna().to_numpy()
        if not labelled.any():
            raise TrainingSetError(f"target {target!r} has no numeric values in the slice")
        X = coerce_inputs(df.loc[labelled], specs).reset_index(drop=True)
        y = y[labelled].reset_index(drop=True).rename(target)
        unlabelled = int((~labelled).sum())
        signed = _signatures(df.attrs)
        return cls(X, y, specs, target_spec, dropped, unlabelled, found, signed)

    @staticmethod
    def _target(df: pd.DataFrame, schema: Mapping[str, Column], target: str) -> InputSpec:
        if target not in schema:
            raise TrainingSetError(f"target {target!r} is not a column of the dataset")
        col = schema[target]
        if col.pspp not in TARGET_ROLES:
            raise TrainingSetError(
                f"target {target!r} has PSPP role {col.pspp.value!r}; "
                "a forward model predicts a property or performance column"
            )
        if col.type not in _NUMERIC:
            raise TrainingSetError(f"target {target!r} is {col.type.value}, not numeric")
        if target not in df.columns:
            raise TrainingSetError(f"target {target!r} is not in the slice (withheld by policy?)")
        return InputSpec(target, col.pspp, InputKind.NUMERIC, col.unit, col.description)

    @staticmethod
    def _explicit(
        df: pd.DataFrame,
        schema: Mapping[str, Column],
        target: str,
        inputs: Sequence[str],
        excluded: set[str],
    ) -> list[str]:
        for name in inputs:
            if name not in schema:
                raise TrainingSetError(f"input {name!r} is not a column of the dataset")
            if name == target:
                raise TrainingSetError(f"{name!r} is the target; it cannot be an input too")
            if schema[name].pspp == PSPPRole.IDENTIFIER:
                raise TrainingSetError(f"{name!r} is an identifier; identifiers are never inputs")
            if name in excluded:
                raise TrainingSetError(f"input {name!r} is masked in the slice")
            if name not in df.columns:
                raise TrainingSetError(f"input {name!r} is not in the slice (withheld by policy?)")
            if df[name].isna().all():
                raise TrainingSetError(f"input {name!r} has no values in the slice (masked?)")
        return list(dict.fromkeys(inputs))

    @staticmethod
    def _by_role(
        df: pd.DataFrame,
        schema: Mapping[str, Column],
        target: str,
        wanted: set[PSPPRole],
        excluded: set[str],
    ) -> tuple[list[str], dict[str, str]]:
        chosen: list[str] = []
        dropped: dict[str, str] = {}
        for name, col in schema.items():
            if name == target:
                continue
            if col.pspp not in wanted:
                dropped[name] = f"PSPP role {col.pspp.value!r} is not an input role"
            elif name in excluded:
                dropped[name] = "masked in the slice"
            elif name not in df.columns:
                dropped[name] = "not in the slice (withheld by policy)"
            elif col.type in (ColumnType.TIMESTAMP, ColumnType.DATE):
                dropped[name] = "timestamps are not model inputs"
            elif df[name].isna().all():
                dropped[name] = "no values in the slice (masked or empty)"
            else:
                chosen.append(name)
        return chosen, dropped

    @property
    def input_names(self) -> list[str]:
        """Input column names in model order."""
        return [s.name for s in self.inputs]

    def preprocessor(self) -> Any:
        """An unfitted ColumnTransformer that featurises and one-hot encodes the inputs."""
        from training.pipelines import preprocessor

        return preprocessor(self.inputs)

    def design_matrix(self) -> pd.DataFrame:
        """The featurised, encoded input matrix (what the estimator sees before imputation)."""
        pre = self.preprocessor()
        matrix = pre.fit_transform(self.X)
        return pd.DataFrame(matrix, columns=list(pre.get_feature_names_out()))

    def duplicate_groups(self) -> np.ndarray:
        """A group number per row: rows with identical inputs (one composition, say) share one."""
        keys = self.X.copy()
        for spec in self.inputs:
            if spec.kind == InputKind.FORMULA:
                keys[spec.name] = keys[spec.name].astype(str).str.replace(r"\s+", "", regex=True)
        hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        return np.asarray(pd.factorize(hashed)[0])  # numbered in order of first appearance

    def duplicates(self) -> dict[str, int]:
        """How many rows share their inputs with another row, and in how many groups."""
        groups = self.duplicate_groups()
        counts = np.bincount(groups)
        return {
            "rows": len(groups),
            "distinct_inputs": len(counts),
            "rows_with_twins": int(counts[counts > 1].sum()),
            "groups_with_twins": int((counts > 1).sum()),
        }

    def aggregated(self) -> TrainingSet:
        """One row per distinct input, its target the mean of the duplicates' targets."""
        groups = self.duplicate_groups()
        first = np.unique(groups, return_index=True)[1]
        y = pd.Series(self.y.to_numpy(float)).groupby(groups).mean().to_numpy()
        X = self.X.iloc[first].reset_index(drop=True)
        target = pd.Series(y, name=self.y.name)
        return replace(self, X=X, y=target)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: inputs, target, rows, and what was left out and why."""
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "target": self.target.to_dict(),
            "rows": len(self.y),
            "rows_without_target": self.rows_without_target,
            "dropped": dict(self.dropped),
            "duplicates": self.duplicates(),
        }


def _spec(col: Column, formulas: frozenset[str] | None) -> InputSpec:
    return InputSpec(col.name, col.pspp, _kind(col, formulas), col.unit, col.description)


def _too_many_categories(values: pd.Series, spec: InputSpec, dropped: dict[str, str]) -> bool:
    if spec.kind != InputKind.CATEGORICAL:
        return False
    distinct = values.nunique(dropna=True)
    if distinct > MAX_CATEGORIES:
        dropped[spec.name] = f"{distinct} distinct strings: a name or free text, not a category"
        return True
    return False
