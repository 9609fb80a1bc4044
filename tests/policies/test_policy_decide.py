"""Allow/deny matrix: principal, dataset, action, purpose, columns -> decision, columns, rows."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from policy_world import (
    ALICE,
    BOB,
    CAROL,
    CONFIG,
    DAN,
    DATASETS,
    MALLORY,
    MASK_KEY,
    RIVAL,
)

from connectors.filterparser import unparse
from policies import Action, Governance, ObligationKind, PolicyConfig, Principal

ALL = ("sample_id", "alloy", "yield_strength", "operator", "supplier_price", "year", "released")
EMB = '(released IS UNKNOWN OR released <= "2026-06-01T12:00:00+00:00")'
EMB_ALONE = EMB[1:-1]

# principal, dataset, action, purpose, columns -> allowed, columns, withheld, masks, rows, reason
MATRIX: list[tuple[Any, ...]] = [
    # owner's member: everything, no embargo filter
    (ALICE, "tensile", "read", "research", None, True, ALL, (), {}, None, "allowed"),
    (ALICE, "tensile", "read", "commercial", None, True, ALL, (), {}, None, "allowed"),
    (ALICE, "future", "read", "research", None, True, ALL, (), {}, None, "allowed"),
    (ALICE, "tensile", "train", "ml-training", None, True, ALL, (), {}, None, "allowed"),
    (ALICE, "tensile-nc", "read", "commercial", None, False, (), (), {}, None, "non-commercial"),
    (ALICE, "secret", "read", "research", None, False, (), (), {}, None, "requires an agreement"),
    (ALICE, "xrd", "read", "research", None, False, (), (), {}, None, "no policy line"),
    # partner by institution: withheld (dropped) columns and a row rule
    (
        BOB, "tensile", "read", "research", None, True,
        ("sample_id", "alloy", "yield_strength", "year", "released"),
        ("operator", "supplier_price"), {}, f"year >= 2020 AND {EMB}", "withheld",
    ),
    # explicit columns: permitted ones pass, a withheld one is refused with the reason
    (
        BOB, "tensile", "read", "research", ["yield_strength", "sample_id"], True,
        ("sample_id", "yield_strength"), ("operator", "supplier_price"), {},
        f"year >= 2020 AND {EMB}", "allowed",
    ),
    (BOB, "tensile", "read", "research", ["operator"], False, (), (), {}, None, "withheld"),
    (BOB, "tensile", "read", "research", ["colour"], False, (), (), {}, None, "no column"),
    # each mask kind: null (keep list), redact, hash (glob line, joined with another allow: row
    # rules are ORed in policy order)
    (
        BOB, "tensile", "read", "education", None, True, ALL, (),
        {"operator": "null", "supplier_price": "null", "year": "null", "released": "null"},
        EMB_ALONE, "masked",
    ),
    (BOB, "tensile", "read", "publication", None, True, ALL, (), {"operator": "redact"},
     EMB_ALONE, "masked"),
    (
        BOB, "tensile-nc", "read", "research", None, True, ALL, (),
        {"operator": "hash", "supplier_price": "hash"}, "year >= 2020 OR year >= 2010", "masked",
    ),
    (BOB, "tensile-nc", "read", "commercial", None, False, (), (), {}, None, "non-commercial"),
    (BOB, "tensile", "read", "commercial", None, False, (), (), {}, None, "no policy line"),
    (BOB, "tensile", "read", "benchmarking", None, False, (), (), {}, None, "not been accepted"),
    (BOB, "tensile", "read", "nonsense", None, False, (), (), {}, None, "unknown purpose"),
    (BOB, "tensile", "train", "ml-training", None, True, ALL, (), {}, EMB_ALONE, "allowed"),
    (BOB, "tensile", "train", "commercial", None, False, (), (), {}, None, "denied by"),
    (BOB, "tensile", "discover", "*", None, True, (), (), {}, None, "discoverable"),
    (BOB, "future", "discover", "*", None, True, (), (), {}, None, "discoverable"),
    (BOB, "future", "read", "research", None, False, (), (), {}, None, "embargo"),
    (BOB, "secret", "read", "research", None, False, (), (), {}, None, "requires an agreement"),
    (BOB, "xrd", "read", "research", None, False, (), (), {}, None, "no policy line"),
    # a role that policy names may read during the embargo
    (CAROL, "future", "read", "research", None, True, ALL, (), {}, None, "waived"),
    # restrictive deny: a column more withheld, rows excluded; discovery untouched
    (
        DAN, "tensile", "read", "research", None, True,
        ("sample_id", "yield_strength", "year", "released"),
        ("alloy", "operator", "supplier_price"), {},
        f'year >= 2020 AND NOT alloy STARTS "Ti" AND {EMB}', "withheld",
    ),
    (DAN, "tensile", "discover", "*", None, True, (), (), {}, None, "discoverable"),
    # an explicit deny overrides the allow every partner has
    (MALLORY, "tensile", "read", "research", None, False, (), (), {}, None, "denied by"),
    (MALLORY, "tensile-nc", "read", "research", None, False, (), (), {}, None, "denied by"),
    # another institution's steward and member: nothing here, not even discovery
    (RIVAL, "tensile", "discover", "*", None, False, (), (), {}, None, "no policy line"),
    (RIVAL, "tensile", "read", "research", None, False, (), (), {}, None, "no policy line"),
    (RIVAL, "xrd", "read", "research", None, False, (), (), {}, None, "no policy line"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "ds", "action", "purpose", "cols", "allowed", "columns", "withheld", "masks", "rows",
     "reason"),
    MATRIX,
    ids=[f"{r[0].subject}-{r[1]}-{r[2]}-{r[3]}-{r[4]}" for r in MATRIX],
)  # fmt: skip
def test_matrix(
    gov: Governance,
    who: Principal,
    ds: str,
    action: str,
    purpose: str,
    cols: list[str] | None,
    allowed: bool,
    columns: tuple[str, ...],
    withheld: tuple[str, ...],
    masks: dict[str, str],
    rows: str | None,
    reason: str,
) -> None:
    decision = gov.decide(who, DATASETS[ds], action, purpose, cols)
    assert decision.allowed is allowed, decision.reasons
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.policy_version == gov.version == 1
    assert decision.dataset_id == DATASETS[ds].id
    if action != "discover":
        assert decision.columns == columns
        assert decision.withheld == withheld
        assert {n: m.kind.value for n, m in decision.masks.items()} == masks
        text = unparse(decision.row_filter) if decision.row_filter is not None else None
        assert text == rows
    if allowed:
        assert decision.matched, "an allow names the lines that matched"


def test_hash_mask_carries_the_node_key(gov: Governance) -> None:
    decision = gov.decide(BOB, DATASETS["tensile-nc"], Action.READ, "research")
    assert decision.masks["operator"].key == MASK_KEY
    assert decision.mask_key_id == decision.summary()["mask_key"] == "node:test"


def test_without_a_mask_key_hashed_columns_are_refused(engine: sa.Engine) -> None:
    gov = Governance(engine, PolicyConfig.model_validate(CONFIG))
    gov.seed(DATASETS.values())
    decision = gov.decide(BOB, DATASETS["tensile-nc"], Action.READ, "research")
    assert not decision.allowed and "no mask key" in decision.reasons[0]


def test_obligations_follow_the_licence(gov: Governance) -> None:
    by = gov.decide(BOB, DATASETS["tensile"], Action.READ, "research")
    assert [(o.kind, o.detail) for o in by.obligations] == [
        (ObligationKind.ATTRIBUTE, "NIMS tensile (2026)")
    ]
    nc = gov.decide(BOB, DATASETS["tensile-nc"], Action.READ, "research")
    assert {o.kind for o in nc.obligations} == {
        ObligationKind.ATTRIBUTE,
        ObligationKind.SHARE_ALIKE,
        ObligationKind.NON_COMMERCIAL,
    }
    cc0 = gov.decide(CAROL, DATASETS["future"], Action.READ, "research")
    assert cc0.obligations == ()


def test_summary_is_json_ready(gov: Governance) -> None:
    summary = gov.decide(DAN, DATASETS["tensile"], Action.READ, "research").summary()
    assert summary["withheld"] == ["alloy", "operator", "supplier_price"]
    assert summary["row_filter"].startswith("year >= 2020")
    assert summary["policy_version"] == 1


def test_catalog_lists_only_discoverable(gov: Governance) -> None:
    names = lambda who: [d.name for d in gov.discoverable(who, DATASETS.values())]  # noqa: E731
    assert names(BOB) == ["tensile", "tensile-nc", "secret", "future"]
    assert names(ALICE) == ["tensile", "tensile-nc", "secret", "future"]
    assert names(RIVAL) == []


def test_empty_policy_denies_everything(engine: sa.Engine) -> None:
    gov = Governance(
        engine, PolicyConfig.model_validate({**CONFIG, "lines": [], "assignments": []})
    )
    gov.seed(DATASETS.values())
    assert gov.version == 0
    for who in (ALICE, BOB, RIVAL):
        for ds in DATASETS.values():
            for action in (Action.DISCOVER, Action.READ, Action.TRAIN):
                decision = gov.decide(who, ds, action, "research")
                assert not decision.allowed
                assert decision.policy_version == 0
            assert not gov.check_domain(who, ds.institution, Action.MANAGE).allowed
