"""Model cards: inputs with roles and units, metrics, slices, inherited licences and obligations."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from training_samples import ni_superalloy_columns

from training.cards import ModelCard
from training.runs import TrainingRun, run_training

UPSTREAM = {
    "request_id": "req-upstream",
    "dataset": "partner/ni_superalloys",
    "license": "CC-BY-4.0",
    "obligations": [{"kind": "attribute", "detail": "Partner lab (2024)"}],
}
# the shape a node's slice manifest has (gateway.slices), as the client leaves it in df.attrs
MANIFEST = {
    "id": "req-1",
    "dataset": "nims/ni_superalloys",
    "dataset_version": "1",
    "purpose": "ml-training",
    "licence": "Apache-2.0",
    "obligations": [
        {"kind": "attribute", "detail": "Conduit et al., Mater. Des. 131, 358 (2017)"},
        {"kind": "no-redistribution", "detail": ""},
    ],
    "decision": {"withheld": ["doi"], "masked": {"ht2_cooling": "redact"}, "reasons": []},
    "upstream": [UPSTREAM],
}


@pytest.fixture(scope="module")
def run(ni_frame: pd.DataFrame) -> TrainingRun:
    """A compute-to-data style run on a slice that carries its manifest."""
    labelled = ni_frame.dropna(subset=["yield_strength_mpa"]).sample(300, random_state=2)
    labelled = labelled.drop(columns=["doi"])  # withheld by the policy
    labelled["ht2_cooling"] = "***"
    labelled.attrs["matgate"] = MANIFEST
    labelled.attrs["matgate_signature"] = "eyJhbGciOiJFZERTQSJ9.signed.manifest"
    return run_training(
        labelled,
        ni_superalloy_columns(),
        "yield_strength_mpa",
        purpose="ml-training",
        cv=3,
        params={"n_estimators": 20},
        name="ni-yield",
        description="Yield strength of Ni superalloys from composition and heat treatment.",
    )


def test_card_inputs_and_target(run: TrainingRun) -> None:
    """Inputs carry PSPP roles and units; the masked column is not among them."""
    card = run.card
    inputs = {i["name"]: i for i in card.inputs}
    assert inputs["test_temperature_c"] == {
        "name": "test_temperature_c",
        "role": "condition",
        "kind": "numeric",
        "unit": "degC",
        "description": "",
    }
    assert inputs["cr_wt_pct"]["role"] == "structure" and inputs["cr_wt_pct"]["unit"] == "wt%"
    assert "ht2_cooling" not in inputs
    assert card.excluded["ht2_cooling"] == "masked in the slice"
    assert card.target["name"] == "yield_strength_mpa" and card.target["unit"] == "MPa"
    assert card.estimator == "random_forest" and card.rows == 300


def test_card_metrics_and_cv(run: TrainingRun) -> None:
    """The card's metrics are the model's cross-validated ones."""
    assert run.card.metrics["mae"] == pytest.approx(run.model.metrics["mae"])
    assert run.card.cv["folds"] == 3 and run.card.cv["random_state"] == 0
    assert run.card.cv["protocol"].startswith("rows with identical inputs merged")


def test_card_inherits_licences_and_obligations(run: TrainingRun) -> None:
    """Licences and obligations of the slice and of its upstream slice, each once."""
    card = run.card
    assert card.datasets == ["nims/ni_superalloys", "partner/ni_superalloys"]
    assert card.licenses == ["Apache-2.0", "CC-BY-4.0"]
    kinds = [o["kind"] for o in card.obligations]
    assert kinds == ["attribute", "no-redistribution", "attribute"]
    assert card.manifests[0]["id"] == "req-1"
    assert card.purpose == "ml-training"


def test_content_hash_detects_edits(run: TrainingRun) -> None:
    """The JSON round-trips; an edited card no longer matches its hash."""
    data = json.loads(json.dumps(run.card.to_dict()))
    assert ModelCard.from_dict(data) == run.card
    data["licenses"] = ["CC0-1.0"]
    with pytest.raises(ValueError, match="content hash mismatch"):
        ModelCard.from_dict(data)


def test_markdown(run: TrainingRun) -> None:
    """The human-readable card shows purpose, target, inputs, metrics and terms."""
    text = run.card.to_markdown()
    assert text.startswith("# Model card: ni-yield")
    assert "- purpose: ml-training" in text
    assert "| `test_temperature_c` | condition | degC | numeric |" in text
    assert "## Metrics (3-fold cross-validation)" in text
    assert "obligation: attribute: Conduit et al." in text
    assert "- licences: Apache-2.0, CC-BY-4.0" in text
    assert "`ht2_cooling`: masked in the slice" in text


def test_lineage_of_the_run(run: TrainingRun) -> None:
    """The run links its slices (manifests) and datasets to the model."""
    lineage = run.lineage()
    assert lineage["model_id"] == run.card.model_id
    assert lineage["slices"] == ["req-1"]
    assert lineage["datasets"] == ["nims/ni_superalloys", "partner/ni_superalloys"]
    assert lineage["purpose"] == "ml-training"
    assert lineage["card_hash"] == run.card.content_hash
    assert len(lineage["run_id"]) == 32 and lineage["run_id"] != lineage["model_id"]
    body = json.loads(json.dumps(run.to_dict()))
    assert body["training_set"]["dropped"]["doi"].startswith("PSPP role 'identifier'")


def test_body_for_registering_the_run(run: TrainingRun) -> None:
    """What the lineage endpoint takes: the signed manifests, model name, hash and metrics."""
    body = run.run_body(model_hash="sha256:abc")
    assert body["manifests"] == ["eyJhbGciOiJFZERTQSJ9.signed.manifest"]
    assert body["model_name"] == "ni-yield" and body["model_hash"] == "sha256:abc"
    assert body["metrics"]["mae"] == pytest.approx(run.model.metrics["mae"])
    assert set(body["metrics"]) == {"mae", "rmse", "r2"}
    assert body["purpose"] == "ml-training"
    assert json.loads(json.dumps(body)) == body


def test_explicit_manifests_override_attrs(run: TrainingRun) -> None:
    """Manifests passed in win over those on the frame."""
    card = ModelCard.from_model(run.model, purpose="research", manifests=[UPSTREAM])
    assert card.licenses == ["CC-BY-4.0"]
    assert card.model_id != run.card.model_id


def test_card_states_how_the_trees_are_combined(run: TrainingRun) -> None:
    """The prediction rule (a random forest: the plain mean of its trees) is on the card and its
    Markdown, and is hashed: editing it is detected."""
    card = run.card
    assert card.prediction == "mean of 20 trees"
    assert f"- prediction: {card.prediction}" in card.to_markdown()
    edited = {**card.to_dict(), "prediction": "median of 20 trees"}
    with pytest.raises(ValueError, match="altered"):
        ModelCard.from_dict(edited)


def test_cards_written_before_the_prediction_field_keep_their_hash(run: TrainingRun) -> None:
    """A card stored without ``prediction`` (older files) still loads and verifies."""
    older = {k: v for k, v in run.card.to_dict().items() if k not in ("prediction", "content_hash")}
    hashed = ModelCard(**older).content_hash
    card = ModelCard.from_dict({**older, "content_hash": hashed})
    assert card.prediction == ""
    assert card.content_hash == hashed
