"""Compute-to-data: the train action, bounded jobs off the event loop, models that leave alone."""

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
    # the model file leaves, with the hash the lineage recorded
    model = api.get(f"/jobs/{job['id']}/model", headers=partner)
    assert model.status_code == 200
    import hashlib

    assert hashlib.sha256(model.content).hexdigest() == result["model_sha256"]
    from training.store import loads_model

    restored = loads_model(model.content)
    assert restored.metrics["mae"] == pytest.approx(result["model"]["metrics"]["mae"])
    # and the lineage shows dataset -> slice -> principal -> run -> model
    graph = api.get("/lineage", params={"principal": "borealis:pablo"}, headers=partner).json()
    assert {"dataset", "slice", "principal", "run", "model"} <= {n["type"] for n in graph["nodes"]}
    # nobody else can see the job
    assert api.get(f"/jobs/{job['id']}", headers=auth["ml-user"]).status_code == 404


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
