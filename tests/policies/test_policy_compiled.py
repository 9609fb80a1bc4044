"""The compiled fast path and Casbin's own enforce give the same answer on random policies."""

from __future__ import annotations

import random

import pytest

from policies import PolicyLine, Principal, RoleAssignment
from policies.compiled import CompiledPolicy
from policies.enforcer import reference_enforcer

DOMAINS = ["i0", "i1", "i2"]
ROLES = ["r0", "r1", "r2"]
NAMES = ["a-1", "a-2", "b-1", "c"]
PATTERNS = [*NAMES, "a-*", "*"]
ACTIONS = ["discover", "read", "train", "manage", "audit"]
PURPOSES = ["research", "commercial"]


def _line(rng: random.Random) -> PolicyLine:
    who = rng.choice(["role", "user", "institution"])
    name = {
        "role": rng.choice(ROLES),
        "user": _user(rng),
        "institution": rng.choice(DOMAINS),
    }[who]
    action = rng.choice(ACTIONS)
    domain_action = action in ("manage", "audit")
    effect = rng.choice(["allow", "allow", "deny"])
    restrict = effect == "deny" and not domain_action and rng.random() < 0.4
    return PolicyLine.model_validate(
        {
            who: name,
            "effect": effect,
            "domain": rng.choice(DOMAINS),
            "dataset": "*" if domain_action else rng.choice(PATTERNS),
            "action": action,
            "purpose": "*" if domain_action else rng.choice([*PURPOSES, "*"]),
            "withhold": ["x"] if restrict and rng.random() < 0.5 else [],
            "rows": "y > 1" if restrict and rng.random() < 0.5 else None,
        }
    )


def _user(rng: random.Random) -> str:
    subject = f"u{rng.randrange(4)}"
    return f"{rng.choice(DOMAINS)}:{subject}"  # issuer-qualified, as a token's principal is


def _assignment(rng: random.Random) -> RoleAssignment:
    who = rng.choice(["user", "institution"])
    name = _user(rng) if who == "user" else rng.choice(DOMAINS)
    return RoleAssignment.model_validate(
        {who: name, "role": rng.choice(ROLES), "domain": rng.choice(DOMAINS)}
    )


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_agrees_with_casbin(seed: int) -> None:
    rng = random.Random(seed)
    lines = list({_line(rng).to_rule(): None for _ in range(60)})
    grants = list({_assignment(rng).to_rule(): None for _ in range(25)})
    compiled = CompiledPolicy(1, lines, grants)
    casbin = reference_enforcer(lines, grants, domains=DOMAINS)
    principals = [
        Principal(f"u{i}", inst, frozenset(rng.sample(ROLES, rng.randrange(3))))
        for i in range(4)
        for inst in DOMAINS
    ]
    requests = [
        (who, domain, action, name, purpose)
        for who in principals
        for domain in DOMAINS
        for action in ACTIONS
        for name in (["*", *NAMES] if action in ("manage", "audit") else NAMES)
        for purpose in PURPOSES
    ]
    allowed = 0
    for who, domain, action, name, purpose in rng.sample(requests, 500):
        fast = compiled.allows(who, domain, name, action, purpose)
        slow = casbin.enforce(who, domain, name, action, purpose)
        assert fast == slow, (who, domain, name, action, purpose)
        allowed += fast
    # The random policies must exercise both answers, or agreeing proves little.
    assert 25 < allowed < 475
