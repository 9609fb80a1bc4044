"""Licence registry and combination: conditions per licence, compatible and incompatible unions."""

from __future__ import annotations

import pytest

from policies import IncompatibleLicences, Licence, LicenceRegistry, ObligationKind, combine
from policies.errors import PolicyValidationError

REG = LicenceRegistry([Licence("LicenseRef-x", "X terms", requires_agreement="x-terms")])
K = ObligationKind


@pytest.mark.parametrize(
    ("licence", "purpose", "refused"),
    [
        ("CC0-1.0", "commercial", False),
        ("CC-BY-4.0", "commercial", False),
        ("CC-BY-NC-4.0", "commercial", True),
        ("CC-BY-NC-4.0", "research", False),
        ("CC-BY-NC-SA-4.0", "commercial", True),
        ("ODbL-1.0", "commercial", False),
        ("MIT", "commercial", False),
    ],
)
def test_purposes(licence: str, purpose: str, refused: bool) -> None:
    assert (REG.get(licence).refuses(purpose) is not None) is refused


@pytest.mark.parametrize(
    ("licence", "kinds"),
    [
        ("CC0-1.0", set()),
        ("CC-BY-4.0", {K.ATTRIBUTE}),
        ("CC-BY-SA-4.0", {K.ATTRIBUTE, K.SHARE_ALIKE}),
        ("CC-BY-NC-4.0", {K.ATTRIBUTE, K.NON_COMMERCIAL}),
        ("CC-BY-NC-SA-4.0", {K.ATTRIBUTE, K.SHARE_ALIKE, K.NON_COMMERCIAL}),
        ("ODbL-1.0", {K.ATTRIBUTE, K.SHARE_ALIKE}),
        ("Apache-2.0", {K.ATTRIBUTE}),
        ("MIT", {K.ATTRIBUTE}),
    ],
)
def test_obligations(licence: str, kinds: set[ObligationKind]) -> None:
    obligations = REG.get(licence).obligations("Doe et al. 2026")
    assert {o.kind for o in obligations} == kinds
    for o in obligations:
        if o.kind is K.ATTRIBUTE:
            assert o.detail == "Doe et al. 2026"


def test_registry_is_closed() -> None:
    assert REG.get("LicenseRef-x").requires_agreement == "x-terms"
    with pytest.raises(PolicyValidationError, match=r"unknown licence 'GPL-3\.0'"):
        REG.get("GPL-3.0")
    with pytest.raises(PolicyValidationError, match="LicenseRef-"):
        LicenceRegistry([Licence("My-Terms", "not a LicenseRef")])


@pytest.mark.parametrize(
    ("licences", "kinds"),
    [
        (["CC0-1.0", "CC-BY-4.0"], {K.ATTRIBUTE}),
        (["CC-BY-4.0", "CC-BY-SA-4.0"], {K.ATTRIBUTE, K.SHARE_ALIKE}),
        (["CC-BY-NC-SA-4.0", "CC-BY-4.0"], {K.ATTRIBUTE, K.SHARE_ALIKE, K.NON_COMMERCIAL}),
        (["CC-BY-NC-4.0", "CC-BY-NC-SA-4.0"], {K.ATTRIBUTE, K.SHARE_ALIKE, K.NON_COMMERCIAL}),
        (["ODbL-1.0", "ODbL-1.0", "MIT"], {K.ATTRIBUTE, K.SHARE_ALIKE}),
    ],
)
def test_combine_compatible(licences: list[str], kinds: set[ObligationKind]) -> None:
    assert {o.kind for o in combine(REG.get(x) for x in licences)} == kinds


@pytest.mark.parametrize(
    ("licences", "reason"),
    [
        (["CC-BY-SA-4.0", "CC-BY-NC-SA-4.0"], "different share-alike"),
        (["ODbL-1.0", "CC-BY-SA-4.0"], "different share-alike"),
        (["CC-BY-SA-4.0", "CC-BY-NC-4.0"], "forbids"),
        (["CC-BY-ND-4.0", "CC0-1.0"], "forbids derivatives"),
    ],
)
def test_combine_incompatible(licences: list[str], reason: str) -> None:
    with pytest.raises(IncompatibleLicences, match=reason) as info:
        combine(REG.get(x) for x in licences)
    assert info.value.status == 422


def test_combine_cites_each_dataset() -> None:
    obligations = combine(
        [REG.get("CC-BY-4.0"), REG.get("MIT")], {"CC-BY-4.0": "A 2026", "MIT": "B 2025"}
    )
    assert sorted(o.detail for o in obligations) == ["A 2026", "B 2025"]
