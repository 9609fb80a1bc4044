"""A small federation for governance tests: NIMS owns datasets, Kyoto is a partner, Rival is not."""

from __future__ import annotations

import datetime as dt

from connectors.datasets import Column, ColumnType, Dataset, PSPPRole, Sensitivity, Store
from policies import Principal

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
EMBARGO = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move forward."""
        self.now += dt.timedelta(**delta)


def _col(
    name: str,
    kind: ColumnType,
    pspp: PSPPRole,
    sensitivity: Sensitivity = Sensitivity.PUBLIC,
) -> Column:
    return Column(name=name, type=kind, pspp=pspp, sensitivity=sensitivity)


COLUMNS = (
    _col("sample_id", ColumnType.STRING, PSPPRole.IDENTIFIER),
    _col("alloy", ColumnType.STRING, PSPPRole.PROCESSING),
    _col("yield_strength", ColumnType.FLOAT, PSPPRole.PROPERTY),
    _col("operator", ColumnType.STRING, PSPPRole.CONDITION, Sensitivity.PERSONAL),
    _col("supplier_price", ColumnType.FLOAT, PSPPRole.CONDITION, Sensitivity.CONFIDENTIAL),
    _col("year", ColumnType.INTEGER, PSPPRole.CONDITION),
    _col("released", ColumnType.TIMESTAMP, PSPPRole.CONDITION),
)


def make_dataset(institution: str, name: str, licence: str, **extra: object) -> Dataset:
    """A dataset with the shared tensile schema."""
    return Dataset.model_validate(
        {
            "institution": institution,
            "name": name,
            "title": f"{name} of {institution}",
            "license": licence,
            "citation": f"{institution.upper()} {name} (2026)",
            "location": Store(store="main", table=name.replace("-", "_")),
            "columns": COLUMNS,
            **extra,
        }
    )


DATASETS = {
    "tensile": make_dataset("nims", "tensile", "CC-BY-4.0", embargo_column="released"),
    "tensile-nc": make_dataset("nims", "tensile-nc", "CC-BY-NC-SA-4.0"),
    "secret": make_dataset("nims", "secret", "LicenseRef-nims-terms"),
    "future": make_dataset("nims", "future", "CC0-1.0", embargo_until=EMBARGO),
    "xrd": make_dataset("kyoto", "xrd", "CC0-1.0"),
}

MASK_KEY = b"test-mask-key-of-32-bytes-length"

CONFIG = {
    "purposes": ["benchmarking"],
    "roles": ["steward", "auditor", "member", "partner", "trusted"],
    "licences": [
        {
            "id": "LicenseRef-nims-terms",
            "title": "NIMS terms",
            "attribution": True,
            "non_commercial": True,
            "no_redistribution": True,
            "requires_agreement": "nims-terms",
        }
    ],
    "agreements": [
        {
            "id": "nims-terms",
            "title": "NIMS terms of use",
            "terms": "Research only. Cite. Do not redistribute.",
            "institution": "nims",
            "valid_until": "2028-01-01T00:00:00Z",
            "acceptance_days": 90,
        },
        {
            "id": "tensile-dua",
            "title": "Tensile data use agreement",
            "terms": "Do not attempt re-identification of operators.",
            "dataset": "nims/tensile",
        },
    ],
    "assignments": [
        {"institution": "kyoto", "role": "partner", "domain": "nims"},
        {"user": "kyoto:carol", "role": "trusted", "domain": "nims"},
        {"user": "kyoto:erin", "role": "steward", "domain": "kyoto"},
    ],
    "lines": [
        {"role": "steward", "domain": "nims", "action": "manage"},
        {"role": "auditor", "domain": "nims", "action": "audit"},
        {"role": "steward", "domain": "kyoto", "action": "manage"},
        {"role": "member", "domain": "nims", "action": "read"},
        {"role": "member", "domain": "nims", "action": "train"},
        {"role": "member", "domain": "kyoto", "action": "read"},
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile-*",
            "action": "read",
            "purpose": "research",
            "withhold": ["sensitivity:personal", "supplier_price"],
            "mask": "hash",
            "rows": "year >= 2020",
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile",
            "action": "read",
            "purpose": "research",
            "withhold": ["sensitivity:personal", "sensitivity:confidential"],
            "rows": "year >= 2020",
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile",
            "action": "read",
            "purpose": "education",
            "keep": ["sample_id", "alloy", "yield_strength"],
            "mask": "null",
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile",
            "action": "read",
            "purpose": "publication",
            "withhold": ["operator"],
            "mask": "redact",
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile",
            "action": "read",
            "purpose": "benchmarking",
            "agreement": "tensile-dua",
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile-nc",
            "action": "read",
            "keep": ["sample_id"],
            "rows": "year >= 2010",
        },
        {"role": "partner", "domain": "nims", "dataset": "secret", "action": "read"},
        {"role": "partner", "domain": "nims", "dataset": "future", "action": "discover"},
        {"role": "partner", "domain": "nims", "dataset": "future", "action": "read"},
        {
            "role": "trusted",
            "domain": "nims",
            "dataset": "future",
            "action": "read",
            "embargo": True,
        },
        {
            "role": "partner",
            "domain": "nims",
            "dataset": "tensile",
            "action": "train",
            "purpose": "ml-training",
        },
        {
            "effect": "deny",
            "user": "kyoto:mallory",
            "domain": "nims",
            "action": "read",
        },
        {
            "effect": "deny",
            "user": "kyoto:dan",
            "domain": "nims",
            "dataset": "tensile",
            "action": "read",
            "withhold": ["alloy"],
            "rows": 'alloy STARTS "Ti"',
        },
        {
            "effect": "deny",
            "role": "partner",
            "domain": "nims",
            "action": "train",
            "purpose": "commercial",
        },
    ],
}

ALICE = Principal("alice", "nims", frozenset({"member"}))
STEVE = Principal("steve", "nims", frozenset({"steward"}))
AUDREY = Principal("audrey", "nims", frozenset({"auditor"}))
BOB = Principal("bob", "kyoto")
CAROL = Principal("carol", "kyoto")
DAN = Principal("dan", "kyoto")
ERIN = Principal("erin", "kyoto")
MALLORY = Principal("mallory", "kyoto")
RIVAL = Principal("rita", "rival", frozenset({"steward", "member"}))
