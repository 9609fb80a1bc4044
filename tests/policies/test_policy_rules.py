"""Stored rules read part by part are accepted and refused exactly as the pydantic models do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.compiled import CompiledLine
from policies.lines import PolicyLine, RoleAssignment, line_of, read_assignment, read_rule

SUBJECTS = [
    "public",
    "role:member",
    "role:Member",
    "role:",
    "user:kyoto:bob",
    "user:bob",
    "user:kyoto:a::b",
    "user:https://idp.example/realms/x#bob",
    "inst:kyoto",
    "inst:Kyoto",
    "rolex:member",
    "member",
]
DOMAINS = ["nims", "kyoto", "NIMS", "", "a::b"]
DATASETS = ["*", "tensile", "tensile-*", "tens*", "Tensile", "a::b", ""]
ACTIONS = ["discover", "read", "train", "export-model", "manage", "audit", "READ", ""]
PURPOSES = ["*", "research", "Research", "a::b", ""]
EFFECTS = ["allow", "deny", "permit", ""]
COLUMNS = [
    "",
    "keep:sample_id",
    "withhold:sensitivity:personal|operator",
    "withhold:pspp:property",
    "withhold:sensitivity:secret",
    "keep:",
    "drop:x",
    "withhold:a::b",
    "keep:1x",
]
ROWS = ["", "year >= 2020", "a::b"]
MASKS = ["", "drop", "null", "redact", "hash", "blur"]
OPTIONS = [
    "",
    "embargo",
    "agreement=nims-terms",
    "agreement=nims-terms embargo",
    "agreement=Bad",
    "embargo embargo",
    "agreement=a agreement=b",
    "soon",
]

rules = st.tuples(
    st.sampled_from(SUBJECTS),
    st.sampled_from(DOMAINS),
    st.sampled_from(DATASETS),
    st.sampled_from(ACTIONS),
    st.sampled_from(PURPOSES),
    st.sampled_from(EFFECTS),
    st.sampled_from(COLUMNS),
    st.sampled_from(ROWS),
    st.sampled_from(MASKS),
    st.sampled_from(OPTIONS),
)


@settings(max_examples=600, deadline=None)
@given(rule=rules)
def test_a_rule_read_in_parts_is_judged_as_the_model_judges_it(rule: tuple[str, ...]) -> None:
    try:
        model = PolicyLine.from_rule(rule)
    except ValueError:
        model = None
    try:
        parts = read_rule(rule)
    except ValueError:
        parts = None
    assert (model is None) == (parts is None), rule
    if model is not None and parts is not None:
        assert line_of(*parts) == model
        assert CompiledLine.read(rule).line == model
        assert PolicyLine.from_rule(model.to_rule()) == model


@settings(max_examples=200, deadline=None)
@given(
    rule=st.tuples(
        st.sampled_from(["user:kyoto:bob", "inst:kyoto", "inst:Kyoto", "user:bob", "x:kyoto"]),
        st.sampled_from(["role:member", "member", "role:Member", "role:"]),
        st.sampled_from(DOMAINS),
    )
)
def test_a_grant_read_in_parts_is_judged_as_the_model_judges_it(rule: tuple[str, ...]) -> None:
    try:
        a = RoleAssignment.from_rule(rule)
        expected: tuple[str, str, str] | None = (a.member, f"role:{a.role}", a.domain)
    except ValueError:
        expected = None
    try:
        got: tuple[str, str, str] | None = read_assignment(rule)
    except ValueError:
        got = None
    assert got == expected, rule
