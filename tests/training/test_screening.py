"""Inverse screening: ranking, grids and samples, constraints, balance, expected improvement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from training_samples import formula_columns, ni_superalloy_columns

from training.datasets import TrainingSet
from training.errors import ScreeningError
from training.models import ForwardModel, train_forward
from training.screening import EI, MEAN, RANK, STD, expected_improvement, screen


@pytest.fixture(scope="module")
def ni_model(ni_frame: pd.DataFrame) -> ForwardModel:
    """A small forest on 400 labelled superalloys (no CV: screening needs only the fit)."""
    labelled = ni_frame.dropna(subset=["yield_strength_mpa"]).sample(400, random_state=5)
    ts = TrainingSet.from_frame(labelled, ni_superalloy_columns(), "yield_strength_mpa")
    return train_forward(ts, "random_forest", cv=None, random_state=0, params={"n_estimators": 30})


@pytest.fixture(scope="module")
def steels_ridge(steels_frame: pd.DataFrame) -> ForwardModel:
    """A ridge model on the steels (no uncertainty)."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    return train_forward(ts, "ridge", cv=None)


@pytest.fixture(scope="module")
def base_alloy(ni_frame: pd.DataFrame) -> pd.Series:
    """A measured alloy whose other settings the screens keep."""
    return ni_frame.dropna(subset=["yield_strength_mpa"]).iloc[0]


HEAT = {"ht1_temperature_c": [1000, 1080, 1160], "ht2_temperature_c": [700, 760, 820, 870]}


def test_grid_ranked_by_prediction(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """Every grid point is scored and the result is sorted best first, with ranks."""
    result = screen(
        ni_model, grid=HEAT, base=base_alloy, fixed={"test_temperature_c": 700}, top=None
    )
    assert len(result) == 12
    assert list(result[RANK]) == list(range(1, 13))
    assert result[MEAN].is_monotonic_decreasing
    assert (result["test_temperature_c"] == 700).all()
    assert (result["cr_wt_pct"] == base_alloy["cr_wt_pct"]).all()
    again = ni_model.predict(result)
    assert np.allclose(again, result[MEAN])
    assert (result[STD] > 0).all()
    assert result.attrs["candidates"] == 12 and result.attrs["imputed"] == []


def test_minimize_and_top(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """maximize=False ranks the lowest first; top keeps the best few."""
    low = screen(ni_model, grid=HEAT, base=base_alloy, maximize=False, top=3)
    everything = screen(ni_model, grid=HEAT, base=base_alloy, top=None)
    assert len(low) == 3
    assert low[MEAN].is_monotonic_increasing
    assert low[MEAN].iloc[0] == pytest.approx(everything[MEAN].min())


def test_candidate_table_crossed_with_grid(ni_model: ForwardModel, ni_frame: pd.DataFrame) -> None:
    """Each alloy of a table is tried at each test temperature."""
    alloys = ni_frame.dropna(subset=["yield_strength_mpa"]).head(4)
    inputs = alloys[[n for n in ni_model.input_names if n != "test_temperature_c"]]
    result = screen(ni_model, inputs, grid={"test_temperature_c": [20, 700]}, top=None)
    assert len(result) == 8
    assert sorted(result["test_temperature_c"].unique()) == [20, 700]


def test_missing_inputs_are_listed_as_imputed(ni_model: ForwardModel) -> None:
    """Inputs nobody set are imputed by the pipeline and said to be."""
    result = screen(ni_model, grid={"test_temperature_c": [20, 700]})
    assert "cr_wt_pct" in result.attrs["imputed"]
    assert "test_temperature_c" not in result.attrs["imputed"]


def test_latin_hypercube_sample_within_ranges(
    ni_model: ForwardModel, base_alloy: pd.Series
) -> None:
    """Sampled candidates cover each range once per stratum and stay inside it."""
    result = screen(
        ni_model,
        ranges={"ht1_temperature_c": (1000.0, 1200.0), "ht1_time_h": (1.0, 9.0)},
        samples=50,
        base=base_alloy,
        top=None,
        random_state=4,
    )
    assert len(result) == 50
    temps = result["ht1_temperature_c"].to_numpy()
    assert temps.min() >= 1000.0 and temps.max() <= 1200.0
    strata = np.floor((temps - 1000.0) / 200.0 * 50).astype(int)
    assert sorted(strata) == list(range(50))


@pytest.mark.parametrize(
    "constraints",
    [
        {"ht1_temperature_c": (None, 1100)},
        [("ht1_temperature_c", "<=", 1100)],
        [lambda frame: frame["ht1_temperature_c"] <= 1100],
    ],
)
def test_constraints_on_inputs(
    ni_model: ForwardModel, base_alloy: pd.Series, constraints: object
) -> None:
    """Bounds, (column, op, value) and callables all filter candidates the same way."""
    result = screen(ni_model, grid=HEAT, base=base_alloy, constraints=constraints, top=None)  # type: ignore[arg-type]
    assert len(result) == 8
    assert (result["ht1_temperature_c"] <= 1100).all()
    assert list(result[RANK]) == list(range(1, 9))
    assert result.attrs["feasible"] == 8 and result.attrs["candidates"] == 12


def test_constraint_on_prediction(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """Candidates can be constrained on their predicted uncertainty."""
    everything = screen(ni_model, grid=HEAT, base=base_alloy, top=None)
    cut = float(everything[STD].median())
    result = screen(ni_model, grid=HEAT, base=base_alloy, constraints=[(STD, "<=", cut)], top=None)
    assert 0 < len(result) < 12
    assert (result[STD] <= cut).all()


def test_balance_element(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """The balance element makes each candidate's weight percents sum to 100."""
    result = screen(
        ni_model,
        grid={"cr_wt_pct": [10.0, 15.0, 20.0]},
        base=base_alloy,
        balance="ni_wt_pct",
        top=None,
    )
    wt = [n for n in ni_model.input_names if n.endswith("_wt_pct")]
    totals = result[wt].apply(pd.to_numeric, errors="coerce").fillna(0).sum(axis=1)
    assert np.allclose(totals, 100.0)
    by_cr = result.set_index("cr_wt_pct")["ni_wt_pct"]
    assert by_cr[10.0] - by_cr[20.0] == pytest.approx(10.0)


def test_derive_recomputes_dependent_inputs(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """A derive hook keeps summary inputs consistent with the varied ones."""

    def derive(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(max_ht_temperature_c=frame["ht1_temperature_c"])

    result = screen(ni_model, grid=HEAT, base=base_alloy, derive=derive, top=None)
    assert (result["max_ht_temperature_c"] == result["ht1_temperature_c"]).all()


def test_expected_improvement_formula() -> None:
    """EI against hand-computed values; zero spread gives the plain gain."""
    ei = expected_improvement(np.array([10.0, 10.0, 8.0]), np.array([2.0, 0.0, 0.0]), best=10.0)
    assert ei[0] == pytest.approx(2.0 / np.sqrt(2.0 * np.pi))  # gain 0: sigma * pdf(0)
    assert ei[1] == 0.0 and ei[2] == 0.0
    lower = expected_improvement(np.array([8.0]), np.array([0.0]), best=10.0, maximize=False)
    assert lower[0] == pytest.approx(2.0)
    from scipy.stats import norm

    z = (12.0 - 10.0) / 3.0
    expected = (12.0 - 10.0) * norm.cdf(z) + 3.0 * norm.pdf(z)
    assert expected_improvement(np.array([12.0]), np.array([3.0]), 10.0)[0] == pytest.approx(
        expected
    )


def test_ei_ranking(ni_model: ForwardModel, base_alloy: pd.Series) -> None:
    """acquisition='ei' ranks by expected improvement over the best measured value."""
    result = screen(ni_model, grid=HEAT, base=base_alloy, acquisition="ei", top=None)
    assert result[EI].is_monotonic_decreasing
    assert (result[EI] >= 0).all()
    assert result.attrs["best_so_far"] == pytest.approx(ni_model.y_true.max())
    recomputed = expected_improvement(result[MEAN], result[STD], result.attrs["best_so_far"])
    assert np.allclose(recomputed, result[EI])
    low_bar = screen(ni_model, grid=HEAT, base=base_alloy, acquisition="ei", best_so_far=0.0)
    assert (low_bar[EI] >= low_bar[MEAN] - 1e-6).all()


def test_ei_needs_uncertainty(steels_ridge: ForwardModel) -> None:
    """Ridge has no uncertainty, so expected improvement is refused with the reason."""
    with pytest.raises(ScreeningError, match="needs an uncertainty; ridge gives none"):
        screen(steels_ridge, pd.DataFrame({"formula": ["Fe0.9C0.1"]}), acquisition="ei")


def test_formula_candidates(steels_ridge: ForwardModel) -> None:
    """Composition candidates are scored through the featuriser."""
    table = pd.DataFrame({"formula": ["Fe0.98C0.02", "Fe0.7Ni0.2Co0.1", "Fe0.6Co0.2Ni0.2"]})
    result = screen(steels_ridge, table)
    assert set(result["formula"]) == set(table["formula"])
    assert result[STD].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "nothing to screen"),
        ({"grid": {"hardness": [1, 2]}}, "not inputs of the model"),
        ({"grid": {"ht1_temperature_c": list(range(1000))}, "max_candidates": 500}, "exceed"),
        ({"ranges": {"ht1_time_h": (1.0, 2.0)}}, "samples >= 1"),
        ({"ranges": {"ht1_time_h": (3.0, 2.0)}, "samples": 4}, "empty"),
        ({"grid": HEAT, "acquisition": "ucb"}, "acquisition"),
        ({"grid": HEAT, "fixed": {"colour": 1}}, "not an input"),
        ({"grid": HEAT, "constraints": [("ht1_time_h", "~", 1)]}, "operator"),
        ({"grid": HEAT, "balance": "ht1_time_h"}, "not a weight-percent input"),
    ],
)
def test_bad_screens(ni_model: ForwardModel, kwargs: dict[str, object], message: str) -> None:
    """Mistakes in a screen are errors that say what is wrong, not silent no-ops."""
    with pytest.raises(ScreeningError, match=message):
        screen(ni_model, **kwargs)  # type: ignore[arg-type]
