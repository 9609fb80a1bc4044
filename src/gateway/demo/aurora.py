"""Aurora, the first demo institution: a SQLite database and a folder of Parquet/CSV files.

Aurora holds the four shipped datasets whole. Borealis is its partner: it reads the superalloys
for research only (the personal column hashed, the confidential one withheld, embargoed rows
hidden), the band gaps and elements for any purpose, and the steels once it accepted the terms.
The band gaps are published data: anyone may read them, without a token.
"""

from __future__ import annotations

from typing import Any

from gateway.demo import datasets as catalog
from gateway.demo.policy import ROLES, house_lines

__all__ = ["AURORA", "BOREALIS", "aurora_policy", "datasets", "stores"]

AURORA = "aurora"
BOREALIS = "borealis"


def stores() -> dict[str, dict[str, str]]:
    """Aurora's embedded stores, relative to its folder."""
    return {
        "lab": {"kind": "sql", "url": "sqlite:///stores/lab.db"},
        "files": {"kind": "files", "path": "stores/files"},
    }


def datasets(lab: str = "lab", files: str = "files") -> list[dict[str, Any]]:
    """Aurora's catalog entries, in stores named ``lab`` (SQL) and ``files``."""
    return [
        catalog.ni_superalloys(lab),
        catalog.steels_yield(lab),
        catalog.expt_gap(files),
        catalog.magpie_elements(files),
    ]


def aurora_policy() -> dict[str, Any]:
    """The demo's access policy, as a data steward would write it."""
    inst = AURORA
    return {
        "roles": ROLES,
        "assignments": [{"institution": BOREALIS, "role": "partner", "domain": inst}],
        "agreements": [
            {
                "id": "aurora-steels-terms",
                "title": "Aurora steel data terms",
                "terms": "Research use only; cite Matbench; do not redistribute the rows.",
                "dataset": f"{inst}/steels-yield",
                "acceptance_days": 365,
            }
        ],
        "lines": [
            *house_lines(inst),
            {
                "role": "partner",
                "domain": inst,
                "dataset": "ni-superalloys",
                "action": "read",
                "purpose": "research",
                "withhold": ["sensitivity:personal"],
                "mask": "hash",
            },
            {
                "effect": "deny",
                "role": "partner",
                "domain": inst,
                "dataset": "ni-superalloys",
                "action": "read",
                "withhold": ["sensitivity:confidential"],
            },
            {"role": "partner", "domain": inst, "dataset": "expt-gap", "action": "read"},
            # Published data: anyone may find and read it, harvesters and OPTIMADE clients too.
            {"public": True, "domain": inst, "dataset": "expt-gap", "action": "read"},
            {
                "role": "partner",
                "domain": inst,
                "dataset": "steels-yield",
                "action": "read",
                "agreement": "aurora-steels-terms",
            },
            {"role": "partner", "domain": inst, "dataset": "magpie-elements", "action": "read"},
        ],
    }
