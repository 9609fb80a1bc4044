"""Decisions from the compiled indexes equal those of a line-by-line reading, on random policies.

Each example writes a random policy (role, user, institution and public lines, on names, globs
and ``*``; allow, deny and restrictive deny lines; kept, withheld and masked columns; row rules;
agreements and embargo waivers; role grants to users and partner institutions) through
Governance into SQLite, accepts some agreements, and asks random requests. Governance decides
from its bulk-loaded, compiled policy; the oracle (``reference_policy``) reads the same rules
through Casbin's own adapter and walks every line per request; Casbin's enforcer answers the
allow/deny part. All three must agree, decision for decision.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_world import CONFIG, MASK_KEY, T0, Clock, make_dataset
from reference_policy import ReferencePolicy

from policies import Action, Governance, PolicyConfig, PolicyLine, Principal, RoleAssignment
from policies.evaluate import Context, evaluate
from policies.principals import ANONYMOUS

ROLES = ["member", "partner", "trusted"]
USERS = ["kyoto:bob", "kyoto:carol", "nims:alice", "nims:dan", "rival:rita"]
INSTITUTIONS = ["nims", "kyoto", "rival"]
DOMAINS = ["nims", "kyoto"]
NAMES = ["tensile", "tensile-nc", "secret", "future", "film-1"]
PATTERNS = [*NAMES, "tensile-*", "film-*", "*"]
PURPOSES = ["research", "commercial", "education"]
SELECTORS = [
    "operator",
    "supplier_price",
    "alloy",
    "sensitivity:personal",
    "sensitivity:confidential",
    "pspp:property",
    "pspp:condition",
]
ROWS = ["year >= 2020", 'alloy STARTS "Ti"', "year < 2015", "yield_strength > 100"]
FUTURE = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
DATASETS = [
    make_dataset("nims", "tensile", "CC-BY-4.0", embargo_column="released"),
    make_dataset("nims", "tensile-nc", "CC-BY-NC-SA-4.0"),
    make_dataset("nims", "secret", "LicenseRef-nims-terms"),
    make_dataset("nims", "future", "CC0-1.0", embargo_until=FUTURE),
    make_dataset("nims", "film-1", "CC0-1.0"),
    make_dataset("kyoto", "tensile", "CC-BY-4.0"),
    make_dataset("kyoto", "tensile-nc", "CC-BY-NC-SA-4.0", embargo_column="released"),
    make_dataset("kyoto", "secret", "CC-BY-4.0"),
    make_dataset("kyoto", "future", "CC-BY-4.0", embargo_until=FUTURE),
    make_dataset("kyoto", "film-1", "CC-BY-4.0", embargo_column="released"),
]
PRINCIPALS = [
    Principal("bob", "kyoto"),
    Principal("carol", "kyoto", frozenset({"member"})),
    Principal("alice", "nims", frozenset({"member"})),
    Principal("dan", "nims", frozenset({"partner", "trusted"})),
    Principal("rita", "rival"),
    Principal("eve", "kyoto", frozenset({"trusted"})),
    ANONYMOUS,
]
REQUESTS = [
    (who, ds, action, purpose)
    for who in PRINCIPALS
    for ds in DATASETS
    for action, purpose in [
        (Action.DISCOVER, "*"),
        *((a, p) for a in (Action.READ, Action.TRAIN) for p in PURPOSES),
        (Action.EXPORT_MODEL, "research"),
    ]
]
COLUMN_ASKS = [None, None, None, ("sample_id", "yield_strength"), ("operator",), ("year",)]


@st.composite
def lines(draw: st.DrawFn) -> dict[str, Any]:
    """One valid policy line."""
    kind = draw(st.sampled_from(["role", "role", "user", "institution", "public"]))
    who: dict[str, Any] = {
        "role": {"role": draw(st.sampled_from(ROLES))},
        "user": {"user": draw(st.sampled_from(USERS))},
        "institution": {"institution": draw(st.sampled_from(INSTITUTIONS))},
        "public": {"public": True},
    }[kind]
    public = kind == "public"
    actions = ["discover", "read"] if public else ["discover", "read", "train", "export-model"]
    action = draw(st.sampled_from(actions))
    line: dict[str, Any] = {
        **who,
        "domain": draw(st.sampled_from(DOMAINS)),
        "dataset": draw(st.sampled_from(PATTERNS)),
        "action": action,
        "purpose": draw(st.sampled_from([*PURPOSES, "*"])),
        "effect": draw(st.sampled_from(["allow", "allow", "deny"])),
    }
    shaped = action in ("read", "train")
    if shaped and draw(st.booleans()):
        cols = draw(st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=3, unique=True))
        line["keep" if draw(st.integers(0, 3)) == 0 else "withhold"] = cols
        line["mask"] = draw(st.sampled_from(["drop", "null", "redact", "hash"]))
    if shaped and draw(st.integers(0, 2)) == 0:
        line["rows"] = draw(st.sampled_from(ROWS))
    if line["effect"] == "allow" and not public and draw(st.integers(0, 5)) == 0:
        line["agreement"] = draw(st.sampled_from(["nims-terms", "tensile-dua"]))
    if line["effect"] == "allow" and draw(st.integers(0, 4)) == 0:
        line["embargo"] = True
    return line


grants = st.builds(
    lambda who, role, domain: {**who, "role": role, "domain": domain},
    st.one_of(
        st.sampled_from(USERS).map(lambda u: {"user": u}),
        st.sampled_from(INSTITUTIONS).map(lambda i: {"institution": i}),
    ),
    st.sampled_from(ROLES),
    st.sampled_from(DOMAINS),
)


def _governance(tmp: Path, policy: list[dict[str, Any]], assigned: list[dict[str, Any]]) -> Any:
    config = PolicyConfig.model_validate(
        {
            **{k: v for k, v in CONFIG.items() if k not in ("lines", "assignments")},
            "lines": [{"role": "steward", "domain": d, "action": "manage"} for d in DOMAINS]
            + policy,
            "assignments": assigned,
        }
    )
    engine = sa.create_engine(f"sqlite:///{tmp}")
    gov = Governance(
        engine, config, clock=Clock(T0), cache=False, mask_key=MASK_KEY, mask_key_id="k"
    )
    gov.seed(DATASETS)
    return engine, gov


def _compare(gov: Governance, asks: list[tuple[int, tuple[str, ...] | None]]) -> list[Any]:
    """Decide each request with Governance and with the oracle; the two must be equal."""
    casbin = gov._store.reference()
    enforcer = casbin._enforcer
    oracle = ReferencePolicy(
        gov.version,
        [tuple(r) for r in enforcer.get_policy()],
        [tuple(r) for r in enforcer.get_grouping_policy()],
    )
    ctx = Context(gov.purposes, gov.licences, gov._book, MASK_KEY, "k")
    out = []
    for index, columns in asks:
        who, ds, action, purpose = REQUESTS[index]
        fast = gov.decide(who, ds, action, purpose, columns)
        slow, _ = evaluate(ctx, oracle, who, ds, action, purpose, columns, T0)  # type: ignore[arg-type]
        assert fast == slow, (who, ds.id, action, purpose, columns)
        m = oracle.match(who, ds.institution, ds.name, action.value, purpose)
        plain = casbin.enforce(who, ds.institution, ds.name, action.value, purpose)
        assert plain == (bool(m.allows) and not m.denies), (who, ds.id, action, purpose)
        out.append(fast)
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policy=st.lists(lines(), min_size=1, max_size=40),
    assigned=st.lists(grants, max_size=8),
    accepted=st.lists(
        st.tuples(st.sampled_from(PRINCIPALS[:6]), st.sampled_from(["nims-terms", "tensile-dua"])),
        max_size=4,
    ),
    asks=st.lists(
        st.tuples(st.integers(0, len(REQUESTS) - 1), st.sampled_from(COLUMN_ASKS)),
        min_size=40,
        max_size=80,
    ),
)
def test_compiled_decisions_equal_the_line_by_line_reading(
    tmp_path_factory: Any,
    policy: list[dict[str, Any]],
    assigned: list[dict[str, Any]],
    accepted: list[tuple[Principal, str]],
    asks: list[tuple[int, tuple[str, ...] | None]],
) -> None:
    unique = list({PolicyLine.model_validate(x).to_rule(): x for x in policy}.values())
    grants_ = list({RoleAssignment.model_validate(x).to_rule(): x for x in assigned}.values())
    engine, gov = _governance(tmp_path_factory.mktemp("index") / "n.db", unique, grants_)
    try:
        for who, agreement in accepted:
            gov.accept(who, agreement)
        _compare(gov, asks)
    finally:
        engine.dispose()


def test_the_test_world_decides_alike_and_uses_every_feature(tmp_path: Path) -> None:
    """The hand-written policy of ``policy_world``: every request, decided both ways."""
    engine, gov = _governance(tmp_path / "n.db", list(CONFIG["lines"]), list(CONFIG["assignments"]))
    try:
        gov.accept(PRINCIPALS[0], "tensile-dua")
        decisions = _compare(gov, [(i, c) for i in range(len(REQUESTS)) for c in COLUMN_ASKS])
    finally:
        engine.dispose()
    allowed = [d for d in decisions if d.allowed]
    assert 20 < len(allowed) < len(decisions) - 20
    assert any(d.masks for d in allowed) and any(d.withheld for d in allowed)
    assert any(d.row_filter is not None for d in allowed)
    assert any("agreement" in " ".join(d.reasons) for d in decisions if not d.allowed)
    assert any("embargo" in " ".join(d.reasons) for d in decisions)
