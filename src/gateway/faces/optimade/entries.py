"""From permitted rows to OPTIMADE structures entries, and the properties they carry."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connectors.datasets import ColumnType, Dataset
from gateway.config import OptimadeMapping

__all__ = [
    "PREFIX",
    "Mapped",
    "composition",
    "entries",
    "entry_id",
    "provider_name",
    "standard_properties",
]

PREFIX = "matgate"
_SAFE_ID = re.compile(r"^[A-Za-z0-9().,_+-]{1,200}$")
_TYPES = {
    ColumnType.INTEGER: "integer",
    ColumnType.FLOAT: "float",
    ColumnType.STRING: "string",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.TIMESTAMP: "timestamp",
    ColumnType.DATE: "string",
}
# Structure attributes this face cannot know from a formula: present, and null.
_UNKNOWN = (
    "immutable_id",
    "chemical_formula_hill",
    "dimension_types",
    "nperiodic_dimensions",
    "lattice_vectors",
    "cartesian_site_positions",
    "nsites",
    "species",
    "species_at_sites",
    "assemblies",
)


@dataclass(frozen=True)
class Mapped:
    """A mapped dataset as one caller may see it: its provider fields and their columns."""

    mapping: OptimadeMapping
    dataset: Dataset
    fields: dict[str, str]  # provider property -> column

    @property
    def id_column(self) -> str:
        """The column whose value names an entry."""
        return self.mapping.id_column or self.mapping.formula


def provider_name(column: str) -> str:
    """``_matgate_<column>``, lower-cased as OPTIMADE property names must be."""
    return f"_{PREFIX}_{column.lower()}"


def provider_fields(mapping: OptimadeMapping, dataset: Dataset, visible: Iterable[str]) -> Mapped:
    """The provider fields of the columns a caller may see (the formula is standard)."""
    fields: dict[str, str] = {}
    for column in visible:
        name = provider_name(column)
        if column != mapping.formula and name not in fields:
            fields[name] = column
    return Mapped(mapping, dataset, fields)


def entry_id(dataset: Dataset, value: Any) -> str:
    """``<dataset>:<value>``, or a digest of the value where it would not fit a URL path."""
    text = str(value)
    if not _SAFE_ID.match(text):
        text = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{dataset.name}:{text}"


@functools.lru_cache(maxsize=65_536)
def composition(formula: str) -> dict[str, Any]:
    """The formula-derived attributes of a structure; nulls where the formula does not parse."""
    from training.errors import FormulaError
    from training.formula import parse_formula

    blank: dict[str, Any] = {
        "elements": None,
        "nelements": None,
        "elements_ratios": None,
        "chemical_formula_reduced": None,
        "chemical_formula_anonymous": None,
    }
    try:
        amounts = {s: n for s, n in parse_formula(formula).items() if n > 0}
    except FormulaError:
        return blank
    if not amounts:
        return blank
    elements = sorted(amounts)
    total = sum(amounts.values())
    ratios = [amounts[e] / total for e in elements]
    ratios[-1] = 1.0 - sum(ratios[:-1])  # sum exactly to one, as OPTIMADE asks
    counts = _integers([amounts[e] for e in elements])
    reduced = anonymous = None
    if counts is not None:
        reduced = "".join(
            e + (str(n) if n != 1 else "") for e, n in zip(elements, counts, strict=True)
        )
        ordered = sorted(counts, reverse=True)
        anonymous = "".join(
            _anonymous_symbol(i) + (str(n) if n != 1 else "") for i, n in enumerate(ordered)
        )
    return {
        "elements": elements,
        "nelements": len(elements),
        "elements_ratios": ratios,
        "chemical_formula_reduced": reduced,
        "chemical_formula_anonymous": anonymous,
    }


def _integers(amounts: list[float]) -> list[int] | None:
    """The smallest whole-number proportions of ``amounts``, if a small multiple makes them so."""
    for factor in range(1, 101):
        scaled = [a * factor for a in amounts]
        if all(abs(s - round(s)) < 1e-6 * max(1.0, s) for s in scaled):
            whole = [round(s) for s in scaled]
            if min(whole) < 1:
                return None
            divisor = functools.reduce(math.gcd, whole)
            return [w // divisor for w in whole]
    return None


def _anonymous_symbol(index: int) -> str:
    """A, B, ..., Z, Aa, Ba, ..., Za, Ab, ...: OPTIMADE's anonymous element names."""
    upper, lower = string.ascii_uppercase, string.ascii_lowercase
    if index < 26:
        return upper[index]
    index -= 26
    return upper[index % 26] + lower[index // 26]


def entries(mapped: Mapped, table: pa.Table, modified: dt.datetime) -> list[dict[str, Any]]:
    """One flat document per row: id, type and attributes side by side (for filtering)."""
    columns = {name: _json_column(table.column(name)) for name in table.column_names}
    formulas = columns.get(mapped.mapping.formula)
    ids = columns.get(mapped.id_column)
    if ids is None:
        return []  # the naming column is withheld from this caller: no entry can be named
    base: dict[str, Any] = {
        "type": "structures",
        "last_modified": modified,
        "structure_features": [],
        **dict.fromkeys(_UNKNOWN),
        **dict.fromkeys(_SPACE_GROUP),
    }
    fields = [(prop, columns[c]) for prop, c in mapped.fields.items() if c in columns]
    out = []
    for i in range(table.num_rows):
        formula = formulas[i] if formulas is not None else None
        doc = dict(base)
        doc["id"] = entry_id(mapped.dataset, ids[i])
        doc["chemical_formula_descriptive"] = formula
        doc.update(composition(formula if isinstance(formula, str) else ""))
        for prop, values in fields:
            doc[prop] = values[i]
        out.append(doc)
    return out


_SPACE_GROUP = (
    "space_group_symmetry_operations_xyz",
    "space_group_symbol_hall",
    "space_group_symbol_hermann_mauguin",
    "space_group_symbol_hermann_mauguin_extended",
    "space_group_it_number",
)


def _json_column(column: pa.ChunkedArray) -> list[Any]:
    """A column's values as JSON values, converted by Arrow: NaN as null, times as RFC 3339."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_floating(kind):
        column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, kind))
    elif pa.types.is_timestamp(kind):
        utc = column.cast(pa.timestamp("us", tz="UTC")) if kind.tz else column
        text = pc.strftime(utc.cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
        return [None if v is None else v + "Z" for v in text.to_pylist()]
    elif pa.types.is_date(kind):
        column = column.cast(pa.string())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [None if v is None else v.hex() for v in column.to_pylist()]
    return list(column.to_pylist())


@functools.lru_cache(maxsize=1)
def standard_properties() -> dict[str, dict[str, Any]]:
    """The OPTIMADE structures properties, as the optimade package describes them."""
    from optimade.models import StructureResource
    from optimade.server.schemas import retrieve_queryable_properties

    found = retrieve_queryable_properties(StructureResource, {"id", "type", "attributes"})
    return {
        name: {k: (v.value if hasattr(v, "value") else v) for k, v in spec.items()}
        for name, spec in found.items()
    }


def provider_properties(mapped: Iterable[Mapped]) -> dict[str, dict[str, Any]]:
    """The ``_matgate_`` properties of the mapped datasets a caller may see."""
    out: dict[str, dict[str, Any]] = {}
    for m in mapped:
        for prop, column in m.fields.items():
            if prop in out:
                continue
            col = m.dataset.column(column)
            spec: dict[str, Any] = {
                "description": col.description or f"{column} of {m.dataset.id}",
                "type": _TYPES[col.type],
                "sortable": True,
                "queryable": "must",
            }
            if col.unit:
                spec["unit"] = col.unit
            out[prop] = spec
    return out
