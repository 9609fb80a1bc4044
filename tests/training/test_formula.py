"""Formula parsing: nested groups, fractional amounts, hydrates, and clear errors with positions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.errors import FormulaError
from training.formula import fractions, parse_formula


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("H2O", {"H": 2.0, "O": 1.0}),
        ("Ag(W3Br7)2", {"Ag": 1.0, "W": 6.0, "Br": 14.0}),
        ("Ag(AuS)2", {"Ag": 1.0, "Au": 2.0, "S": 2.0}),
        ("K4[Fe(CN)6]", {"K": 4.0, "Fe": 1.0, "C": 6.0, "N": 6.0}),
        ("Ca{OH}2", {"Ca": 1.0, "O": 2.0, "H": 2.0}),
        ("Mg3(Si2O5)2(OH)2", {"Mg": 3.0, "Si": 4.0, "O": 12.0, "H": 2.0}),
        ("Fe0.620C0.000953Mn0.000521", {"Fe": 0.62, "C": 0.000953, "Mn": 0.000521}),
        ("Fe.5Ni.5", {"Fe": 0.5, "Ni": 0.5}),
        ("CuSO4·5H2O", {"Cu": 1.0, "S": 1.0, "O": 9.0, "H": 10.0}),
        ("Na2CO3*10H2O", {"Na": 2.0, "C": 1.0, "O": 13.0, "H": 20.0}),
        ("CoO", {"Co": 1.0, "O": 1.0}),
        ("CO", {"C": 1.0, "O": 1.0}),
        ("FeFe2O4", {"Fe": 3.0, "O": 4.0}),
        (" Fe2 O3 ", {"Fe": 2.0, "O": 3.0}),
        ("Og", {"Og": 1.0}),
        ("Fe1Ni0", {"Fe": 1.0}),
    ],
)
def test_parses(text: str, expected: dict[str, float]) -> None:
    """Valid formulas give the element amounts."""
    assert parse_formula(text) == pytest.approx(expected)


def test_order_of_first_appearance() -> None:
    """Elements come in the order they first appear."""
    assert list(parse_formula("OFeO2Fe")) == ["O", "Fe"]


def test_fractions_sum_to_one() -> None:
    """Atomic fractions are normalised."""
    result = fractions("Ag(W3Br7)2")
    assert sum(result.values()) == pytest.approx(1.0)
    assert result["Br"] == pytest.approx(14 / 21)


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "empty formula"),
        ("   ", 0, "empty formula"),
        ("Xx2", 0, "unknown element 'Xx'"),
        ("FeQ", 2, "unknown element 'Q'"),
        ("(Fe2O3", 0, "unclosed '('"),
        ("Fe2(O3", 3, "unclosed '('"),
        ("Fe2O3)", 5, "unmatched ')'"),
        ("(Fe]2", 3, "expected ')'"),
        ("Fe-2", 2, "negative amount"),
        ("-Fe", 0, "negative amount"),
        ("fe2o3", 0, "capital"),
        ("()", 1, "empty group"),
        ("Fe()2", 3, "empty group"),
        ("2Fe", 0, "amount without an element"),
        ("Fe2..3", 4, "amount without an element"),
        ("Fe0", 0, "amounts sum to zero"),
        ("CuSO4·", 6, "unexpected end"),
        ("Fe2O3!", 5, "unexpected character '!'"),
    ],
)
def test_bad_formulas(text: str, position: int, reason: str) -> None:
    """Invalid formulas raise FormulaError naming the problem and where it is."""
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert info.value.position == position
    assert reason in str(info.value)
    assert f"position {position}" in str(info.value)


def test_not_a_string() -> None:
    """A missing value (NaN) from a DataFrame is refused clearly, not parsed."""
    with pytest.raises(FormulaError, match="expected a string"):
        parse_formula(float("nan"))  # type: ignore[arg-type]


def test_formula_error_is_value_error_with_status() -> None:
    """Callers can catch it as ValueError and map it to a 422."""
    with pytest.raises(ValueError) as info:
        parse_formula("Zz")
    assert getattr(info.value, "status", None) == 422


def test_every_matbench_formula_parses(data_dir: Path) -> None:
    """All formulas of the shipped tables parse (real data, not invented cases)."""
    for name in ("expt_gap.csv", "steels_yield.csv"):
        for text in pd.read_csv(data_dir / name)["formula"]:
            assert sum(fractions(text).values()) == pytest.approx(1.0)
