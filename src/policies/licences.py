"""Licences and the conditions they bring: allowed purposes, attribution, share-alike, agreements.

The registry is closed: the SPDX licences below plus the node's custom ``LicenseRef-...`` licences
from its config. A dataset naming a licence outside the registry is refused when it is registered.
``combine`` unions the obligations of several slices, or refuses licences that cannot be combined
(two different share-alike licences, share-alike with non-commercial, no-derivatives with others).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policies.decisions import Obligation, ObligationKind
from policies.errors import IncompatibleLicences, PolicyValidationError

__all__ = ["COMMERCIAL", "SPDX", "Licence", "LicenceRegistry", "combine"]

COMMERCIAL = "commercial"


@dataclass(frozen=True, slots=True)
class Licence:
    """One licence and its conditions."""

    id: str
    title: str
    attribution: bool = False
    share_alike: bool = False
    non_commercial: bool = False
    no_derivatives: bool = False
    no_redistribution: bool = False
    requires_agreement: str | None = None

    def refuses(self, purpose: str) -> str | None:
        """Why this licence refuses ``purpose``, or None when it allows it."""
        if self.non_commercial and purpose == COMMERCIAL:
            return f"licence {self.id} is non-commercial and refuses purpose {purpose!r}"
        return None

    def obligations(self, citation: str) -> tuple[Obligation, ...]:
        """The obligations a receiver of a slice under this licence takes on."""
        out: list[Obligation] = []
        if self.attribution:
            out.append(Obligation(ObligationKind.ATTRIBUTE, citation))
        if self.share_alike:
            out.append(Obligation(ObligationKind.SHARE_ALIKE, self.id))
        if self.non_commercial:
            out.append(Obligation(ObligationKind.NON_COMMERCIAL, self.id))
        if self.no_derivatives:
            out.append(Obligation(ObligationKind.NO_DERIVATIVES, self.id))
        if self.no_redistribution:
            out.append(Obligation(ObligationKind.NO_REDISTRIBUTION, self.id))
        return tuple(out)


SPDX: Mapping[str, Licence] = {
    lic.id: lic
    for lic in (
        Licence("CC0-1.0", "Creative Commons Zero 1.0"),
        Licence("CC-BY-4.0", "Creative Commons Attribution 4.0", attribution=True),
        Licence(
            "CC-BY-SA-4.0", "Creative Commons Attribution-ShareAlike 4.0", True, share_alike=True
        ),
        Licence(
            "CC-BY-NC-4.0",
            "Creative Commons Attribution-NonCommercial 4.0",
            True,
            non_commercial=True,
        ),
        Licence(
            "CC-BY-NC-SA-4.0",
            "Creative Commons Attribution-NonCommercial-ShareAlike 4.0",
            True,
            share_alike=True,
            non_commercial=True,
        ),
        Licence(
            "CC-BY-ND-4.0",
            "Creative Commons Attribution-NoDerivatives 4.0",
            True,
            no_derivatives=True,
        ),
        Licence("ODbL-1.0", "Open Data Commons Open Database License 1.0", True, share_alike=True),
        Licence("Apache-2.0", "Apache License 2.0", attribution=True),
        Licence("MIT", "MIT License", attribution=True),
    )
}


class LicenceRegistry:
    """The SPDX licences plus the node's custom ``LicenseRef-...`` licences."""

    def __init__(self, custom: Iterable[Licence] = ()) -> None:
        self._licences: dict[str, Licence] = dict(SPDX)
        for lic in custom:
            if not lic.id.startswith("LicenseRef-"):
                raise PolicyValidationError(f"custom licence {lic.id!r} must start LicenseRef-")
            self._licences[lic.id] = lic

    def get(self, licence_id: str) -> Licence:
        """The licence with this id; PolicyValidationError if it is not registered."""
        try:
            return self._licences[licence_id]
        except KeyError:
            known = ", ".join(sorted(self._licences))
            raise PolicyValidationError(
                f"unknown licence {licence_id!r} (known: {known})"
            ) from None

    def __contains__(self, licence_id: object) -> bool:
        return licence_id in self._licences

    def ids(self) -> tuple[str, ...]:
        """Every registered licence id, sorted."""
        return tuple(sorted(self._licences))


def combine(
    licences: Iterable[Licence], citations: Mapping[str, str] | None = None
) -> tuple[Obligation, ...]:
    """The obligations of a union of slices under ``licences``; IncompatibleLicences if none fit.

    ``citations`` maps a licence id to the citation text its attribution obligation carries
    (default: the licence id).
    """
    distinct = list({lic.id: lic for lic in licences}.values())
    share_alike = [lic for lic in distinct if lic.share_alike]
    if len(share_alike) > 1:
        names = " and ".join(lic.id for lic in share_alike)
        raise IncompatibleLicences(
            f"{names} are different share-alike licences: each requires the combination to be "
            "shared under itself alone"
        )
    if share_alike:
        sa = share_alike[0]
        for lic in distinct:
            if lic.non_commercial and not sa.non_commercial:
                raise IncompatibleLicences(
                    f"{sa.id} requires the combination to allow commercial use, "
                    f"which {lic.id} forbids"
                )
    derivatives = [lic for lic in distinct if lic.no_derivatives]
    if derivatives and len(distinct) > 1:
        raise IncompatibleLicences(
            f"{derivatives[0].id} forbids derivatives, so it cannot be combined with "
            + ", ".join(lic.id for lic in distinct if lic is not derivatives[0])
        )
    cites = citations or {}
    seen: dict[tuple[ObligationKind, str], Obligation] = {}
    for lic in distinct:
        for ob in lic.obligations(cites.get(lic.id, lic.id)):
            seen.setdefault((ob.kind, ob.detail), ob)
    return tuple(seen.values())
