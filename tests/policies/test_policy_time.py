"""Embargoes lift and agreements expire on the clock the tests control; cached decisions follow."""

from __future__ import annotations

import datetime as dt

import pytest
from policy_world import ALICE, BOB, CAROL, DATASETS, EMBARGO, STEVE, Clock

from connectors.filterparser import unparse
from policies import Action, Governance, ObligationKind, PolicyForbidden, Principal
from policies.errors import PolicyValidationError, UnknownAgreement

FUTURE = DATASETS["future"]
SECRET = DATASETS["secret"]
TENSILE = DATASETS["tensile"]


@pytest.mark.parametrize(
    ("who", "before", "after"),
    [
        (BOB, False, True),  # a partner waits for the embargo
        (CAROL, True, True),  # a role that policy names reads during it
        (ALICE, True, True),  # the owning institution always may
        (Principal("rita", "rival"), False, False),  # no policy, no embargo changes that
    ],
)
def test_dataset_embargo_lifts_at_its_date(
    gov: Governance, clock: Clock, who: Principal, before: bool, after: bool
) -> None:
    clock.now = EMBARGO - dt.timedelta(seconds=1)
    assert gov.decide(who, FUTURE, Action.READ, "research").allowed is before
    clock.now = EMBARGO  # the decision above may be cached; the embargo date must expire it
    assert gov.decide(who, FUTURE, Action.READ, "research").allowed is after


def test_row_embargo_moves_with_the_clock(gov: Governance, clock: Clock) -> None:
    first = gov.decide(BOB, TENSILE, Action.READ, "publication")
    assert (
        unparse(first.row_filter)
        == 'released IS UNKNOWN OR released <= "2026-06-01T12:00:00+00:00"'
    )
    clock.advance(days=1, microseconds=500)
    later = gov.decide(BOB, TENSILE, Action.READ, "publication")
    assert (
        unparse(later.row_filter)
        == 'released IS UNKNOWN OR released <= "2026-06-02T12:00:00+00:00"'
    )
    assert gov.decide(ALICE, TENSILE, Action.READ, "publication").row_filter is None


def test_agreement_accepted_by_a_person(gov: Governance, clock: Clock) -> None:
    assert [a.id for a in gov.agreements(TENSILE)] == ["nims-terms", "tensile-dua"]
    assert not gov.decide(BOB, TENSILE, Action.READ, "benchmarking").allowed
    acceptance = gov.accept(BOB, "tensile-dua")
    assert acceptance.holder == "user:kyoto:bob" and acceptance.valid_until is None
    assert acceptance.to_dict()["agreement"] == "tensile-dua"
    decision = gov.decide(BOB, TENSILE, Action.READ, "benchmarking")
    assert decision.allowed
    assert (ObligationKind.AGREEMENT, "tensile-dua") in [
        (o.kind, o.detail) for o in decision.obligations
    ]
    # only the person who accepted is covered
    assert not gov.decide(Principal("ben", "kyoto"), TENSILE, Action.READ, "benchmarking").allowed


def test_institution_acceptance_by_a_steward_and_its_expiry(gov: Governance, clock: Clock) -> None:
    with pytest.raises(PolicyForbidden):
        gov.accept(BOB, "nims-terms", on_behalf_of_institution=True)  # not a steward of kyoto
    kyoto_steward = Principal("kim", "kyoto", frozenset({"steward"}))
    assert not gov.decide(BOB, SECRET, Action.READ, "research").allowed
    acc = gov.accept(kyoto_steward, "nims-terms", on_behalf_of_institution=True)
    assert acc.holder == "inst:kyoto"
    assert acc.valid_until == clock.now + dt.timedelta(days=90)
    for who in (BOB, CAROL):
        decision = gov.decide(who, SECRET, Action.READ, "research")
        assert decision.allowed, decision.reasons
        assert ObligationKind.NO_REDISTRIBUTION in {o.kind for o in decision.obligations}
    assert not gov.decide(BOB, SECRET, Action.READ, "commercial").allowed  # still non-commercial
    clock.advance(days=90)
    expired = gov.decide(BOB, SECRET, Action.READ, "research")
    assert not expired.allowed
    assert any("expired" in r for r in expired.reasons)


def test_agreement_terms_end(gov: Governance, clock: Clock) -> None:
    gov.accept(BOB, "nims-terms")
    assert gov.decide(BOB, SECRET, Action.READ, "research").allowed
    clock.now = clock.now.replace(year=2028)  # past the end of the terms themselves
    refused = gov.decide(BOB, SECRET, Action.READ, "research")
    assert not refused.allowed and any("expired" in r for r in refused.reasons)
    with pytest.raises(PolicyValidationError, match="expired"):
        gov.accept(BOB, "nims-terms")


def test_unknown_agreement(gov: Governance) -> None:
    with pytest.raises(UnknownAgreement) as info:
        gov.accept(STEVE, "no-such-terms")
    assert info.value.status == 404
