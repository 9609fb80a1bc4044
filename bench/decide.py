"""Decisions per second with 10,000 policy lines and 10,000 role grants over 20 institutions.

Prints the plain Casbin Enforcer (and FastEnforcer) measured in the same run on the same rules,
then matgate's uncached and cached decisions per second and their p99 latency. Run:
``.venv/bin/python bench/decide.py`` (about a minute on two cores).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from connectors.datasets import Column, ColumnType, Dataset, PSPPRole, Sensitivity, Store
from policies import Action, Governance, PolicyConfig, Principal
from policies.enforcer import reference_enforcer

INSTITUTIONS = [f"inst{i:02d}" for i in range(20)]
ROLES = [f"role{i:02d}" for i in range(25)]
PURPOSES = ["research", "ml-training", "education", "publication", "commercial"]
DATASETS_PER_INSTITUTION = 25
LINES = 10_000
GRANTS = 10_000
USERS_PER_INSTITUTION = 400
COLUMNS = tuple(
    Column(
        name=f"c{i}",
        type=ColumnType.FLOAT,
        pspp=PSPPRole.PROPERTY,
        sensitivity=[Sensitivity.PUBLIC, Sensitivity.PERSONAL, Sensitivity.CONFIDENTIAL][i % 3],
    )
    for i in range(12)
)


def _user(rng: random.Random) -> str:
    subject = f"u{rng.randrange(USERS_PER_INSTITUTION)}"
    return f"{rng.choice(INSTITUTIONS)}:{subject}"


def build(rng: random.Random) -> tuple[PolicyConfig, list[Dataset], list[Principal]]:
    """A synthetic federation of the benchmark's size."""
    datasets = [
        Dataset(
            institution=inst,
            name=f"{['alloy', 'film', 'powder'][d % 3]}-{d:02d}",
            title="bench",
            license="CC-BY-4.0",
            location=Store(store="s", table=f"t{d}"),
            columns=COLUMNS,
        )
        for inst in INSTITUTIONS
        for d in range(DATASETS_PER_INSTITUTION)
    ]
    lines: dict[tuple[object, ...], dict[str, object]] = {}
    while len(lines) < LINES:
        dom = rng.choice(INSTITUTIONS)
        kind = rng.random()
        who: dict[str, str] = (
            {"role": rng.choice(ROLES)}
            if kind < 0.7
            else {"institution": rng.choice(INSTITUTIONS)}
            if kind < 0.85
            else {"user": _user(rng)}
        )
        pattern = rng.random()
        dataset = (
            f"{rng.choice(['alloy', 'film', 'powder'])}-*"
            if pattern < 0.2
            else "*"
            if pattern < 0.25
            else f"{['alloy', 'film', 'powder'][(n := rng.randrange(25)) % 3]}-{n:02d}"
        )
        line: dict[str, object] = {
            **who,
            "domain": dom,
            "dataset": dataset,
            "action": rng.choice(["read", "read", "train", "discover"]),
            "purpose": rng.choice([*PURPOSES, "*"]),
            "effect": "deny" if rng.random() < 0.05 else "allow",
        }
        if line["effect"] == "allow" and rng.random() < 0.5:
            line["withhold"] = ["sensitivity:personal"]
            line["mask"] = rng.choice(["drop", "hash", "null"])
        if line["effect"] == "allow" and rng.random() < 0.3:
            line["rows"] = f"c0 >= {rng.randrange(100)}"
        key = tuple(sorted((k, str(v)) for k, v in line.items()))
        lines[key] = line
    grants: dict[tuple[str, ...], dict[str, str]] = {}
    while len(grants) < GRANTS:
        inst = rng.choice(INSTITUTIONS)
        who = (
            {"user": f"{inst}:u{rng.randrange(USERS_PER_INSTITUTION)}"}
            if rng.random() < 0.9
            else {"institution": inst}
        )
        grant = {**who, "role": rng.choice(ROLES), "domain": rng.choice(INSTITUTIONS)}
        grants[tuple(sorted(grant.items()))] = grant
    config = PolicyConfig.model_validate(
        {"roles": ROLES, "lines": list(lines.values()), "assignments": list(grants.values())}
    )
    principals = [
        Principal(f"u{rng.randrange(USERS_PER_INSTITUTION)}", rng.choice(INSTITUTIONS))
        for _ in range(2_000)
    ]
    return config, datasets, principals


Request = tuple[Principal, Dataset, Action, str]


def throughput(
    fn: Callable[[Principal, Dataset, Action, str], object], reqs: list[Request]
) -> float:
    """Calls per second, timed as one loop."""
    start = time.perf_counter()
    for who, ds, action, purpose in reqs:
        fn(who, ds, action, purpose)
    return len(reqs) / (time.perf_counter() - start)


def p99(fn: Callable[..., object], reqs: list[Request]) -> float:
    """The 99th percentile latency of the calls, in microseconds."""
    clock = time.perf_counter_ns
    samples = []
    for who, ds, action, purpose in reqs:
        t = clock()
        fn(who, ds, action, purpose)
        samples.append(clock() - t)
    return statistics.quantiles(samples, n=100)[98] / 1e3


def main() -> None:
    """Run the benchmark and print the table."""
    rng = random.Random(7)
    config, datasets, principals = build(rng)
    requests = [
        (rng.choice(principals), rng.choice(datasets), Action.READ, rng.choice(PURPOSES))
        for _ in range(40_000)
    ]
    p_rules = [line.to_rule() for line in config.lines]
    g_rules = [a.to_rule() for a in config.assignments]
    results: list[tuple[str, float, float]] = []
    answers: dict[int, bool] = {}
    # Casbin walks every rule per request: a handful of requests is enough to time it.
    for kind, sample_size, order in (("Enforcer", 8, None), ("FastEnforcer", 40, [1])):
        if not hasattr(casbin_module(), kind):
            continue
        ref = reference_enforcer(p_rules, g_rules, kind=kind, domains=INSTITUTIONS, order=order)
        sample = requests[:sample_size]
        for r in sample:
            ref.link(r[0])

        def enforce(who: Principal, ds: Dataset, action: Action, purpose: str) -> bool:
            return ref.enforce(who, ds.institution, ds.name, action.value, purpose)  # noqa: B023

        results.append(
            (f"casbin {kind} (allow/deny only)", throughput(enforce, sample), p99(enforce, sample))
        )
        for i, r in enumerate(sample):
            answers[i] = enforce(*r)

    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        t = time.perf_counter()
        Governance(engine, config).seed(datasets)
        print(f"seeded {LINES:,} lines and {GRANTS:,} grants in {time.perf_counter() - t:.1f} s")
        uncached = Governance(engine, config, cache=False)
        cached = Governance(engine, config)
        t = time.perf_counter()
        uncached._reload()  # what a replica does after a policy change
        print(f"reload and recompile of a version: {time.perf_counter() - t:.2f} s")

        agree = sum(uncached.decide(*requests[i]).allowed == ok for i, ok in answers.items())
        # First touch fills the version's indexes (role resolution, column and row shapes);
        # the second pass is the steady state. Neither is served from the decision cache.
        results.append(
            ("matgate decide, uncached, first touch", throughput(uncached.decide, requests), 0.0)
        )
        results.append(
            (
                "matgate decide, uncached",
                throughput(uncached.decide, requests),
                p99(uncached.decide, requests[:10_000]),
            )
        )
        hot = requests[:2_000]
        for r in hot:
            cached.decide(*r)
        results.append(
            (
                "matgate decide, cached (repeated)",
                throughput(cached.decide, hot * 500),
                p99(cached.decide, hot * 50),
            )
        )
        engine.dispose()

    base = results[0][1]
    print(f"{'':38} {'decisions/s':>12} {'p99 µs':>9} {'vs Enforcer':>12}")
    for name, per_second, latency in results:
        print(f"{name:38} {per_second:12,.1f} {latency:9.1f} {per_second / base:11,.0f}x")
    print(f"matgate and Casbin agree on {agree}/{len(answers)} sampled allow/deny answers")
    print("targets: uncached >= 20,000/s, cached >= 1,000,000/s, p99 < 1,000 µs")


def casbin_module() -> object:
    """The casbin package, for feature checks (FastEnforcer exists only in newer releases)."""
    import casbin

    return casbin


if __name__ == "__main__":
    main()
