"""The periodic table and the Magpie table of elemental properties shipped with the package."""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["ELEMENTS", "ElementTable", "element_table"]

# All 118 symbols, so that a real element missing from the property table is told apart from a typo.
_PERIODIC_TABLE = """
    H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
    Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho
    Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm
    Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"""
ELEMENTS: tuple[str, ...] = tuple(_PERIODIC_TABLE.split())


@dataclass(frozen=True)
class ElementTable:
    """Elemental properties: ``values[i, j]`` is property ``properties[j]`` of ``symbols[i]``."""

    symbols: tuple[str, ...]
    properties: tuple[str, ...]
    values: np.ndarray

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Row of each symbol."""
        return {s: i for i, s in enumerate(self.symbols)}

    def atomic_weight(self, symbol: str) -> float:
        """Standard atomic weight (g/mol) of ``symbol``."""
        return float(self.values[self.index[symbol], self.properties.index("AtomicWeight")])


@functools.cache
def element_table() -> ElementTable:
    """The Magpie element table (Ward et al. 2016), read once from the package data."""
    text = resources.files("training").joinpath("data/magpie_elements.csv").read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    values = np.array([[float(v) for v in row[1:]] for row in body], dtype=float)
    values.setflags(write=False)
    return ElementTable(tuple(r[0] for r in body), tuple(header[1:]), values)
