"""The ``public`` subject: what a steward opens to callers without a token, and nothing more.

Anonymous callers match ``public`` lines only; token holders match them too (what anyone may do,
a member may do); a bad token is a 401, never anonymous; routes without anonymous access still
answer 401 without a token. Aurora's demo policy opens its published band gaps to ``public``.
"""

from __future__ import annotations

import io
import random

import pyarrow.csv as pacsv
import pytest
from pydantic import ValidationError

from policies import PolicyLine, Principal
from policies.compiled import CompiledPolicy
from policies.enforcer import reference_enforcer
from policies.principals import ANONYMOUS

PUBLIC_GAP = "aurora/expt-gap"
GOVERNED = "aurora/ni-superalloys"


# -- the policy language -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"action": "read"}, None),
        ({"action": "discover", "dataset": "tensile-*"}, None),
        ({"action": "read", "withhold": ["sensitivity:personal"], "mask": "hash"}, None),
        ({"action": "read", "effect": "deny", "rows": "x > 1"}, None),
        ({"action": "train"}, "public may only be granted"),
        ({"action": "manage", "dataset": "*"}, "public may only be granted"),
        ({"action": "audit", "dataset": "*"}, "public may only be granted"),
        ({"action": "read", "agreement": "terms"}, "nobody could accept it"),
        ({"action": "read", "role": "member"}, "exactly one of role, user, institution or public"),
        ({"action": "read", "institution": "kyoto"}, "exactly one of"),
    ],
)
def test_public_lines_are_checked_when_written(fields, refusal):
    data = {"public": True, "domain": "nims", "dataset": "tensile", **fields}
    if refusal is None:
        line = PolicyLine.model_validate(data)
        assert line.subject == "public"
        assert PolicyLine.from_rule(line.to_rule()) == line
    else:
        with pytest.raises(ValidationError, match=refusal):
            PolicyLine.model_validate(data)


def test_no_prefixed_subject_can_equal_public():
    for who in ({"role": "public"}, {"institution": "public"}, {"user": "public:public"}):
        line = PolicyLine.model_validate({**who, "domain": "nims", "action": "read"})
        assert line.subject != "public"


LINES = [
    {"public": True, "domain": "nims", "dataset": "open", "action": "read"},
    {"public": True, "domain": "nims", "dataset": "listed", "action": "discover"},
    {"role": "member", "domain": "nims", "dataset": "*", "action": "read"},
    {"institution": "kyoto", "domain": "nims", "dataset": "shared", "action": "read"},
    {"effect": "deny", "public": True, "domain": "nims", "dataset": "recalled", "action": "read"},
    {"public": True, "domain": "nims", "dataset": "recalled", "action": "read"},
]
MEMBER = Principal("alice", "nims", frozenset({"member"}))
GUEST = Principal("bob", "kyoto")
# A token holder whose institution and subject happen to read "public" is not anonymous.
NAMESAKE = Principal("anonymous", "public")


@pytest.mark.parametrize(
    ("who", "dataset", "action", "allowed"),
    [
        (ANONYMOUS, "open", "read", True),
        (ANONYMOUS, "open", "discover", True),
        (ANONYMOUS, "listed", "discover", True),
        (ANONYMOUS, "listed", "read", False),
        (ANONYMOUS, "shared", "read", False),
        (ANONYMOUS, "members-only", "read", False),
        (ANONYMOUS, "recalled", "read", False),
        (MEMBER, "members-only", "read", True),
        (MEMBER, "recalled", "read", False),
        (GUEST, "open", "read", True),
        (GUEST, "listed", "discover", True),
        (GUEST, "shared", "read", True),
        (GUEST, "members-only", "read", False),
        (NAMESAKE, "open", "read", True),
        (NAMESAKE, "shared", "read", False),
    ],
)
def test_who_matches_public_lines(who, dataset, action, allowed):
    rules = [PolicyLine.model_validate(line).to_rule() for line in LINES]
    compiled = CompiledPolicy(1, rules, [])
    casbin = reference_enforcer(rules, [], domains=["nims"])
    assert compiled.allows(who, "nims", dataset, action, "research") is allowed
    assert casbin.enforce(who, "nims", dataset, action, "research") is allowed


@pytest.mark.parametrize("seed", range(3))
def test_public_lines_agree_with_casbin_on_random_policies(seed):
    rng = random.Random(seed)
    names = ["a", "b", "c-1", "c-2"]
    lines = []
    for _ in range(40):
        who = rng.choice(
            [{"public": True}, {"role": "member"}, {"institution": rng.choice(["x", "y"])}]
        )
        lines.append(
            PolicyLine.model_validate(
                {
                    **who,
                    "effect": rng.choice(["allow", "allow", "deny"]),
                    "domain": rng.choice(["x", "y"]),
                    "dataset": rng.choice([*names, "c-*", "*"]),
                    "action": rng.choice(["discover", "read"]),
                    "purpose": rng.choice(["research", "*"]),
                }
            ).to_rule()
        )
    rules = list(dict.fromkeys(lines))
    compiled = CompiledPolicy(1, rules, [])
    casbin = reference_enforcer(rules, [], domains=["x", "y"])
    people = [ANONYMOUS, Principal("u", "x", frozenset({"member"})), Principal("v", "y")]
    answers = set()
    for who in people:
        for domain in ("x", "y"):
            for name in names:
                for action in ("discover", "read"):
                    fast = compiled.allows(who, domain, name, action, "research")
                    assert fast == casbin.enforce(who, domain, name, action, "research")
                    answers.add(fast)
    assert answers == {True, False}


# -- the node --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/catalog", 200),
        ("GET", "/catalog.jsonld", 200),
        ("GET", f"/catalog/{PUBLIC_GAP}", 200),
        ("GET", f"/catalog/{PUBLIC_GAP}/dcat", 200),
        ("GET", f"/datasets/{PUBLIC_GAP}/slice?purpose=research", 200),
        ("GET", "/optimade/structures?page_limit=1", 200),
        ("GET", f"/catalog/{GOVERNED}", 404),
        ("GET", f"/catalog/{GOVERNED}/dcat", 404),
        ("GET", f"/datasets/{GOVERNED}/slice?purpose=research", 404),
        ("GET", "/catalog?federated=true", 401),
        ("GET", "/catalog/borealis/oxide-gaps", 404),
        ("GET", "/policies/aurora", 401),
        ("GET", "/audit/events", 401),
        ("GET", "/audit/checkpoint", 401),
        ("GET", "/lineage", 401),
        ("GET", "/provenance/0123", 401),
        ("POST", "/explain", 401),
        ("POST", f"/datasets/{PUBLIC_GAP}/train", 401),
        ("GET", f"/datasets/{PUBLIC_GAP}/agreements", 401),
        ("POST", "/catalog", 401),
        ("GET", "/delta-sharing/shares", 401),
        ("GET", "/delta-sharing/profile", 401),
    ],
)
def test_without_a_token(api, method, path, status):
    r = api.request(method, path)
    assert r.status_code == status, (path, r.text[:300])


@pytest.mark.parametrize(
    "path",
    [
        "/catalog",
        "/catalog.jsonld",
        f"/catalog/{PUBLIC_GAP}",
        f"/datasets/{PUBLIC_GAP}/slice?purpose=research",
        "/optimade/structures",
    ],
)
@pytest.mark.parametrize("token", ["not-a-token", "a.b.c", ""])
def test_a_bad_token_is_never_anonymous(api, path, token):
    r = api.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_the_catalog_without_a_token_is_what_public_may_discover(api, auth):
    anonymous = {_id(d) for d in api.get("/catalog").json()["datasets"]}
    member = {_id(d) for d in api.get("/catalog", headers=auth["ml-user"]).json()["datasets"]}
    assert anonymous == {PUBLIC_GAP}
    assert anonymous < member
    graph = api.get("/catalog.jsonld").json()
    assert PUBLIC_GAP in str(graph) and GOVERNED not in str(graph)


def test_an_anonymous_slice_is_the_public_slice_and_is_recorded(api, auth):
    path = f"/datasets/{PUBLIC_GAP}/slice?purpose=research&format=csv"
    anonymous = api.get(path)
    member = api.get(path, headers=auth["ml-user"])
    assert anonymous.status_code == member.status_code == 200
    assert pacsv.read_csv(io.BytesIO(anonymous.content)).equals(
        pacsv.read_csv(io.BytesIO(member.content))
    )
    rid = anonymous.headers["matgate-request-id"]
    events = api.get(
        "/audit/events",
        params={"principal": "anonymous", "dataset": PUBLIC_GAP, "limit": 1000},
        headers=auth["auditor"],
    ).json()["events"]
    mine = [e for e in events if e.get("request_id") == rid]
    assert {e["name"] for e in mine} == {"decision", "slice"}, mine
    assert all(e["principal"] == "anonymous" and e["decision"] == "allow" for e in mine)


def test_an_anonymous_probe_of_a_governed_dataset_is_recorded_as_denied(api, auth):
    assert api.get(f"/datasets/{GOVERNED}/slice?purpose=research").status_code == 404
    events = api.get(
        "/audit/events",
        params={"principal": "anonymous", "dataset": GOVERNED, "decision": "deny"},
        headers=auth["auditor"],
    ).json()["events"]
    assert events


def _id(dataset: dict[str, str]) -> str:
    return f"{dataset['institution']}/{dataset['name']}"
