"""The example script runs against a live node and writes its plots."""

from __future__ import annotations

import json
import runpy
import sys

import pytest


@pytest.mark.slow
def test_superalloy_screening_example(live, tokens, tmp_path, monkeypatch):
    demo = {
        "nodes": [{"institution": "aurora", "url": live}],
        "personas": [{"name": "ml-user", "institution": "aurora", "token": tokens["ml-user"]}],
    }
    (tmp_path / "demo.json").write_text(json.dumps(demo))
    out = tmp_path / "out"
    argv = ["superalloy_screening.py", "--demo", str(tmp_path / "demo.json"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path("examples/superalloy_screening.py", run_name="__main__")
    assert done.value.code == 0
    for name in ("parity.png", "screening.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ni-yield-strength" in (out / "model_card.md").read_text()
    import pandas as pd

    result = pd.read_csv(out / "screening.csv")
    temps = result[[f"ht{i}_temperature_c" for i in range(1, 6)]]
    # derived inputs recomputed per schedule, constraints held, nothing outside the domain
    assert (result["max_ht_temperature_c"] == temps.max(axis=1)).all()
    assert (result["ht2_temperature_c"] < result["ht1_temperature_c"]).all()
    assert result["in_domain"].all()
    assert (result["pred_low_95"] < result["pred_mean"]).all()
