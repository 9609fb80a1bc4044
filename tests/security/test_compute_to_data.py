"""Compute-to-data returns no rows (OWASP API 2023: API3 broken object property level
authorisation, API4 unrestricted resource consumption, API6 unrestricted access to sensitive
business flows).

A partner of Aurora may train on its superalloys but not read them. For every estimator the
node offers, every answer the partner gets (job status and card, predictions, screening, and
the model file once a steward grants ``export-model``) is searched for the training set's
target and input values: fewer than 1 % of them may appear. Then the attacks: downloading
without ``export-model``, probing a training row's inputs, overrunning the budget, and checking
that every call was recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens
from leaks import numbers_in_json, numbers_in_skops, share_appearing

from gateway.app import create_app
from gateway.demo import prepare
from gateway.kept import Budgets
from policies import Action

NI = "aurora/ni-superalloys"
TARGET = "yield_strength_mpa"
FILTER = f"{TARGET} IS KNOWN"
OFFERED = ("random_forest", "gradient_boosting", "ridge", "gaussian_process")
MEMORISING = ("gaussian_process",)
KEPT = tuple(e for e in OFFERED if e not in MEMORISING)
TRAIN_ONLY = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "train",
    "purpose": "ml-training",
    "withhold": ["sensitivity:confidential", "sensitivity:personal"],
    "mask": "hash",
}
EXPORT = {
    "role": "partner",
    "domain": "aurora",
    "dataset": "ni-superalloys",
    "action": "export-model",
    "purpose": "ml-training",
}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """A node of this module's own, where the partner may train on superalloys, not read them."""
    app = create_app(node_settings(prepare(tmp_path_factory.mktemp("c2d"), free_port())))
    tokens = persona_tokens(app.state.node.issuer)
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    with TestClient(app) as api:
        r = api.post("/policies/aurora", json={"add": [TRAIN_ONLY]}, headers=headers["steward"])
        assert r.status_code == 200, r.text
        yield api, {"headers": headers, "tokens": tokens}


def _wait(api: TestClient, headers: dict[str, str], job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = api.get(f"/jobs/{job['id']}", headers=headers).json()
    return job


@pytest.fixture(scope="module")
def trained(node) -> dict[str, Any]:
    """Each offered estimator, trained by the partner: the finished job, or the refusal."""
    api, ctx = node
    partner = ctx["headers"]["partner"]
    out: dict[str, Any] = {}
    for estimator in OFFERED:
        body = {"target": TARGET, "estimator": estimator, "cv": 3, "filter": FILTER}
        r = api.post(f"/datasets/{NI}/train", json=body, headers=partner)
        out[estimator] = _wait(api, partner, r.json()) if r.status_code == 202 else r
    return out


@pytest.fixture(scope="module")
def training(node) -> pd.DataFrame:
    """Exactly the rows the partner's models learn from, read on the node as the job reads them."""
    from gateway.compute import _read
    from gateway.formats import Format
    from gateway.slices import SliceRequest, permitted

    api, ctx = node
    n = api.app.state.node
    partner = n.auth.authenticate(ctx["tokens"]["partner"])
    req = SliceRequest(purpose="ml-training", filter=FILTER, format=Format.ARROW)
    grant = permitted(n, partner, NI, req, action=Action.TRAIN)
    return _read(n, grant).to_pandas()


def _inputs(job: dict[str, Any]) -> list[str]:
    return [i["name"] for i in job["result"]["model"]["inputs"]]


def _values(training: pd.DataFrame, job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The target values and the numeric input values of the training set."""
    numeric = [
        i["name"]
        for i in job["result"]["model"]["inputs"]
        if i["kind"] in ("numeric", "weight_percent")
    ]
    inputs = training[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(float).ravel()
    return training[TARGET].to_numpy(float), inputs


def _leaks(training: pd.DataFrame, job: dict[str, Any], numbers: set[float]) -> tuple[float, float]:
    targets, inputs = _values(training, job)
    return share_appearing(targets, numbers), share_appearing(inputs, numbers)


def _away(training: pd.DataFrame, job: dict[str, Any], n: int, shift: float) -> list[dict]:
    """``n`` rows built from training rows with every numeric input moved by ``shift`` spreads."""
    rows = training[_inputs(job)].head(n).copy()
    for spec in job["result"]["model"]["inputs"]:
        if spec["kind"] in ("numeric", "weight_percent"):
            col = pd.to_numeric(rows[spec["name"]], errors="coerce")
            spread = pd.to_numeric(training[spec["name"]], errors="coerce").std() or 1.0
            rows[spec["name"]] = col + shift * spread
    return _records(rows)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                k: None
                if isinstance(v, float) and np.isnan(v)
                else getattr(v, "item", lambda v=v: v)()
                for k, v in row.items()
            }
        )
    return out


# --- estimators that memorise rows ------------------------------------------------------------


@pytest.mark.parametrize("estimator", MEMORISING)
def test_memorising_estimators_are_refused_on_unreadable_data(trained, estimator):
    refused = trained[estimator]
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert "training row" in refused.json()["detail"]


@pytest.mark.parametrize("estimator", KEPT)
def test_tree_ensembles_are_regularised(trained, estimator):
    job = trained[estimator]
    assert job["status"] == "done", job
    kept = job["result"]["kept"]
    assert kept["where"] == "aurora"
    if estimator != "ridge":
        assert kept["regularised"]["min_samples_leaf"] >= 5
        assert job["result"]["card"]["params"]["min_samples_leaf"] >= 5


# --- what every answer holds ------------------------------------------------------------------


@pytest.mark.parametrize("estimator", KEPT)
def test_job_status_and_card_hold_no_training_values(node, trained, training, estimator):
    api, ctx = node
    job = trained[estimator]
    answer = api.get(f"/jobs/{job['id']}", headers=ctx["headers"]["partner"]).json()
    targets, inputs = _leaks(training, job, numbers_in_json(answer))
    assert targets < 0.01 and inputs < 0.01, (targets, inputs)


@pytest.mark.parametrize("estimator", KEPT)
def test_predictions_hold_no_training_values(node, trained, training, estimator):
    api, ctx = node
    job = trained[estimator]
    rows = _away(training, job, 20, 0.5)
    r = api.post(
        f"/jobs/{job['id']}/predict", json={"rows": rows}, headers=ctx["headers"]["partner"]
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert len(answer["predictions"]) == 20 and answer["digits"] == 2
    targets, inputs = _leaks(training, job, numbers_in_json(answer))
    assert targets < 0.01 and inputs < 0.01, (targets, inputs)


@pytest.mark.parametrize("estimator", KEPT)
def test_screening_answers_hold_no_training_values(node, trained, training, estimator):
    api, ctx = node
    job = trained[estimator]
    body = {
        "candidates": [
            {k: v for k, v in row.items() if k != "test_temperature_c"}
            for row in _away(training, job, 10, 0.5)
        ],
        "grid": {"test_temperature_c": [650.0, 750.0, 850.0]},
        "top": 10,
    }
    r = api.post(f"/jobs/{job['id']}/screen", json=body, headers=ctx["headers"]["partner"])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["candidates"] == 30 and len(answer["ranked"]) == 10
    # the candidates' inputs are the caller's own; everything else is the node's
    answer["ranked"] = [{k: v for k, v in row.items() if k != "inputs"} for row in answer["ranked"]]
    targets, inputs = _leaks(training, job, numbers_in_json(answer))
    assert targets < 0.01 and inputs < 0.01, (targets, inputs)


# --- the model file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def downloads(node, trained) -> dict[str, Any]:
    """Each model asked for before, and after, the steward grants ``export-model``."""
    api, ctx = node
    partner = ctx["headers"]["partner"]
    before = {e: api.get(f"/jobs/{trained[e]['id']}/model", headers=partner) for e in KEPT}
    r = api.post("/policies/aurora", json={"add": [EXPORT]}, headers=ctx["headers"]["steward"])
    assert r.status_code == 200, r.text
    after = {e: api.get(f"/jobs/{trained[e]['id']}/model", headers=partner) for e in KEPT}
    return {"before": before, "after": after}


@pytest.mark.parametrize("estimator", KEPT)
def test_no_model_file_without_export_model(downloads, estimator):
    refused = downloads["before"][estimator]
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert any("export-model" in reason for reason in refused.json()["reasons"])


@pytest.mark.parametrize("estimator", KEPT)
def test_exported_model_holds_no_training_values(node, downloads, trained, training, estimator):
    import hashlib

    from training.store import loads_model

    r = downloads["after"][estimator]
    assert r.status_code == 200, r.text
    job = trained[estimator]
    assert hashlib.sha256(r.content).hexdigest() == job["result"]["model_sha256"]
    model = loads_model(r.content)
    assert model.y_true.size == 0 and model.oof_predictions.size == 0
    targets, inputs = _leaks(training, job, numbers_in_skops(r.content))
    assert targets < 0.01 and inputs < 0.01, (targets, inputs)
    # the file still predicts what the node answers (up to the answer's rounding)
    api, ctx = node
    rows = _away(training, job, 5, 0.5)
    url = f"/jobs/{job['id']}/predict"
    answer = api.post(url, json={"rows": rows}, headers=ctx["headers"]["partner"]).json()
    served = [p["mean"] for p in answer["predictions"]]
    mine = model.predict(pd.DataFrame(rows))
    assert served == pytest.approx(list(mine), rel=0.05)


# --- probing single rows ----------------------------------------------------------------------


def _probe_rows(training: pd.DataFrame, job: dict[str, Any], attack: str) -> list[dict]:
    exact = _records(training[_inputs(job)].head(3))
    if attack == "exact inputs of training rows":
        return exact
    if attack == "one training row among fresh ones":
        return [*_away(training, job, 9, 0.5), exact[1]]
    if attack == "a training row nudged by a millionth":
        return _away(training, job, 1, 1e-6)
    if attack == "a training row nudged by a hundredth of a spread":
        return _away(training, job, 1, 0.01)
    raise AssertionError(attack)


@pytest.mark.parametrize(
    "attack",
    [
        "exact inputs of training rows",
        "one training row among fresh ones",
        "a training row nudged by a millionth",
        "a training row nudged by a hundredth of a spread",
    ],
)
@pytest.mark.parametrize("estimator", KEPT)
def test_probing_training_rows_is_refused(node, trained, training, estimator, attack):
    api, ctx = node
    job = trained[estimator]
    rows = _probe_rows(training, job, attack)
    r = api.post(
        f"/jobs/{job['id']}/predict", json={"rows": rows}, headers=ctx["headers"]["partner"]
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "predictions" not in r.json()


def test_screening_leaves_training_rows_out(node, trained, training):
    api, ctx = node
    job = trained["random_forest"]
    exact = _records(training[_inputs(job)].head(4))
    body = {"candidates": [*exact, *_away(training, job, 4, 0.5)], "top": 8}
    r = api.post(f"/jobs/{job['id']}/screen", json=body, headers=ctx["headers"]["partner"])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["withheld"] >= 4 and len(answer["ranked"]) == 8 - answer["withheld"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"rows": [{"ni_wt_pct": 60.0}] * 101}, 413),  # over the batch bound
        ({"rows": [{"no_such_input": 1.0}]}, 422),
        ({"rows": []}, 422),
        ({"rows": [{"ni_wt_pct": "x" * 2000}]}, 422),
        ({"rows": [{"ni_wt_pct": 60.0}], "extra": True}, 422),
    ],
)
def test_bad_prediction_requests(node, trained, body, status):
    api, ctx = node
    job = trained["ridge"]
    r = api.post(f"/jobs/{job['id']}/predict", json=body, headers=ctx["headers"]["partner"])
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("who", ["ml-user", "steward", "auditor"])
def test_someone_elses_model_is_not_there(node, trained, who):
    api, ctx = node
    job = trained["ridge"]
    body = {"rows": [{"ni_wt_pct": 60.0}]}
    for path in ("predict", "screen"):
        r = api.post(
            f"/jobs/{job['id']}/{path}",
            json=body if path == "predict" else {"grid": {"ni_wt_pct": [60.0]}},
            headers=ctx["headers"][who],
        )
        assert r.status_code == 404, r.text
    assert api.get(f"/jobs/{job['id']}/model", headers=ctx["headers"][who]).status_code == 404


# --- budgets and the audit log ----------------------------------------------------------------


def test_budget_answers_429_with_retry_after(node, trained, training, monkeypatch):
    api, ctx = node
    n = api.app.state.node
    tight = n.settings.model_copy(
        update={"predict_calls_per_window": 2, "predict_rows_per_window": 5}
    )
    monkeypatch.setattr(n, "settings", tight)
    monkeypatch.setattr(n, "budgets", Budgets())
    job = trained["ridge"]
    partner = ctx["headers"]["partner"]
    url = f"/jobs/{job['id']}/predict"
    assert (
        api.post(url, json={"rows": _away(training, job, 2, 0.5)}, headers=partner).status_code
        == 200
    )
    over_rows = api.post(url, json={"rows": _away(training, job, 4, 0.5)}, headers=partner)
    assert over_rows.status_code == 429, over_rows.text
    assert (
        api.post(url, json={"rows": _away(training, job, 1, 0.5)}, headers=partner).status_code
        == 200
    )
    over_calls = api.post(url, json={"rows": _away(training, job, 1, 0.5)}, headers=partner)
    assert over_calls.status_code == 429
    assert over_calls.headers["content-type"].startswith(PROBLEM)
    assert 0 < int(over_calls.headers["Retry-After"]) <= 3600
    assert over_calls.json()["retry_after"] == int(over_calls.headers["Retry-After"])
    # the budget is the partner's: somebody else is still served
    mia = ctx["headers"]["ml-user"]
    body = {"target": TARGET, "estimator": "ridge", "cv": 3, "filter": FILTER}
    mine = _wait(api, mia, api.post(f"/datasets/{NI}/train", json=body, headers=mia).json())
    r = api.post(
        f"/jobs/{mine['id']}/predict", json={"rows": _away(training, job, 1, 0.5)}, headers=mia
    )
    assert r.status_code == 200, r.text


def test_every_call_is_an_audit_event(node, trained, training):
    api, ctx = node
    auditor = ctx["headers"]["auditor"]
    job = trained["gradient_boosting"]
    partner = ctx["headers"]["partner"]

    def events() -> list[dict[str, Any]]:
        found = api.get(
            "/audit/events", params={"name": "model-query", "limit": 1000}, headers=auditor
        ).json()["events"]
        return [e for e in found if e["job"] == job["id"]]

    before = len(events())
    url = f"/jobs/{job['id']}/predict"
    assert (
        api.post(url, json={"rows": _away(training, job, 3, 0.5)}, headers=partner).status_code
        == 200
    )
    probe = _records(training[_inputs(job)].head(1))
    assert api.post(url, json={"rows": probe}, headers=partner).status_code == 422
    after = events()
    assert len(after) == before + 2
    answered, refused = after[-2], after[-1]
    assert answered["rows"] == 3 and answered["refused"] == 0 and answered["decision"] == "allow"
    assert refused["refused"] == 1 and refused["decision"] == "deny"
    assert "pablo" in answered["principal"] and answered["dataset"] == NI
