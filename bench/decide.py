"""Policy load and decisions per second with 100,000 policy lines, against the previous version.

A synthetic federation: 40 institutions of 125 datasets each (eight families, twelve columns of
mixed sensitivity and PSPP role, some under embargo or with an embargo column, four licences),
60 roles, 8 purposes, institution- and dataset-scoped agreements with acceptances, and policy
lines for roles, users, partner institutions and the public, on dataset names, family globs and
``*``, with deny lines, withheld, kept and masked columns, row rules, agreements and embargo
waivers. The baseline is the previous implementation, kept in ``bench/previous`` (rules loaded
through Casbin's ``Enforcer.load_policy``, validated line by line, matched by scanning each
subject's candidates), measured in the same run on the same database, principals and requests;
every decision of the two is compared. Run:
``.venv/bin/python bench/decide.py`` (a few minutes on two cores; ``--lines`` to resize).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import casbin
import sqlalchemy as sa
from previous.compiled import CompiledPolicy as PreviousPolicy
from previous.evaluate import Context as PreviousContext
from previous.evaluate import evaluate as previous_evaluate

from connectors.datasets import Column, ColumnType, Dataset, PSPPRole, Sensitivity, Store
from connectors.filterparser import unparse
from connectors.filters import And, Filter, Not, Or
from policies import Action, Decision, Governance, PolicyConfig, PolicyLine, Principal
from policies.compiled import forget
from policies.enforcer import MODEL, CasbinRule, _RuleAdapter
from policies.store import policy_changes

INSTITUTIONS = [f"inst{i:02d}" for i in range(40)]
ROLES = [f"role{i:02d}" for i in range(60)]
EXTRA_PURPOSES = ["benchmarking", "teaching", "screening"]
PURPOSES = ["research", "ml-training", "education", "publication", "commercial", *EXTRA_PURPOSES]
FAMILIES = ["alloy", "film", "powder", "xrd", "dft", "creep", "fatigue", "tensile"]
DATASETS_PER_INSTITUTION = 125
USERS_PER_INSTITUTION = 250
LICENCES = ["CC-BY-4.0", "CC-BY-4.0", "CC-BY-NC-4.0", "CC0-1.0", "CC-BY-SA-4.0"]
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _col(name: str, kind: ColumnType, pspp: PSPPRole, sens: Sensitivity) -> Column:
    return Column(name=name, type=kind, pspp=pspp, sensitivity=sens)


P, C, F, S, T, I = (  # noqa: E741
    Sensitivity.PUBLIC,
    Sensitivity.CONFIDENTIAL,
    ColumnType.FLOAT,
    ColumnType.STRING,
    ColumnType.TIMESTAMP,
    ColumnType.INTEGER,
)
COLUMNS = (
    _col("sample_id", S, PSPPRole.IDENTIFIER, P),
    _col("composition", S, PSPPRole.STRUCTURE, P),
    _col("anneal_temp", F, PSPPRole.PROCESSING, P),
    _col("anneal_time", F, PSPPRole.PROCESSING, C),
    _col("grain_size", F, PSPPRole.STRUCTURE, P),
    _col("yield_strength", F, PSPPRole.PROPERTY, P),
    _col("elongation", F, PSPPRole.PROPERTY, P),
    _col("cost", F, PSPPRole.PERFORMANCE, C),
    _col("temperature", F, PSPPRole.CONDITION, P),
    _col("operator", S, PSPPRole.CONDITION, Sensitivity.PERSONAL),
    _col("lab", S, PSPPRole.CONDITION, P),
    _col("year", I, PSPPRole.CONDITION, P),
    _col("released", T, PSPPRole.CONDITION, P),
)
SELECTORS = [
    "sensitivity:personal",
    "sensitivity:confidential",
    "pspp:performance",
    "pspp:processing",
    "operator",
    "cost",
    "anneal_time",
    "lab",
]
KEEPS = [
    ["sample_id", "composition", "yield_strength"],
    ["pspp:structure", "pspp:property"],
    ["sample_id", "pspp:property", "temperature"],
]


def _rows(rng: random.Random) -> str:
    year = f"year >= {rng.randrange(1995, 2026)}"
    lab = f'lab = "{rng.choice(INSTITUTIONS)}"'
    temp = f"temperature < {rng.randrange(100, 1500, 50)}"
    return rng.choice([year, year, lab, temp, f"{year} AND {temp}", f"{lab} OR {year}"])


def datasets_of(rng: random.Random) -> list[Dataset]:
    """The federation's datasets."""
    out = []
    for inst in INSTITUTIONS:
        for d in range(DATASETS_PER_INSTITUTION):
            extra: dict[str, Any] = {}
            roll = rng.random()
            if roll < 0.05:
                extra["embargo_until"] = T0 + dt.timedelta(days=rng.randrange(1, 400))
            elif roll < 0.15:
                extra["embargo_column"] = "released"
            out.append(
                Dataset(
                    institution=inst,
                    name=f"{FAMILIES[d % len(FAMILIES)]}-{d:03d}",
                    title="bench",
                    license=rng.choice(LICENCES),
                    location=Store(store="s", table=f"t{d}"),
                    columns=COLUMNS,
                    **extra,
                )
            )
    return out


def _user(rng: random.Random) -> str:
    return f"{rng.choice(INSTITUTIONS)}:u{rng.randrange(USERS_PER_INSTITUTION)}"


def _line(rng: random.Random) -> dict[str, Any]:
    dom = rng.choice(INSTITUTIONS)
    kind = rng.random()
    who: dict[str, Any] = (
        {"role": rng.choice(ROLES)}
        if kind < 0.55
        else {"institution": rng.choice(INSTITUTIONS)}
        if kind < 0.75
        else {"user": _user(rng)}
        if kind < 0.95
        else {"public": True}
    )
    pattern = rng.random()
    n = rng.randrange(DATASETS_PER_INSTITUTION)
    dataset = (
        f"{FAMILIES[n % len(FAMILIES)]}-{n:03d}"
        if pattern < 0.7
        else f"{rng.choice(FAMILIES)}-*"
        if pattern < 0.9
        else "*"
    )
    actions = ["discover", "read"] if "public" in who else ["read", "read", "train", "discover"]
    action = rng.choice(actions)
    line: dict[str, Any] = {
        **who,
        "domain": dom,
        "dataset": dataset,
        "action": action,
        "purpose": "*" if rng.random() < 0.3 else rng.choice(PURPOSES),
    }
    roll = rng.random()
    if roll < 0.04:
        line["effect"] = "deny"
    elif roll < 0.10 and action != "discover":
        line["effect"] = "deny"
        if rng.random() < 0.5:
            line["withhold"] = rng.sample(SELECTORS[:4], 1)
        else:
            line["rows"] = _rows(rng)
    elif action != "discover":
        cols = rng.random()
        if cols < 0.4:
            line["withhold"] = rng.sample(SELECTORS, rng.randrange(1, 3))
            line["mask"] = rng.choice(["drop", "drop", "null", "redact", "hash"])
        elif cols < 0.55:
            line["keep"] = rng.choice(KEEPS)
            line["mask"] = rng.choice(["drop", "null"])
        if rng.random() < 0.3:
            line["rows"] = _rows(rng)
        if "public" not in who and rng.random() < 0.05:
            line["agreement"] = f"terms-{dom}"
        if rng.random() < 0.03:
            line["embargo"] = True
    return line


def build(
    rng: random.Random, lines: int, grants: int
) -> tuple[PolicyConfig, list[Dataset], list[Principal]]:
    """A synthetic federation of the benchmark's size."""
    datasets = datasets_of(rng)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for inst in INSTITUTIONS:
        for action in ("manage", "audit"):
            line = {"role": "steward", "domain": inst, "action": action}
            found[tuple(sorted(line.items()))] = line
    while len(found) < lines:
        line = _line(rng)
        found[tuple(sorted((k, str(v)) for k, v in line.items()))] = line
    assignments: dict[tuple[str, ...], dict[str, str]] = {}
    while len(assignments) < grants:
        inst = rng.choice(INSTITUTIONS)
        who = (
            {"user": f"{inst}:u{rng.randrange(USERS_PER_INSTITUTION)}"}
            if rng.random() < 0.9
            else {"institution": inst}
        )
        grant = {**who, "role": rng.choice(ROLES), "domain": rng.choice(INSTITUTIONS)}
        assignments[tuple(sorted(grant.items()))] = grant
    agreements = [
        {"id": f"terms-{inst}", "title": "terms", "terms": "cite", "institution": inst}
        for inst in INSTITUTIONS
    ]
    config = PolicyConfig.model_validate(
        {
            "purposes": EXTRA_PURPOSES,
            "roles": [*ROLES, "steward"],
            "agreements": agreements,
            "lines": list(found.values()),
            "assignments": list(assignments.values()),
        }
    )
    principals = [
        Principal(
            f"u{rng.randrange(USERS_PER_INSTITUTION)}",
            inst := rng.choice(INSTITUTIONS),
            frozenset(rng.sample(ROLES, rng.randrange(3))),
            namespace=inst,
        )
        for _ in range(10_000)
    ]
    return config, datasets, principals


Request = tuple[Principal, Dataset, Action, str]


def requests_of(
    rng: random.Random, principals: list[Principal], datasets: list[Dataset], count: int
) -> list[Request]:
    """``count`` distinct requests: read and train for a purpose, discover for any."""
    found: dict[tuple[Any, ...], Request] = {}
    while len(found) < count:
        action = rng.choice([Action.READ, Action.READ, Action.TRAIN, Action.DISCOVER])
        purpose = "*" if action is Action.DISCOVER else rng.choice(PURPOSES)
        who, ds = rng.choice(principals), rng.choice(datasets)
        found[(who.id, who.roles, ds.id, action, purpose)] = (who, ds, action, purpose)
    return list(found.values())


def rate(
    fn: Callable[[Principal, Dataset, Action, str], object], reqs: list[Request]
) -> tuple[float, float]:
    """Calls per second, timed as one loop: by the wall clock and by this process's CPU time
    (the fair figure on a machine shared with other work). A full collection first, so that no
    measurement pays for the garbage of what ran before it."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for who, ds, action, purpose in reqs:
        fn(who, ds, action, purpose)
    return len(reqs) / (time.perf_counter() - wall), len(reqs) / (time.process_time() - cpu)


def p99(fn: Callable[..., object], reqs: list[Request]) -> float:
    """The 99th percentile latency of the calls, in microseconds."""
    clock = time.perf_counter_ns
    samples = []
    for who, ds, action, purpose in reqs:
        t = clock()
        fn(who, ds, action, purpose)
        samples.append(clock() - t)
    return statistics.quantiles(samples, n=100)[98] / 1e3


def timed(fn: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """(wall seconds, CPU seconds) that one call takes, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def previous_load(engine: sa.Engine, before: PreviousPolicy | None = None) -> PreviousPolicy:
    """The previous load: Casbin's ``Enforcer.load_policy`` through the adapter, then compile."""
    adapter = _RuleAdapter(engine, db_class=CasbinRule, create_all_models=False)
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=MODEL), adapter)
    with engine.connect() as conn:
        version = conn.execute(sa.select(sa.func.max(policy_changes.c.version))).scalar()
    p_rules = [tuple(r) for r in enforcer.get_policy()]
    g_rules = [tuple(r) for r in enforcer.get_grouping_policy()]
    return PreviousPolicy(int(version or 0), p_rules, g_rules, before)


def _canonical(node: Filter | None) -> str | None:
    """A filter's text with the operands of AND and OR in a fixed order."""

    def sort(n: Filter) -> Filter:
        if isinstance(n, And | Or):
            items = sorted((sort(x) for x in n.items), key=unparse)
            return type(n)(tuple(items))
        if isinstance(n, Not):
            return Not(sort(n.item))
        return n

    return None if node is None else unparse(sort(node))


def same(a: Decision, b: Decision) -> bool:
    """Whether two decisions say the same (the previous order of matched lines was arbitrary)."""
    return (
        a.allowed == b.allowed
        and a.columns == b.columns
        and dict(a.masks) == dict(b.masks)
        and a.withheld == b.withheld
        and _canonical(a.row_filter) == _canonical(b.row_filter)
        and set(a.obligations) == set(b.obligations)
        and sorted(a.matched) == sorted(b.matched)
        and sorted(a.reasons) == sorted(b.reasons)
        and a.policy_version == b.policy_version
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--grants", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    t_config, (config, datasets, principals) = timed(lambda: build(rng, args.lines, args.grants))
    requests = requests_of(rng, principals, datasets, args.requests)
    asked = {(r[0].id, r[0].roles, r[1].id, r[2], r[3]) for r in requests}
    unseen = [
        r
        for r in requests_of(rng, principals, datasets, args.requests)
        if (r[0].id, r[0].roles, r[1].id, r[2], r[3]) not in asked
    ]
    print(
        f"{len(config.lines):,} lines, {len(config.assignments):,} role grants, "
        f"{len(datasets):,} datasets, {len(requests):,} distinct requests "
        f"(and {len(unseen):,} others, unseen)"
    )
    print(f"generate and validate the config: {t_config[0]:.1f} s (CPU {t_config[1]:.1f} s)")
    clock = lambda: T0  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        seeding = Governance(engine, config, clock=clock, mask_key=b"k" * 32, mask_key_id="k")
        t_seed, _ = timed(lambda: seeding.seed(datasets))
        print(
            f"seed (check against the datasets, write): {t_seed[0]:.1f} s (CPU {t_seed[1]:.1f} s)"
        )
        for who in principals[:300]:
            seeding.accept(who, f"terms-{who.institution}")
        loads: list[tuple[str, tuple[float, float], tuple[float, float]]] = []
        forget()
        t_prev, before = timed(lambda: previous_load(engine))
        t_new, gov = timed(
            lambda: Governance(
                engine, config, clock=clock, cache=False, mask_key=b"k" * 32, mask_key_id="k"
            )
        )
        loads.append(("load and compile, fresh process", t_prev, t_new))
        steward = Principal("boss", INSTITUTIONS[0], frozenset({"steward"}))
        change = {"role": ROLES[0], "domain": INSTITUTIONS[0], "action": "read", "rows": "year > 1"}
        seeding.add_lines(steward, INSTITUTIONS[0], [PolicyLine.model_validate(change)])
        t_prev2, _ = timed(lambda: previous_load(engine, before))
        t_new2, _ = timed(gov.sync)
        loads.append(("reload after a one-line change", t_prev2, t_new2))
        print(f"\n{'seconds (CPU seconds)':34} {'previous':>15} {'now':>15} {'speed-up':>9}")
        for name, a, b in loads:
            print(
                f"{name:34} {a[0]:7.2f} ({a[1]:5.2f}) {b[0]:7.2f} ({b[1]:5.2f}) {a[1] / b[1]:8.1f}x"
            )

        previous = previous_load(engine)
        ctx = PreviousContext(
            gov.purposes, gov.licences, gov._book, b"k" * 32, "k"
        )  # the same registries and acceptances

        def old(who: Principal, ds: Dataset, action: Action, purpose: str) -> Decision:
            return previous_evaluate(ctx, previous, who, ds, action, purpose, None, T0)[0]

        results: list[tuple[str, tuple[float, float], tuple[float, float], float]] = []
        gov._reload()  # a fresh version: its per-version indexes start empty
        cold_new = rate(gov.decide, requests)
        cold_old = rate(old, requests)
        results.append(("uncached, first touch of a version", cold_old, cold_new, 0.0))
        steady_old = rate(old, requests)
        steady_new = rate(gov.decide, requests)
        lat = p99(gov.decide, requests[:20_000])
        results.append(("uncached, steady", steady_old, steady_new, lat))
        # Requests never asked before, on the same version: only what other requests share
        # with them (merged index leaves, decisions per set of matched lines) is at hand.
        fresh_old = rate(old, unseen)
        fresh_new = rate(gov.decide, unseen)
        results.append(("uncached, unseen requests", fresh_old, fresh_new, 0.0))
        cached = Governance(engine, config, clock=clock, mask_key=b"k" * 32, mask_key_id="k")
        hot = requests[:2_000]
        for r in hot:
            cached.decide(*r)
        repeated = rate(cached.decide, hot * 100)
        results.append(
            ("cached (repeated requests)", (0.0, 0.0), repeated, p99(cached.decide, hot * 10))
        )
        agree = sum(same(old(*r), gov.decide(*r)) for r in requests)
        allowed = sum(gov.decide(*r).allowed for r in requests)
        engine.dispose()

    head = f"{'previous':>19} {'now':>19} {'speed-up':>9} {'p99 µs':>8}"
    print(f"\n{'decisions/s (CPU time)':34} {head}")
    for name, a, b, latency in results:
        ratio = f"{b[1] / a[1]:8.1f}x" if a[1] else f"{'-':>9}"
        prev = f"{a[0]:8,.0f} ({a[1]:8,.0f})" if a[1] else f"{'-':>19}"
        print(f"{name:34} {prev} {b[0]:8,.0f} ({b[1]:8,.0f}) {ratio} {latency:8.1f}")
    print(
        f"\nprevious and new decisions agree on {agree:,}/{len(requests):,} requests "
        f"({allowed:,} allowed)"
    )
    print("targets: load < 3 s, uncached >= 40,000/s (figures in parentheses: CPU time)")


if __name__ == "__main__":
    main()
