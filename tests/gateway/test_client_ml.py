"""The client's ML path against a live node: training set, forward model, screening, lineage,
and compute-to-data."""

from __future__ import annotations

import pandas as pd
import pytest

from gateway import errors
from gateway.client import Client

NI = "aurora/ni-superalloys"


@pytest.fixture
def client(live, tokens):
    with Client(live, token=tokens["ml-user"], progress=False) as c:
        yield c


def test_training_set_by_pspp_role(client):
    ts = client.training_set(NI, "yield_strength_mpa", filter="yield_strength_mpa IS KNOWN")
    roles = {spec.name: spec.role for spec in ts.inputs}
    assert roles["ni_wt_pct"] == "processing"
    assert roles["test_temperature_c"] == "condition"
    assert roles["strengthening_precipitate_phase"] == "structure"
    assert "yield_strength_mpa" not in roles and "alloy" not in roles
    assert ts.target.unit == "MPa"
    assert len(ts.signatures) == 1


def test_train_screen_register(client):
    ts = client.training_set("aurora/steels-yield", "target")
    run = client.train_forward(ts, estimator="ridge", cv=3, name="steel-ridge")
    assert run.model.metrics["mae"] > 0
    assert run.card.manifests and run.card.purpose == "ml-training"
    candidates = ts.X.head(20)
    ranked = client.screen(run, candidates=candidates, top=5)
    assert len(ranked) == 5
    predicted = list(ranked["pred_mean"])
    assert predicted == sorted(predicted, reverse=True)
    assert ranked["pred_mean"].iloc[0] == pytest.approx(max(run.model.predict(candidates)))
    registered = client.register_run(run)
    assert registered["model_name"] == "steel-ridge"
    graph = client.get("/lineage", params={"principal": "aurora:mia"})
    models = [n for n in graph["nodes"] if n["type"] == "model"]
    assert any("steel-ridge" in n["id"] for n in models)


def test_ml_training_refused_when_policy_allows_only_research(live, tokens):
    with Client(live, token=tokens["partner"], progress=False) as partner:
        with pytest.raises(errors.Forbidden) as refused:
            partner.training_set(NI, "yield_strength_mpa", purpose="ml-training")
        assert refused.value.extra["reasons"]


def test_train_remote(client):
    model, result = client.train_remote(
        "aurora/steels-yield", "target", estimator="ridge", cv=3, model_name="steel-remote"
    )
    assert result["run"]["model_name"] == "steel-remote"
    assert model.metrics["mae"] == pytest.approx(result["model"]["metrics"]["mae"])
    # the model stays on the node and predicts there
    ts = client.training_set("aurora/steels-yield", "target")
    (formula,) = ts.X.columns  # steels are described by their composition alone
    made_up = ["Fe0.613Cr0.211Ni0.176", "Fe0.702Co0.153Mo0.145", "Fe0.81Mn0.12Si0.07"]
    fresh = pd.DataFrame({formula: made_up})  # compositions no training row has
    predicted = model.predict(fresh)
    assert len(predicted) == 3 and predicted["pred_mean"].notna().all()
    with pytest.raises(errors.Unprocessable):
        model.predict(ts.X.head(1))  # a training row's own inputs
    ranked = model.screen(candidates=fresh, top=2)
    assert len(ranked) == 2 and list(ranked["rank"]) == [1, 2]
    # a member of Aurora may take the file home (export-model), sanitised
    local = model.download()
    assert local.y_true.size == 0
    assert list(local.predict(fresh)) == pytest.approx(list(predicted["pred_mean"]), rel=0.05)
