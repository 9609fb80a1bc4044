"""Train a yield-strength model on permitted superalloy data and screen heat treatments.

Run it against the demo (``make demo`` in another terminal, or ``matgate demo``)::

    python examples/superalloy_screening.py --demo .demo/demo.json --out examples/out

It pulls ``aurora/ni-superalloys`` for a purpose the policy allows, builds a PSPP training set
(processing + structure + condition -> yield strength), trains a random forest with 5-fold
cross-validation, screens heat-treatment schedules of a real alloy for the highest predicted
yield strength at 700 C, registers the run in the node's lineage, and saves a parity plot and
the screening result as PNG files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.client import Client
from training.plots import parity_plot, screening_plot

DATASET = "aurora/ni-superalloys"
TEST_TEMPERATURE_C = 700.0


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
        run = client.train_forward(ts, estimator="random_forest", cv=5, name="ni-yield-strength")
        metrics = run.model.metrics
        print(
            f"5-fold CV: MAE {metrics['mae']:.1f} MPa, RMSE {metrics['rmse']:.1f} MPa, "
            f"R2 {metrics['r2']:.3f}"
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
            run, grid=grid, base=base, fixed={"test_temperature_c": TEST_TEMPERATURE_C}, top=20
        )
        best = result.iloc[0]
        print(
            f"{result.attrs['candidates']} schedules screened; best predicted "
            f"{best['pred_mean']:.0f} +/- {best['pred_std']:.0f} MPa with "
            f"{', '.join(f'{k}={best[k]:g}' for k in grid)}"
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
