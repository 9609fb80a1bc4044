"""Train a yield-strength model on permitted superalloy data and screen heat treatments.

Run it against the demo (``make demo`` in another terminal, or ``matgate demo``)::

    python examples/superalloy_screening.py --demo .demo/demo.json --out examples/out

It pulls ``aurora/ni-superalloys`` for a purpose the policy allows, builds a PSPP training set
(processing + structure + condition -> yield strength), trains the default extra-trees model
with 5-fold cross-validation and calibrated (conformal) intervals, screens heat-treatment
schedules of a real alloy for the highest predicted yield strength at 700 C, with the derived
heat-treatment inputs recomputed for each schedule, candidates outside the model's domain
flagged, and a plain statement of how many candidates the model cannot tell apart, registers the
run in the node's lineage, and saves a parity plot and the screening result as PNG files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from gateway.client import Client
from training.plots import parity_plot, screening_plot

DATASET = "aurora/ni-superalloys"
TEST_TEMPERATURE_C = 700.0
STEPS = range(1, 6)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Recompute the inputs derived from the heat-treatment steps for each candidate schedule."""
    temps = frame[[f"ht{i}_temperature_c" for i in STEPS]].astype(float)
    times = frame[[f"ht{i}_time_h" for i in STEPS]].astype(float)
    frame["max_ht_temperature_c"] = temps.max(axis=1)
    frame["total_ht_time_h"] = times.sum(axis=1, min_count=1)
    frame["ht_area_c_h"] = (temps.fillna(0).to_numpy() * times.fillna(0).to_numpy()).sum(axis=1)
    return frame


def main() -> int:
    """Pull, train, screen, register, plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path(".demo/demo.json"), help="demo.json")
    parser.add_argument("--out", type=Path, default=Path("examples/out"), help="output folder")
    parser.add_argument("--persona", default="ml-user", help="who pulls (a persona of demo.json)")
    parser.add_argument("--purpose", default="ml-training")
    args = parser.parse_args()

    demo = json.loads(args.demo.read_text())
    persona = next(p for p in demo["personas"] if p["name"] == args.persona)
    home = next(n for n in demo["nodes"] if n["institution"] == persona["institution"])
    args.out.mkdir(parents=True, exist_ok=True)

    with Client(home["url"], token=persona["token"]) as client:
        ts = client.training_set(
            DATASET,
            "yield_strength_mpa",
            purpose=args.purpose,
            filter="yield_strength_mpa IS KNOWN",
        )
        print(f"training set: {len(ts.y)} rows, {len(ts.inputs)} inputs by PSPP role")
        run = client.train_forward(ts, cv=5, name="ni-yield-strength")
        metrics = run.model.metrics
        print(
            f"5-fold CV ({run.model.estimator}): MAE {metrics['mae']:.1f} MPa, "
            f"RMSE {metrics['rmse']:.1f} MPa, R2 {metrics['r2']:.3f}; "
            f"mean predictor {metrics['mae_mean_predictor']:.1f} MPa"
        )
        if run.model.conformal is not None:
            coverage = run.model.conformal.coverage
            print(
                f"interval coverage out of fold: 68 % -> {coverage['0.68']:.1%}, "
                f"95 % -> {coverage['0.95']:.1%}"
            )

        # Heat-treatment schedules for one real alloy, tested at 700 C.
        frame = ts.X.assign(target=ts.y.to_numpy())
        base = frame[frame["test_temperature_c"] == TEST_TEMPERATURE_C].nlargest(1, "target")
        base = (base if len(base) else frame.nlargest(1, "target")).iloc[0]
        grid = {
            "ht1_temperature_c": [1040, 1080, 1120, 1160, 1200],
            "ht1_time_h": [1, 2, 4],
            "ht2_temperature_c": [700, 760, 820, 870],
            "ht2_time_h": [4, 8, 16, 24],
        }
        result = client.screen(
            run,
            grid=grid,
            base=base,
            fixed={"test_temperature_c": TEST_TEMPERATURE_C},
            derive=derive,
            # ageing below the solution treatment: a schedule a furnace would actually run
            constraints=[lambda f: f["ht2_temperature_c"] < f["ht1_temperature_c"]],
            domain="exclude",
            top=20,
        )
        best = result.iloc[0]
        print(
            f"{result.attrs['candidates']} schedules screened, "
            f"{result.attrs['outside_domain']} outside the model's domain left out; best "
            f"predicted {best['pred_mean']:.0f} MPa (95 % interval {best['pred_low_95']:.0f}-"
            f"{best['pred_high_95']:.0f}) with {', '.join(f'{k}={best[k]:g}' for k in grid)}"
        )
        ties = result.attrs["indistinguishable_from_first"]
        if ties:
            print(
                f"the model cannot tell #1 apart from {ties} of the next {len(result) - 1} "
                "candidates (their 68 % intervals overlap): treat the top as a set to test, "
                "not a ranking"
            )

        registered = client.register_run(run)
        print(f"run {registered['run_id']} registered in {home['institution']}'s lineage")

    parity = parity_plot(run.model, args.out / "parity.png")
    screening = screening_plot(result, args.out / "screening.png")
    result.to_csv(args.out / "screening.csv", index=False)
    (args.out / "model_card.md").write_text(run.card.to_markdown())
    print(f"wrote {parity}, {screening}, screening.csv and model_card.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
