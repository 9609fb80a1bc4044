"""Cygnus, the third demo institution: its own SQLite database, an embargo and a masked column.

Cygnus holds two re-cuts of the shipped data, each made by a stated, deterministic rule: the
halides (F, Cl, Br or I, without O) of the experimental band gaps, under a dataset-level embargo
its steward set for the demo, and the steels that contain at least 1 at.% cobalt, with a
synthetic ``supplier`` column that is confidential: partners see it redacted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from gateway.demo.borealis import elements
from gateway.demo.datasets import DATA, _col, expt_gap, steels_yield
from gateway.demo.policy import ROLES, house_lines

__all__ = [
    "CYGNUS",
    "EMBARGO_DAYS",
    "cobalt_steels",
    "embargo_until",
    "halide_gaps",
    "policy",
    "read_cobalt_steels",
    "read_halide_gaps",
]

CYGNUS = "cygnus"
EMBARGO_DAYS = 120
HALOGENS = frozenset({"F", "Cl", "Br", "I"})
SUPPLIERS = ("Nordic Steelworks", "Kestrel Alloys", "Vega Metals")
_AMOUNT = re.compile(r"([A-Z][a-z]?)([0-9.]+)")


def embargo_until(now: dt.datetime) -> dt.datetime:
    """The halide cut's embargo: midnight UTC, ``EMBARGO_DAYS`` after ``now``."""
    day = (now + dt.timedelta(days=EMBARGO_DAYS)).date()
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def halide_gaps(store: str, now: dt.datetime, table: str = "halide_gaps") -> dict[str, Any]:
    """Catalog entry of the halides cut of the experimental band gaps (embargoed)."""
    entry = expt_gap(store, table)
    entry.update(
        name="halide-gaps",
        title="Experimental band gaps of halides",
        description=(
            "The 243 compounds of Matbench matbench_expt_gap whose formula contains F, Cl, Br or "
            "I and no O, with their experimentally measured band gaps; a re-cut of the public "
            "dataset, rows unchanged. The embargo is a demo setting of Cygnus's steward: other "
            "institutions may find the dataset but not read it until the date."
        ),
        keywords=["band gap", "halide", "electronic", "experimental", "matbench"],
        embargo_until=embargo_until(now),
    )
    return entry


def read_halide_gaps() -> pa.Table:
    """The rows of expt_gap.csv with a halogen and without oxygen."""
    table = pacsv.read_csv(DATA / "expt_gap.csv")
    formulas = table.column("formula").to_pylist()
    keep = [bool(elements(f) & HALOGENS) and "O" not in elements(f) for f in formulas]
    return table.filter(pa.array(keep))


def cobalt(formula: str) -> float:
    """The atomic fraction of Co in a steel's formula (0 when absent)."""
    amounts = {el: float(x) for el, x in _AMOUNT.findall(formula)}
    return amounts.get("Co", 0.0)


def cobalt_steels(store: str, table: str = "cobalt_steels") -> dict[str, Any]:
    """Catalog entry of the cobalt-bearing steels, with a confidential synthetic supplier."""
    entry = steels_yield(store, table)
    entry.update(
        name="cobalt-steels",
        title="Yield strength of cobalt-bearing steels",
        description=(
            "The 193 steels of Matbench matbench_steels with at least 1 at.% cobalt "
            "(maraging-type compositions) and their yield strength; a re-cut of the public "
            "dataset, rows unchanged. The supplier column is synthetic, added by the demo to "
            "exercise a confidential column."
        ),
        keywords=["steel", "cobalt", "maraging", "yield strength", "matbench"],
    )
    entry["columns"] = [
        *entry["columns"],
        _col(
            "supplier",
            "string",
            "identifier",
            description="Who supplied the heat (synthetic)",
            sensitivity="confidential",
            synthetic=True,
        ),
    ]
    return entry


def read_cobalt_steels() -> pa.Table:
    """The steels with Co >= 0.01, and a supplier picked from a hash of the formula."""
    table = pacsv.read_csv(DATA / "steels_yield.csv")
    formulas = table.column("formula").to_pylist()
    table = table.filter(pa.array([cobalt(f) >= 0.01 for f in formulas]))
    picks = [
        int(hashlib.sha256(f.encode()).hexdigest()[:8], 16) for f in table["formula"].to_pylist()
    ]
    return table.append_column("supplier", pa.array([SUPPLIERS[p % len(SUPPLIERS)] for p in picks]))


def policy() -> dict[str, Any]:
    """Cygnus's access policy, as its data steward would write it."""
    inst = CYGNUS
    return {
        "roles": ROLES,
        "assignments": [
            {"institution": "aurora", "role": "partner", "domain": inst},
            {"institution": "borealis", "role": "partner", "domain": inst},
        ],
        "lines": [
            *house_lines(inst),
            # Without `embargo = true` this line waits for the dataset's embargo to end.
            {
                "role": "partner",
                "domain": inst,
                "dataset": "halide-gaps",
                "action": "read",
                "purpose": "research",
            },
            {
                "role": "partner",
                "domain": inst,
                "dataset": "cobalt-steels",
                "action": "read",
                "purpose": "research",
                "withhold": ["sensitivity:confidential"],
                "mask": "redact",
            },
        ],
    }
