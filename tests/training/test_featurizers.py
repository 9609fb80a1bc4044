"""Composition featurisers: fractions and Magpie statistics checked against the element table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from training.elements import element_table
from training.errors import FormulaError, TrainingSetError
from training.featurizers import (
    CompositionFeaturizer,
    WeightPercentFeaturizer,
    weight_percent_element,
)


def _prop(symbol: str, name: str) -> float:
    table = element_table()
    return float(table.values[table.index[symbol], table.properties.index(name)])


def _row(featurizer: CompositionFeaturizer | WeightPercentFeaturizer, X: object) -> pd.Series:
    values = featurizer.fit(X).transform(X)
    return pd.Series(values[0], index=featurizer.get_feature_names_out())


def test_table_shipped_with_package() -> None:
    """The Magpie table is read from package data: 97 elements, 22 properties."""
    table = element_table()
    assert table.values.shape == (97, 22)
    assert table.atomic_weight("Fe") == pytest.approx(55.845)


def test_pure_element_statistics() -> None:
    """For one element the mean is its property, the spread is zero."""
    row = _row(CompositionFeaturizer(), pd.DataFrame({"formula": ["Fe"]}))
    en = _prop("Fe", "Electronegativity")
    assert row["mean_Electronegativity"] == pytest.approx(en)
    assert row["min_Electronegativity"] == row["max_Electronegativity"] == pytest.approx(en)
    assert row["std_Electronegativity"] == pytest.approx(0.0)
    assert row["range_Electronegativity"] == pytest.approx(0.0)
    assert row["x_Fe"] == 1.0
    assert row["n_elements"] == 1.0


def test_weighted_statistics_of_an_oxide() -> None:
    """Fe2O3: fraction-weighted mean and std, min, max and range over the two elements."""
    row = _row(
        CompositionFeaturizer(stats=("mean", "std", "min", "max", "range", "avg_dev", "mode")),
        pd.DataFrame({"formula": ["Fe2O3"]}),
    )
    fe, o = _prop("Fe", "Electronegativity"), _prop("O", "Electronegativity")
    mean = 0.4 * fe + 0.6 * o
    assert row["x_Fe"] == pytest.approx(0.4)
    assert row["x_O"] == pytest.approx(0.6)
    assert row["mean_Electronegativity"] == pytest.approx(mean)
    assert row["std_Electronegativity"] == pytest.approx(
        np.sqrt(0.4 * (fe - mean) ** 2 + 0.6 * (o - mean) ** 2)
    )
    assert row["avg_dev_Electronegativity"] == pytest.approx(
        0.4 * abs(fe - mean) + 0.6 * abs(o - mean)
    )
    assert row["range_Electronegativity"] == pytest.approx(abs(o - fe))
    assert row["mode_Electronegativity"] == pytest.approx(o)
    assert row["norm_2"] == pytest.approx(np.sqrt(0.4**2 + 0.6**2))


def test_unseen_element_has_no_fraction_column_but_counts_in_statistics() -> None:
    """Fraction columns are the elements seen in fit; later rows still get full statistics."""
    featurizer = CompositionFeaturizer().fit(pd.DataFrame({"formula": ["Fe2O3"]}))
    out = featurizer.transform(pd.DataFrame({"formula": ["NiO"]}))
    names = list(featurizer.get_feature_names_out())
    assert "x_Ni" not in names
    assert out[0, names.index("x_O")] == pytest.approx(0.5)
    assert out[0, names.index("mean_Number")] == pytest.approx((28 + 8) / 2)


def test_element_without_properties_gives_nan_statistics() -> None:
    """Californium is a real element missing from the table: NaN, not silently wrong numbers."""
    out = CompositionFeaturizer().fit_transform(pd.DataFrame({"formula": ["CfO2", "FeO"]}))
    assert np.isnan(out[0, -1])
    assert np.isfinite(out[1]).all()


def test_bad_formula_names_the_row() -> None:
    """A bad value in a column says which row."""
    with pytest.raises(FormulaError, match="row 1: unknown element"):
        CompositionFeaturizer().fit(pd.DataFrame({"formula": ["Fe", "Qq2"]}))


def test_unknown_statistic_refused() -> None:
    """Statistic names are a closed set."""
    with pytest.raises(TrainingSetError, match="unknown statistics"):
        CompositionFeaturizer(stats=("mean", "median")).fit(pd.DataFrame({"formula": ["Fe"]}))


def test_clone_keeps_parameters() -> None:
    """Featurisers are proper estimators: clone and get_params work inside pipelines."""
    featurizer = CompositionFeaturizer(column="comp", stats=("mean",), fractions=False)
    copy = clone(featurizer)
    assert copy.get_params() == featurizer.get_params()
    out = copy.fit_transform(pd.DataFrame({"comp": ["NaCl"]}))
    assert out.shape == (1, 6 + 22)  # stoichiometry (6) + one statistic of 22 properties


@pytest.mark.parametrize(
    ("column", "symbol"),
    [
        ("ni_wt_pct", "Ni"),
        ("c_wt_pct", "C"),
        ("Cr_wt", "Cr"),
        ("nb_wtpct", "Nb"),
        ("xx_wt_pct", None),
        ("yield_strength_mpa", None),
    ],
)
def test_weight_percent_column_names(column: str, symbol: str | None) -> None:
    """Column names map to elements only when they name one."""
    assert weight_percent_element(column) == symbol


def test_weight_to_atomic_fractions() -> None:
    """Weight percent becomes atomic fraction through the atomic weights."""
    frame = pd.DataFrame({"fe_wt_pct": [50.0], "al_wt_pct": [50.0]})
    row = _row(WeightPercentFeaturizer(columns=["fe_wt_pct", "al_wt_pct"]), frame)
    fe, al = 50 / 55.845, 50 / 26.9815386
    assert row["x_Al"] == pytest.approx(al / (fe + al), rel=1e-4)
    assert row["x_Fe"] + row["x_Al"] == pytest.approx(1.0)


def test_weight_percent_on_the_superalloys(ni_frame: pd.DataFrame) -> None:
    """Real alloys: blanks and footnoted entries ('2*') count as absent, rows stay finite."""
    columns = [c for c in ni_frame.columns if c.endswith("_wt_pct")]
    out = WeightPercentFeaturizer(columns=columns).fit_transform(ni_frame[columns])
    assert out.shape == (len(ni_frame), len(columns) + 5 * 22)
    assert np.isfinite(out).all()
    fractions = out[:, : len(columns)]
    assert np.allclose(fractions.sum(axis=1), 1.0)


def test_weight_percent_all_zero_row_is_unknown() -> None:
    """A row without any composition is NaN, not the statistics of nothing."""
    frame = pd.DataFrame({"fe_wt_pct": [0.0, 10.0], "ni_wt_pct": [np.nan, 90.0]})
    out = WeightPercentFeaturizer(columns=["fe_wt_pct", "ni_wt_pct"]).fit_transform(frame)
    assert np.isnan(out[0]).all()
    assert np.isfinite(out[1]).all()


def test_weight_percent_refuses_non_element_columns() -> None:
    """A column that does not name an element is an error, not a silent zero."""
    with pytest.raises(TrainingSetError, match="not weight-percent"):
        WeightPercentFeaturizer(columns=["fe_wt_pct", "density"]).fit(
            pd.DataFrame({"fe_wt_pct": [1.0], "density": [7.8]})
        )
