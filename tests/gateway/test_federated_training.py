"""Compute-to-data across the demo federation: Mia of Aurora trains on Borealis's creep tests,
which partners may train on but not read, through her home node; the rows and the model stay at
Borealis, predictions and screening are relayed, the model file is refused (no export-model)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from gateway_support import LiveServer, free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.demo import prepare_federation
from gateway.demo.borealis import read_superalloy_creep

CREEP = "borealis/superalloy-creep"


def _leaks() -> Any:
    """The security suite's search for training values in answers (tests/security/leaks.py)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "security" / "leaks.py"
    spec = importlib.util.spec_from_file_location("leaks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    base = free_port()
    while any(_busy(base + i) for i in range(3)):
        base = free_port()
    plans = prepare_federation(tmp_path_factory.mktemp("federation"), base)
    apps = {p["institution"]: create_app(node_settings(p)) for p in plans}
    servers = [LiveServer(apps[p["institution"]], p["port"]).start() for p in plans]
    urls = {p["institution"]: p["url"] for p in plans}
    tokens = persona_tokens(apps["aurora"].state.node.issuer)
    try:
        yield urls, tokens
    finally:
        for server in servers:
            server.stop()


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_train_through_the_home_node_while_reading_is_refused(federation):
    urls, tokens = federation
    mia = {"Authorization": f"Bearer {tokens['ml-user']}"}
    with httpx.Client(base_url=urls["aurora"], headers=mia, timeout=60) as aurora:
        read = aurora.post(f"/datasets/{CREEP}/slice", json={"purpose": "ml-training"})
        assert read.status_code == 403, read.text
        body = {"target": "stress_rupture_time_h", "estimator": "ridge", "cv": 3}
        started = aurora.post(f"/datasets/{CREEP}/train", json=body)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["id"].startswith("borealis:") and job["site"] == "borealis"
        deadline = time.monotonic() + 120
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = aurora.get(f"/jobs/{job['id']}").json()
        assert job["status"] == "done", job["error"]
        assert job["result"]["manifest"]["released"] is False
        assert job["result"]["manifest"]["node"] == "borealis"
        result = job["result"]
        assert result["kept"]["where"] == "borealis"
        # No export-model at Borealis: the model file does not leave, and the owner says why.
        refused = aurora.get(f"/jobs/{job['id']}/model")
        assert refused.status_code == 403, refused.text
        assert any("export-model" in reason for reason in refused.json()["reasons"])
        # Predictions and screening are asked of Borealis through Aurora.
        inputs = [i["name"] for i in result["model"]["inputs"]]
        row = {name: None for name in inputs} | {"test_temperature_c": 760.0, "ni_wt_pct": 58.0}
        if "stress_rupture_stress_mpa" in inputs:
            row["stress_rupture_stress_mpa"] = 480.0
        predicted = aurora.post(f"/jobs/{job['id']}/predict", json={"rows": [row]})
        assert predicted.status_code == 200, predicted.text
        answer = predicted.json()
        assert answer["job"] == job["id"] and answer["site"] == "borealis"
        assert answer["dataset"] == CREEP and len(answer["predictions"]) == 1
        grid = {"test_temperature_c": [700.0, 800.0, 900.0]}
        screened = aurora.post(f"/jobs/{job['id']}/screen", json={"grid": grid, "top": 2})
        assert screened.status_code == 200, screened.text
        assert screened.json()["candidates"] == 3 and len(screened.json()["ranked"]) == 2
        # None of what came back through Aurora holds Borealis's rupture times.
        creep = read_superalloy_creep(dt.datetime.now(dt.UTC)).to_pandas()
        leaks = _leaks()
        targets = creep["stress_rupture_time_h"]
        for answer in (job, aurora.get(f"/jobs/{job['id']}").json(), predicted.json()):
            assert leaks.share_appearing(targets, leaks.numbers_in_json(answer)) < 0.01
        # A training row's own inputs are refused by the owner, and the refusal is relayed.
        probe = {k: (None if pd.isna(v) else v) for k, v in creep[inputs].iloc[0].items()}
        refused = aurora.post(f"/jobs/{job['id']}/predict", json={"rows": [probe]})
        assert refused.status_code == 422, refused.text
        assert "predictions" not in refused.json()
        # Somebody else at Aurora cannot follow Mia's job.
        sana = {"Authorization": f"Bearer {tokens['steward']}"}
        assert aurora.get(f"/jobs/{job['id']}", headers=sana).status_code == 404
        # The home node recorded the request it forwarded.
        ari = {"Authorization": f"Bearer {tokens['auditor']}"}
        events = aurora.get("/audit/events", params={"name": "relay"}, headers=ari).json()
        assert any(
            e["action"] == "train" and e["dataset"] == CREEP and e["peer"] == "borealis"
            for e in events["events"]
        )
        relayed = {e["action"] for e in events["events"] if e["dataset"] == CREEP}
        assert {"train", "predict", "screen"} <= relayed
