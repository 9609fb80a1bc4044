"""Stewards edit their own domain's policy only; writes are validated; every change is a version."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from policy_world import ALICE, AUDREY, BOB, CONFIG, DATASETS, ERIN, RIVAL, STEVE

from policies import (
    Action,
    Governance,
    PolicyConfig,
    PolicyForbidden,
    PolicyLine,
    PolicyValidationError,
    Principal,
    RoleAssignment,
)

TENSILE = DATASETS["tensile"]
COMMERCIAL = PolicyLine(
    role="partner", domain="nims", dataset="tensile", action=Action.READ, purpose="commercial"
)


@pytest.mark.parametrize(
    ("who", "domain", "action", "allowed"),
    [
        (STEVE, "nims", "manage", True),
        (STEVE, "kyoto", "manage", False),
        (AUDREY, "nims", "audit", True),
        (AUDREY, "nims", "manage", False),
        (ERIN, "kyoto", "manage", True),  # granted by assignment in kyoto's domain
        (ERIN, "nims", "manage", False),
        (BOB, "nims", "manage", False),
        (RIVAL, "nims", "manage", False),  # a steward of rival is nobody here
        (RIVAL, "rival", "manage", False),  # no line in the rival domain
    ],
)
def test_domain_checks(
    gov: Governance, who: Principal, domain: str, action: str, allowed: bool
) -> None:
    decision = gov.check_domain(who, domain, action)
    assert decision.allowed is allowed
    assert decision.policy_version == 1 and decision.reasons


def test_listing_is_for_stewards_and_auditors(gov: Governance) -> None:
    lines = gov.lines(STEVE, "nims")
    assert all(x.domain == "nims" for x in lines)
    assert any(isinstance(x, RoleAssignment) for x in lines)
    assert gov.lines(AUDREY, "nims") == lines
    for who, domain in [(BOB, "nims"), (STEVE, "kyoto"), (RIVAL, "nims")]:
        with pytest.raises(PolicyForbidden):
            gov.lines(who, domain)


def test_add_and_remove_make_versions_and_reach_decisions(gov: Governance) -> None:
    assert not gov.decide(BOB, TENSILE, "read", "commercial").allowed
    assert not gov.decide(BOB, TENSILE, "read", "commercial").allowed  # now cached
    change = gov.add_lines(STEVE, "nims", [COMMERCIAL])
    assert change.version == gov.version == 2
    assert change.to_dict()["added"][0]["purpose"] == "commercial"
    assert change.to_dict()["actor"] == "nims:steve"
    after = gov.decide(BOB, TENSILE, "read", "commercial")
    assert after.allowed and after.policy_version == 2
    assert COMMERCIAL.to_rule() in after.matched
    removed = gov.remove_lines(STEVE, "nims", [COMMERCIAL])
    assert removed.version == 3 and removed.removed
    assert not gov.decide(BOB, TENSILE, "read", "commercial").allowed


def test_role_grants_are_lines_too(gov: Governance) -> None:
    grant = RoleAssignment(user="rival:zoe", role="partner", domain="nims")
    assert not gov.decide(Principal("zoe", "rival"), TENSILE, "discover", "*").allowed
    gov.add_lines(STEVE, "nims", [grant])
    assert gov.decide(Principal("zoe", "rival"), TENSILE, "discover", "*").allowed
    assert not gov.decide(Principal("yan", "rival"), TENSILE, "discover", "*").allowed


@pytest.mark.parametrize(
    ("who", "domain", "line"),
    [
        (STEVE, "kyoto", PolicyLine(role="member", domain="kyoto", action=Action.AUDIT)),
        (STEVE, "nims", PolicyLine(role="member", domain="kyoto", action=Action.AUDIT)),
        (ERIN, "nims", COMMERCIAL),
        (ERIN, "kyoto", COMMERCIAL),
        (BOB, "nims", COMMERCIAL),
        (RIVAL, "rival", PolicyLine(role="member", domain="rival", action=Action.READ)),
    ],
)
def test_cross_domain_writes_are_forbidden(
    gov: Governance, who: Principal, domain: str, line: PolicyLine
) -> None:
    with pytest.raises(PolicyForbidden) as info:
        gov.add_lines(who, domain, [line])
    assert info.value.status == 403
    assert gov.version == 1


BASE = {"role": "partner", "domain": "nims", "dataset": "tensile", "action": "read"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"purpose": "fun"}, "unknown purpose 'fun'"),
        ({"role": "janitor"}, "unknown role 'janitor'"),
        ({"dataset": "nothing"}, "unknown dataset nims/nothing"),
        ({"role": None, "user": "kyoto:steward"}, "equals a role name"),
        ({"withhold": ["colour"]}, "no column 'colour'"),
        ({"rows": "colour = 1"}, "does not fit"),
        ({"rows": 'year = "x"'}, "does not fit"),
        ({"agreement": "other-terms"}, "unknown agreement"),
        ({"purpose": "research"}, "already present"),  # duplicates the seeded line after edits
    ],
)
def test_invalid_writes_change_nothing(
    gov: Governance, change: dict[str, Any], reason: str
) -> None:
    if reason == "already present":
        change = {**change, "withhold": ["sensitivity:personal", "sensitivity:confidential"],
                  "rows": "year >= 2020"}  # fmt: skip
    line = PolicyLine.model_validate({**BASE, **change})
    with pytest.raises(PolicyValidationError, match=reason) as info:
        gov.add_lines(STEVE, "nims", [COMMERCIAL, line])
    assert info.value.status == 422
    assert gov.version == 1
    assert not gov.decide(BOB, TENSILE, "read", "commercial").allowed  # COMMERCIAL not applied


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"action": "delete"}, "action"),
        ({"dataset": "tens*"}, "more than meant"),
        ({"dataset": "tensile-*-raw"}, "more than meant"),
        ({"dataset": "[a-z]+"}, "more than meant"),
        ({"role": "part::ner"}, "::"),
        ({"domain": "ni::ms"}, "::"),
        ({"withhold": ["a::b"]}, "::"),
        ({"withhold": ["sensitivity:secret"]}, "column selector"),
        ({"keep": ["alloy"], "withhold": ["year"]}, "keeps or withholds"),
        ({"user": "kyoto:bob"}, "exactly one"),
        ({"action": "manage"}, "domain action"),
    ],
)
def test_malformed_lines_are_refused_by_the_model(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=reason):
        PolicyLine.model_validate({**BASE, **change})


def test_remove_absent_line_is_refused(gov: Governance) -> None:
    with pytest.raises(PolicyValidationError, match="not present"):
        gov.remove_lines(STEVE, "nims", [COMMERCIAL])
    assert gov.version == 1


def test_config_errors_name_the_key() -> None:
    bad = {**CONFIG, "lines": [*CONFIG["lines"], {**BASE, "purpose": "fun"}]}
    with pytest.raises(pydantic.ValidationError, match=r"lines\[\d+\]: unknown purpose"):
        PolicyConfig.model_validate(bad)
    with pytest.raises(pydantic.ValidationError, match=r"lines\.\d+\.action"):
        PolicyConfig.model_validate({**CONFIG, "lines": [{**BASE, "action": "delete"}]})
    with pytest.raises(pydantic.ValidationError, match="mask_salt"):
        PolicyConfig.model_validate({**CONFIG, "mask_salt": 3})
    with pytest.raises(pydantic.ValidationError, match="colour"):
        PolicyConfig.model_validate({**CONFIG, "colour": "red"})


def test_seed_is_idempotent(gov: Governance) -> None:
    assert gov.seed(DATASETS.values()) is None
    assert gov.version == 1
    assert (
        len(gov.lines(STEVE, "nims"))
        == len([x for x in CONFIG["lines"] if x["domain"] == "nims"]) + 2
    )


def test_dry_run_shows_gains_and_losses_without_applying(gov: Governance) -> None:
    mask_less = PolicyLine(
        role="partner", domain="nims", dataset="tensile", action=Action.READ, purpose="research"
    )
    impacts = gov.dry_run(STEVE, "nims", add=[COMMERCIAL, mask_less], datasets=[TENSILE])
    partner = [i for i in impacts if i["principal"] == "kyoto:any-member"]
    gained = next(i for i in partner if i["purpose"] == "commercial" and i["action"] == "read")
    assert gained["access"] == "gained" and gained["dataset"] == "nims/tensile"
    assert "operator" in gained["columns_gained"]
    research = next(i for i in partner if i["action"] == "read" and i["purpose"] == "research")
    assert research["columns_gained"] == ["operator", "supplier_price"]
    assert research["rows"]["before"].startswith("year >= 2020")
    assert "year" not in research["rows"]["after"]
    assert gov.version == 1
    assert not gov.decide(BOB, TENSILE, "read", "commercial").allowed

    seeded = next(x for x in gov.lines(STEVE, "nims") if isinstance(x, RoleAssignment))
    losses = gov.dry_run(STEVE, "nims", remove=[seeded], principals=[BOB])
    assert {i["access"] for i in losses} == {"lost"}
    assert {i["dataset"] for i in losses} == {
        d.id for d in DATASETS.values() if d.institution == "nims"
    }
    with pytest.raises(PolicyForbidden):
        gov.dry_run(ERIN, "nims", add=[COMMERCIAL])


def test_the_history_says_who_changed_what_newest_first(gov: Governance, clock: Any) -> None:
    first = gov.edit(STEVE, "nims", add=[COMMERCIAL])
    clock.advance(minutes=5)
    second = gov.edit(STEVE, "nims", remove=[COMMERCIAL])
    found = gov.history(AUDREY, "nims")
    assert [c.version for c in found[:2]] == [second.version, first.version]
    assert found[0].removed == second.removed and found[1].added == first.added
    assert found[0].actor == STEVE.id and found[0].at > found[1].at
    assert all(c.domain == "nims" for c in found)
    assert gov.history(STEVE, "nims", limit=1) == found[:1]
    assert all(c.domain == "kyoto" for c in gov.history(ERIN, "kyoto"))
    for who, domain in [(BOB, "nims"), (STEVE, "kyoto"), (RIVAL, "nims")]:
        with pytest.raises(PolicyForbidden):
            gov.history(who, domain)


def test_a_domains_agreements_list_who_accepted_them(gov: Governance, clock: Any) -> None:
    gov.accept(BOB, "nims-terms")
    clock.advance(hours=1)
    gov.accept(STEVE, "tensile-dua", on_behalf_of_institution=True)
    found = {spec.id: accs for spec, accs in gov.domain_agreements(AUDREY, "nims")}
    assert set(found) == {"nims-terms", "tensile-dua"}
    assert [(a.holder, a.accepted_by) for a in found["nims-terms"]] == [
        ("user:kyoto:bob", "kyoto:bob")
    ]
    assert [a.holder for a in found["tensile-dua"]] == ["inst:nims"]
    assert found["nims-terms"][0].valid_until is not None  # 90 days, within the terms' end
    assert gov.domain_agreements(ERIN, "kyoto") == []
    for who, domain in [(BOB, "nims"), (ALICE, "nims")]:
        with pytest.raises(PolicyForbidden):
            gov.domain_agreements(who, domain)
