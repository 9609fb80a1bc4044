"""Compute-to-data: the train action, bounded jobs off the event loop, models that stay on the
node (predictions leave; the file only under export-model)."""

from __future__ import annotations

import time

import pytest

from gateway.config import Limits

NI = "aurora/ni-superalloys"
TRAIN_ONLY = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "train",
    "purpose": "ml-training",
    "withhold": ["sensitivity:confidential", "sensitivity:personal"],
    "mask": "hash",
}


def wait(api, headers, job, seconds=120):
    deadline = time.monotonic() + seconds
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = api.get(f"/jobs/{job['id']}", headers=headers).json()
    return job


def start(api, headers, **body):
    body = {"target": "yield_strength_mpa", "cv": 3, "estimator": "random_forest", **body}
    return api.post(f"/datasets/{NI}/train", json=body, headers=headers)


EXPORT = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "export-model",
    "purpose": "ml-training",
}


def test_train_only_policy_keeps_rows_home_and_masked_columns_out(fresh):
    api, auth = fresh
    partner = auth["partner"]
    read = api.post(f"/datasets/{NI}/slice", json={"purpose": "ml-training"}, headers=partner)
    assert read.status_code == 403
    assert start(api, partner).status_code == 403  # no train line yet
    r = api.post("/policies/aurora", json={"add": [TRAIN_ONLY]}, headers=auth["steward"])
    assert r.status_code == 200, r.text
    assert (
        api.post(
            f"/datasets/{NI}/slice", json={"purpose": "ml-training"}, headers=partner
        ).status_code
        == 403
    )
    accepted = start(api, partner, filter="yield_strength_mpa IS KNOWN")
    assert accepted.status_code == 202, accepted.text
    job = wait(api, partner, accepted.json())
    assert job["status"] == "done", job
    result = job["result"]
    inputs = {i["name"] for i in result["model"]["inputs"]}
    assert "ni_wt_pct" in inputs and "test_temperature_c" in inputs
    assert not inputs & {"operator", "sponsor", "release_at", "alloy", "record_id"}
    assert result["model"]["metrics"]["mae"] > 0
    assert result["manifest"]["released"] is False
    assert result["card"]["purpose"] == "ml-training"
    # the partner may not read the rows: the forest is held to leaves of five rows or more
    assert result["kept"] == {
        "where": "aurora",
        "regularised": {"min_samples_leaf": 5},
        "use": ["predict", "screen"],
        "export": "only where policy grants export-model",
    }
    assert result["card"]["params"]["min_samples_leaf"] == 5
    # the model stays: no file without export-model, the reasons say why
    refused = api.get(f"/jobs/{job['id']}/model", headers=partner)
    assert refused.status_code == 403
    assert any("export-model" in reason for reason in refused.json()["reasons"])
    # it predicts where it is
    row = {name: None for name in inputs} | {"ni_wt_pct": 58.0, "test_temperature_c": 760.0}
    answer = api.post(f"/jobs/{job['id']}/predict", json={"rows": [row]}, headers=partner)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["mean"] > 0 and prediction["mean"] == float(f"{prediction['mean']:.2g}")
    # with export-model granted the file leaves, with the hash the lineage recorded
    r = api.post("/policies/aurora", json={"add": [EXPORT]}, headers=auth["steward"])
    assert r.status_code == 200, r.text
    model = api.get(f"/jobs/{job['id']}/model", headers=partner)
    assert model.status_code == 200
    import hashlib

    assert hashlib.sha256(model.content).hexdigest() == result["model_sha256"]
    from training.store import loads_model

    restored = loads_model(model.content)
    assert restored.metrics["mae"] == pytest.approx(result["model"]["metrics"]["mae"])
    assert restored.y_true.size == 0 and restored.oof_predictions.size == 0
    # and the lineage shows dataset -> slice -> principal -> run -> model
    graph = api.get("/lineage", params={"principal": "borealis:pablo"}, headers=partner).json()
    assert {"dataset", "slice", "principal", "run", "model"} <= {n["type"] for n in graph["nodes"]}
    # nobody else can see the job
    assert api.get(f"/jobs/{job['id']}", headers=auth["ml-user"]).status_code == 404


def test_predictions_stop_when_the_train_line_goes(fresh):
    api, auth = fresh
    partner = auth["partner"]
    api.post("/policies/aurora", json={"add": [TRAIN_ONLY]}, headers=auth["steward"])
    job = wait(api, partner, start(api, partner, estimator="ridge").json())
    assert job["status"] == "done", job
    row = {i["name"]: None for i in job["result"]["model"]["inputs"]} | {"ni_wt_pct": 58.0}
    url = f"/jobs/{job['id']}/predict"
    assert api.post(url, json={"rows": [row]}, headers=partner).status_code == 200
    r = api.post("/policies/aurora", json={"remove": [TRAIN_ONLY]}, headers=auth["steward"])
    assert r.status_code == 200, r.text
    refused = api.post(url, json={"rows": [row]}, headers=partner)
    assert refused.status_code == 403 and refused.json()["reasons"]


@pytest.mark.parametrize(
    ("who", "estimator", "status"),
    [
        ("partner", "gaussian_process", 422),  # train-only: it would keep every row
        ("partner", "ridge", 202),
        ("ml-user", "gaussian_process", 202),  # she may read the rows anyway
    ],
)
def test_memorising_estimators_only_on_readable_data(fresh, who, estimator, status):
    api, auth = fresh
    api.post("/policies/aurora", json={"add": [TRAIN_ONLY]}, headers=auth["steward"])
    r = start(api, auth[who], estimator=estimator, filter="yield_strength_mpa IS KNOWN")
    assert r.status_code == status, r.text
    if status == 202:  # let the job finish before the node goes
        assert wait(api, auth[who], r.json())["status"] == "done"


def test_the_default_learner_is_extra_trees_held_to_five_rows_a_leaf(fresh):
    """A job that names no estimator trains the default extra trees, regularised on rows its
    user may not read."""
    api, auth = fresh
    api.post("/policies/aurora", json={"add": [TRAIN_ONLY]}, headers=auth["steward"])
    body = {"target": "yield_strength_mpa", "cv": None, "filter": "yield_strength_mpa IS KNOWN"}
    r = api.post(f"/datasets/{NI}/train", json=body, headers=auth["partner"])
    assert r.status_code == 202, r.text
    job = wait(api, auth["partner"], r.json(), seconds=300)
    assert job["status"] == "done", job
    card = job["result"]["card"]
    assert card["estimator"] == "extra_trees" and card["params"]["min_samples_leaf"] == 5


def test_row_limit_is_enforced(fresh, monkeypatch):
    api, auth = fresh
    node = api.app.state.node
    tight = node.config.model_copy(update={"limits": Limits(train_max_rows=100)})
    monkeypatch.setattr(node, "config", tight)
    job = wait(api, auth["ml-user"], start(api, auth["ml-user"]).json())
    assert job["status"] == "failed"
    assert job["error"]["status"] == 413
    assert "100" in job["error"]["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"target": "nope"}, 202),  # accepted, then fails in the job with a clear reason
        ({"estimator": "deep_magic"}, 422),
        ({"cv": 1}, 422),
        ({"filter": "yield_strength_mpa >"}, 400),
    ],
)
def test_bad_training_requests(api, auth, body, status):
    r = start(api, auth["ml-user"], **body)
    assert r.status_code == status, r.text
    if status == 202:
        job = wait(api, auth["ml-user"], r.json())
        assert job["status"] == "failed" and "nope" in job["error"]["detail"]


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"withhold": ["sensitivity:personal"]}, 422),  # a model leaves whole or not at all
        ({"keep": ["alloy"]}, 422),
        ({"rows": "test_temperature_c > 600"}, 422),
        ({"action": "export-models"}, 422),  # not an action
    ],
)
def test_export_model_lines_take_no_column_or_row_rules(api, auth, extra, status):
    line = {**EXPORT, **extra}
    r = api.post("/policies/aurora", json={"add": [line]}, headers=auth["steward"])
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
