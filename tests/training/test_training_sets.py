"""PSPP-aware training sets: inputs by role, a property target, no identifiers or masked columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from training_samples import formula_columns, ni_superalloy_columns

from connectors.datasets import Column, ColumnType, PSPPRole
from training.datasets import InputKind, TrainingSet
from training.errors import TrainingSetError

TARGET = "yield_strength_mpa"


@pytest.fixture(scope="module")
def ni_set(ni_frame: pd.DataFrame) -> TrainingSet:
    """Default selection on the superalloys."""
    return TrainingSet.from_frame(ni_frame, ni_superalloy_columns(), TARGET)


def test_default_roles_choose_processing_structure_condition(ni_set: TrainingSet) -> None:
    """Inputs are exactly the processing, structure and condition columns."""
    expected = [
        c.name
        for c in ni_superalloy_columns()
        if c.pspp in (PSPPRole.PROCESSING, PSPPRole.STRUCTURE, PSPPRole.CONDITION)
    ]
    assert ni_set.input_names == expected
    roles = {s.role for s in ni_set.inputs}
    assert roles == {PSPPRole.PROCESSING, PSPPRole.STRUCTURE, PSPPRole.CONDITION}


def test_identifiers_and_other_properties_left_out_with_reasons(ni_set: TrainingSet) -> None:
    """Identifiers and the other property/performance columns are dropped, each with a reason."""
    for name in ("record_id", "alloy", "doi"):
        assert name not in ni_set.input_names
        assert "identifier" in ni_set.dropped[name]
    assert "ultimate_tensile_strength_mpa" not in ni_set.input_names
    assert "stress_rupture_time_h" in ni_set.dropped


def test_rows_without_target_dropped_and_counted(
    ni_set: TrainingSet, ni_frame: pd.DataFrame
) -> None:
    """Only labelled rows train; the rest are counted."""
    labelled = int(ni_frame[TARGET].notna().sum())
    assert len(ni_set.y) == len(ni_set.X) == labelled
    assert ni_set.rows_without_target == len(ni_frame) - labelled
    assert ni_set.y.notna().all()


def test_units_roles_and_kinds_kept(ni_set: TrainingSet) -> None:
    """Each input carries its unit, role and featurisation kind; the target its unit."""
    by_name = {s.name: s for s in ni_set.inputs}
    assert by_name["test_temperature_c"].unit == "degC"
    assert by_name["test_temperature_c"].role == PSPPRole.CONDITION
    assert by_name["cr_wt_pct"].kind == InputKind.WEIGHT_PERCENT
    assert by_name["ht1_cooling"].kind == InputKind.CATEGORICAL
    assert by_name["ht1_time_h"].kind == InputKind.NUMERIC
    assert ni_set.target.unit == "MPa"
    assert ni_set.target.role == PSPPRole.PROPERTY
    assert ni_set.summary()["target"]["unit"] == "MPa"


def test_categorical_inputs_one_hot_encoded(ni_set: TrainingSet) -> None:
    """Strings become one indicator column per category in the design matrix."""
    matrix = ni_set.design_matrix()
    cooling = [c for c in matrix.columns if c.startswith("categorical__ht1_cooling_")]
    assert "categorical__ht1_cooling_Air cooled" in cooling
    assert set(np.unique(matrix[cooling].to_numpy())) <= {0.0, 1.0}
    assert (matrix[cooling].sum(axis=1) == 1).all()
    assert matrix.select_dtypes(exclude="number").empty


def test_formula_column_featurised(steels_frame: pd.DataFrame) -> None:
    """A formula column is a structure input featurised by composition."""
    ts = TrainingSet.from_frame(steels_frame, formula_columns(), "target")
    assert [(s.name, s.kind) for s in ts.inputs] == [("formula", InputKind.FORMULA)]
    names = list(ts.design_matrix().columns)
    assert "composition_formula__x_Fe" in names
    assert "composition_formula__mean_Electronegativity" in names


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ht1_temperature_c", "a forward model predicts a property or performance"),
        ("record_id", "a forward model predicts"),
        ("nonexistent", "not a column"),
    ],
)
def test_target_must_be_property_or_performance(
    ni_frame: pd.DataFrame, target: str, message: str
) -> None:
    """Processing, identifier or unknown targets are refused with the reason."""
    with pytest.raises(TrainingSetError, match=message):
        TrainingSet.from_frame(ni_frame, ni_superalloy_columns(), target)


def test_performance_target_allowed(ni_frame: pd.DataFrame) -> None:
    """Performance columns are targets too."""
    ts = TrainingSet.from_frame(ni_frame, ni_superalloy_columns(), "stress_rupture_time_h")
    assert ts.target.role == PSPPRole.PERFORMANCE


def test_explicit_inputs(ni_frame: pd.DataFrame) -> None:
    """Given inputs are used in order; an identifier among them is refused."""
    ts = TrainingSet.from_frame(
        ni_frame, ni_superalloy_columns(), TARGET, inputs=["test_temperature_c", "cr_wt_pct"]
    )
    assert ts.input_names == ["test_temperature_c", "cr_wt_pct"]
    with pytest.raises(TrainingSetError, match="identifiers are never inputs"):
        TrainingSet.from_frame(ni_frame, ni_superalloy_columns(), TARGET, inputs=["alloy"])
    with pytest.raises(TrainingSetError, match="is the target"):
        TrainingSet.from_frame(ni_frame, ni_superalloy_columns(), TARGET, inputs=[TARGET])


def test_roles_parameter(ni_frame: pd.DataFrame) -> None:
    """Only condition inputs when asked; identifier is never an input role even if asked."""
    ts = TrainingSet.from_frame(
        ni_frame, ni_superalloy_columns(), TARGET, roles=("condition", "identifier")
    )
    assert ts.input_names == ["test_temperature_c"]


def test_withheld_columns_absent(ni_frame: pd.DataFrame) -> None:
    """A column the policy withheld (not in the slice) is skipped, with the reason."""
    sliced = ni_frame.drop(columns=["test_temperature_c"])
    ts = TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET)
    assert "test_temperature_c" not in ts.input_names
    assert "withheld" in ts.dropped["test_temperature_c"]
    with pytest.raises(TrainingSetError, match="not in the slice"):
        TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET, ["test_temperature_c"])


def test_masked_columns_absent_via_manifest(ni_frame: pd.DataFrame) -> None:
    """Columns the manifest says were masked never become inputs, nor can they be asked for."""
    sliced = ni_frame.copy()
    sliced["ht1_cooling"] = "***"  # a redacted column still arrives, with placeholders
    sliced.attrs["manifest"] = {"request_id": "q1", "masked": {"ht1_cooling": "redact"}}
    ts = TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET)
    assert "ht1_cooling" not in ts.input_names
    assert ts.dropped["ht1_cooling"] == "masked in the slice"
    assert ts.manifests == ({"request_id": "q1", "masked": {"ht1_cooling": "redact"}},)
    with pytest.raises(TrainingSetError, match="masked"):
        TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET, ["ht1_cooling"])


def test_null_masked_column_absent(ni_frame: pd.DataFrame) -> None:
    """A column masked to NULL carries no values and is left out even without a manifest."""
    sliced = ni_frame.assign(cr_wt_pct=np.nan)
    ts = TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET, exclude=["co_wt_pct"])
    assert "cr_wt_pct" not in ts.input_names
    assert "co_wt_pct" not in ts.input_names
    assert "no values" in ts.dropped["cr_wt_pct"]
    with pytest.raises(TrainingSetError, match="no values in the slice"):
        TrainingSet.from_frame(sliced, ni_superalloy_columns(), TARGET, inputs=["cr_wt_pct"])


def test_free_text_is_not_a_category() -> None:
    """A string column with hundreds of distinct values is left out, not one-hot encoded."""
    frame = pd.DataFrame(
        {"note": [f"sample {i}" for i in range(200)], "t": np.arange(200.0), "y": np.arange(200.0)}
    )
    columns = (
        Column(name="note", type=ColumnType.STRING, pspp=PSPPRole.PROCESSING),
        Column(name="t", type=ColumnType.FLOAT, pspp=PSPPRole.CONDITION),
        Column(name="y", type=ColumnType.FLOAT, pspp=PSPPRole.PROPERTY),
    )
    ts = TrainingSet.from_frame(frame, columns, "y")
    assert ts.input_names == ["t"]
    assert "distinct" in ts.dropped["note"]


def test_no_usable_inputs() -> None:
    """A slice with nothing but the target is an error naming what was left out."""
    frame = pd.DataFrame({"id": ["a", "b"], "y": [1.0, 2.0]})
    columns = (
        Column(name="id", type=ColumnType.STRING, pspp=PSPPRole.IDENTIFIER),
        Column(name="y", type=ColumnType.FLOAT, pspp=PSPPRole.PROPERTY),
    )
    with pytest.raises(TrainingSetError, match="no usable inputs"):
        TrainingSet.from_frame(frame, columns, "y")
