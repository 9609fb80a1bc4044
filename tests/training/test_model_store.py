"""Saving and loading models with skops: round trip, tampering, and refusing untrusted types."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer
from training_samples import formula_columns, ni_superalloy_columns

from training.cards import ModelCard
from training.datasets import TrainingSet
from training.errors import TrainingError, UntrustedModelError
from training.models import train_forward
from training.pipelines import SPREAD_ESTIMATORS
from training.store import card_path, dumps_model, load_card, load_model, loads_model, save_model


@pytest.fixture(scope="module")
def ni_set(ni_frame: pd.DataFrame) -> TrainingSet:
    """150 labelled superalloys."""
    labelled = ni_frame.dropna(subset=["yield_strength_mpa"]).head(150)
    return TrainingSet.from_frame(labelled, ni_superalloy_columns(), "yield_strength_mpa")


@pytest.fixture(scope="module")
def steels_set(steels_frame: pd.DataFrame) -> TrainingSet:
    """The steels."""
    return TrainingSet.from_frame(steels_frame, formula_columns(), "target")


PARAMS = {
    "extra_trees": {"n_estimators": 10},
    "random_forest": {"n_estimators": 10},
    "gradient_boosting": {"max_iter": 20},
    "ridge": None,
    "gaussian_process": None,
}


@pytest.mark.parametrize("estimator", list(PARAMS))
def test_round_trip_every_estimator(
    tmp_path: Path, ni_set: TrainingSet, steels_set: TrainingSet, estimator: str
) -> None:
    """Each kind of pipeline saves and loads under the allow-list, predicting the same."""
    for ts in (ni_set, steels_set):
        model = train_forward(ts, estimator, cv=2, params=PARAMS[estimator])
        card = save_model(model, tmp_path / f"{estimator}-{ts.target.name}")
        loaded = load_model(tmp_path / f"{estimator}-{ts.target.name}.skops")
        rows = ts.X.head(7)
        assert np.allclose(loaded.predict(rows), model.predict(rows))
        _, std = loaded.predict(rows, return_std=True)
        assert np.isfinite(std).all() == (estimator in {*SPREAD_ESTIMATORS, "gaussian_process"})
        assert np.allclose(loaded.predict_interval(rows)[1], model.predict_interval(rows)[1])
        assert np.allclose(loaded.domain_score(rows), model.domain_score(rows))
        assert loaded.metrics == pytest.approx(model.metrics)
        assert loaded.inputs == model.inputs and loaded.target == model.target
        assert np.allclose(loaded.oof_predictions, model.oof_predictions)
        assert card.artifact_sha256 is not None


def test_card_saved_beside_the_model(tmp_path: Path, steels_set: TrainingSet) -> None:
    """The card is JSON next to the .skops file, tied to it by SHA-256."""
    model = train_forward(steels_set, "ridge", cv=3)
    card = ModelCard.from_model(model, purpose="research", manifests=[{"license": "MIT"}])
    saved = save_model(model, tmp_path / "steels", card)
    assert (tmp_path / "steels.skops").is_file()
    assert card_path(tmp_path / "steels") == tmp_path / "steels.card.json"
    on_disk = load_card(tmp_path / "steels.skops")
    assert on_disk == saved and on_disk.licenses == ["MIT"]
    assert saved.model_id == card.model_id and card.artifact_sha256 is None
    assert json.loads((tmp_path / "steels.card.json").read_text())["purpose"] == "research"


def test_not_pickle(tmp_path: Path, steels_set: TrainingSet) -> None:
    """The file is a skops zip archive, not a pickle stream."""
    save_model(train_forward(steels_set, "ridge", cv=None), tmp_path / "m")
    head = (tmp_path / "m.skops").read_bytes()[:4]
    assert head == b"PK\x03\x04"


def test_refuses_untrusted_type(tmp_path: Path, steels_set: TrainingSet) -> None:
    """A file whose pipeline holds a function reference is refused, and the type is named."""
    model = train_forward(steels_set, "ridge", cv=None)
    # never called here: saving only records a reference, loading it would hand out os.system
    model.pipeline.steps.insert(-1, ("sneaky", FunctionTransformer(os.system)))
    save_model(model, tmp_path / "evil")  # the card matches: only the allow-list can stop it
    with pytest.raises(UntrustedModelError) as info:
        load_model(tmp_path / "evil")
    assert info.value.types == [f"{os.system.__module__}.system"]
    assert "outside the allow-list" in str(info.value)


def test_refuses_foreign_skops_file(tmp_path: Path) -> None:
    """Any skops file with unknown types is refused before anything is built from it."""
    sio.dump({"meta": "{}", "pipeline": FunctionTransformer(print)}, tmp_path / "x.skops")
    with pytest.raises(UntrustedModelError, match=r"builtins\.print"):
        load_model(tmp_path / "x.skops", require_card=False)


def test_refuses_file_that_does_not_match_its_card(tmp_path: Path, steels_set: TrainingSet) -> None:
    """Swapping the model file under a card is detected."""
    first = train_forward(steels_set, "ridge", cv=None)
    other = train_forward(steels_set, "random_forest", cv=None, params={"n_estimators": 5})
    save_model(first, tmp_path / "a")
    save_model(other, tmp_path / "b")
    (tmp_path / "a.skops").write_bytes((tmp_path / "b.skops").read_bytes())
    with pytest.raises(TrainingError, match="does not match the SHA-256"):
        load_model(tmp_path / "a")


def test_missing_card(tmp_path: Path, steels_set: TrainingSet) -> None:
    """Without its card a model is not loaded unless the caller says so."""
    save_model(train_forward(steels_set, "ridge", cv=None), tmp_path / "m")
    (tmp_path / "m.card.json").unlink()
    with pytest.raises(TrainingError, match="no model card"):
        load_model(tmp_path / "m")
    assert load_model(tmp_path / "m", require_card=False).estimator == "ridge"


def test_bytes_round_trip(steels_set: TrainingSet) -> None:
    """Models travel as bytes with their card (compute-to-data responses)."""
    model = train_forward(steels_set, "random_forest", cv=None, params={"n_estimators": 5})
    data, card = dumps_model(model)
    loaded = loads_model(data, card)
    assert np.allclose(loaded.predict(steels_set.X.head(3)), model.predict(steels_set.X.head(3)))
    with pytest.raises(TrainingError, match="do not match"):
        loads_model(data + b"\0", card)
