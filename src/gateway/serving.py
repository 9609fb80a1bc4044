"""Models kept on the node, used where they are: governed prediction and screening.

A model trained on site stays on the node (``gateway.compute``); its user asks the node to
predict with it (``POST /jobs/{id}/predict``) or to screen candidates (``POST /jobs/{id}/screen``).
Every call, in this order:

1. the caller's own finished job (anyone else gets the same 404 as for no job);
2. a batch bound (``predict_max_rows`` rows, ``screen_max_candidates`` candidates; 413);
3. ``train`` decided again on the dataset, for the purpose the model was trained for, and
   recorded (403 with reasons once the policy no longer allows it);
4. the caller's budget: calls and rows per window (429 with ``Retry-After``);
5. candidates that equal or nearly equal a training row's inputs (``predict_min_distance``, in
   units of each input's spread, or the very feature vector of a training row; see
   ``training.privacy.Guard``) are refused: a prediction call holding one is refused whole (422,
   without saying which), a screening call leaves them out and says how many;
6. predictions rounded to ``predict_digits`` significant digits;
7. a ``ModelQueried`` event appended before the answer leaves (if the log cannot be written,
   nothing leaves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit.events import ModelQueried
from gateway import remote_jobs
from gateway.access import dataset_for, ensure, record
from gateway.compute import finished
from gateway.errors import TooLarge, Unprocessable
from gateway.schemas import PredictBody, ScreenBody
from policies.decisions import Action
from policies.principals import Principal

if TYPE_CHECKING:
    import pandas as pd

    from gateway.jobs import Job
    from gateway.node import Node
    from training.models import ForwardModel
    from training.privacy import Guard

__all__ = ["predict", "screen"]


@dataclass(frozen=True)
class _Call:
    """One admitted call: the job, its model and guard, and what to record."""

    job: Job
    dataset: str
    purpose: str
    request_id: str
    model: ForwardModel
    guard: Guard


def predict(node: Node, principal: Principal, job_id: str, body: PredictBody) -> dict[str, Any]:
    """Rounded predictions of a model kept on the node (here, or relayed to its node)."""
    if remote_jobs.is_remote_job(job_id):
        return remote_jobs.use(node, principal, job_id, "predict", body.model_dump(mode="json"))
    settings = node.settings
    if len(body.rows) > settings.predict_max_rows:
        raise TooLarge(f"at most {settings.predict_max_rows} rows per call; send several calls")
    call = _admit(node, principal, job_id)
    frame = _frame(call.model, body.rows)
    budget = _charge(node, principal, len(frame))
    near = _near(node, call, frame)
    if near:
        _record(node, principal, call, "predict", len(frame), near, "probe of training rows")
        raise Unprocessable(
            f"{near} of the {len(frame)} rows equal or nearly equal the inputs of a training row; "
            "a model kept on the node does not answer for the rows it was trained on",
            refused=near,
        )
    mean, std = _predict(call.model, frame)
    digits = settings.predict_digits
    predictions = [
        {"mean": _round(m, digits), **({"std": _round(s, digits)} if body.return_std else {})}
        for m, s in zip(mean, std, strict=True)
    ]
    _record(node, principal, call, "predict", len(frame), 0, "")
    return {**_head(call, digits), "rows": len(frame), "predictions": predictions, "budget": budget}


def screen(node: Node, principal: Principal, job_id: str, body: ScreenBody) -> dict[str, Any]:
    """Candidates ranked by a model kept on the node, those probing training rows left out."""
    from training.errors import TrainingError
    from training.screening import EI, MEAN, STD
    from training.screening import screen as rank

    if remote_jobs.is_remote_job(job_id):
        return remote_jobs.use(node, principal, job_id, "screen", body.model_dump(mode="json"))
    if body.acquisition == "ei" and body.best_so_far is None:
        raise Unprocessable("expected improvement needs best_so_far: your own best value")
    size = _size(body)
    if size > node.settings.screen_max_candidates:
        raise TooLarge(
            f"{size} candidates exceed this node's limit of {node.settings.screen_max_candidates}"
        )
    call = _admit(node, principal, job_id)
    try:
        ranked = rank(
            call.model,
            _frame(call.model, body.candidates, complete=False) if body.candidates else None,
            grid=body.grid,
            ranges=body.ranges,
            samples=body.samples,
            fixed=body.fixed,
            balance=body.balance,
            constraints=body.constraints,
            maximize=body.maximize,
            top=None,
            acquisition=body.acquisition,
            best_so_far=body.best_so_far,
            random_state=body.random_state,
            max_candidates=node.settings.screen_max_candidates,
        )
    except TrainingError as exc:
        raise Unprocessable(str(exc)) from exc
    built = int(ranked.attrs.get("candidates", len(ranked)))
    budget = _charge(node, principal, built)
    keep = ~call.guard.near(call.model, ranked, node.settings.predict_min_distance)
    withheld = int((~keep).sum())
    ranked = ranked[keep].head(body.top)
    digits = node.settings.predict_digits
    inputs = call.model.input_names
    rows = [
        {
            "rank": i + 1,
            "inputs": {k: _cell(row[k]) for k in inputs},
            **{k: _round(row[k], digits) for k in (MEAN, STD, EI) if k in row},
        }
        for i, (_, row) in enumerate(ranked.iterrows())
    ]
    _record(node, principal, call, "screen", built, withheld, "probe of training rows")
    return {
        **_head(call, digits),
        "acquisition": body.acquisition,
        "maximize": body.maximize,
        "candidates": built,
        "withheld": withheld,
        "imputed": list(ranked.attrs.get("imputed", [])),
        "ranked": rows,
        "budget": budget,
    }


def _size(body: ScreenBody) -> int:
    """How many candidates a screening request builds (as ``training.screening`` counts them)."""
    size = len(body.candidates) if body.candidates else 1
    size *= math.prod(len(v) for v in (body.grid or {}).values())
    return size * (body.samples if body.ranges else 1)


def _admit(node: Node, principal: Principal, job_id: str) -> _Call:
    """The caller's job, ``train`` still allowed (recorded), and its loaded model."""
    import uuid

    job = finished(node, principal, job_id)
    result = job.result or {}
    request_id = uuid.uuid4().hex
    dataset = dataset_for(node, principal, str(result["dataset"]), request_id=request_id)
    purpose = str(result.get("purpose", ""))
    ensure(node, principal, dataset, Action.TRAIN, purpose, request_id=request_id)
    model, guard = node.kept_models.get(node.jobs, principal.id, job)
    return _Call(job, dataset.id, purpose, request_id, model, guard)


def _charge(node: Node, principal: Principal, rows: int) -> dict[str, Any]:
    s = node.settings
    return node.budgets.charge(
        principal.id,
        rows,
        calls=s.predict_calls_per_window,
        limit=s.predict_rows_per_window,
        window=s.predict_window_seconds,
    )


def _frame(
    model: ForwardModel, rows: Sequence[Mapping[str, Any]], *, complete: bool = True
) -> pd.DataFrame:
    """The candidates as a frame; unknown inputs refused, missing ones too unless screening
    (which fills them from ``fixed`` or leaves them to the model's imputation)."""
    import pandas as pd

    names = set(model.input_names)
    unknown = sorted({k for row in rows for k in row} - names)
    if unknown:
        raise Unprocessable(f"not inputs of the model: {unknown}; inputs: {model.input_names}")
    frame = pd.DataFrame(list(rows))
    if complete:
        missing = [n for n in model.input_names if n not in frame.columns]
        if missing:
            raise Unprocessable(f"every row needs every input; missing: {missing}")
    return frame


def _near(node: Node, call: _Call, frame: pd.DataFrame) -> int:
    from training.errors import TrainingError

    try:
        near = call.guard.near(call.model, frame, node.settings.predict_min_distance)
    except (TrainingError, ValueError, TypeError) as exc:
        raise Unprocessable(f"the rows do not fit the model's inputs: {exc}") from exc
    return int(near.sum())


def _predict(model: ForwardModel, frame: pd.DataFrame) -> tuple[list[float], list[float]]:
    mean, std = model.predict(frame, return_std=True)
    return [float(v) for v in mean], [float(v) for v in std]


def _round(value: Any, digits: int) -> float | None:
    """``value`` to ``digits`` significant digits (None for NaN: no such number)."""
    number = float(value)
    return float(f"{number:.{digits}g}") if math.isfinite(number) else None


def _cell(value: Any) -> Any:
    """A candidate's input as JSON (the caller's own values, or those built from them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _head(call: _Call, digits: int) -> dict[str, Any]:
    return {
        "job": call.job.id,
        "dataset": call.dataset,
        "purpose": call.purpose,
        "target": {"name": call.model.target.name, "unit": call.model.target.unit},
        "estimator": call.model.estimator,
        "digits": digits,
    }


def _record(
    node: Node, principal: Principal, call: _Call, kind: str, rows: int, refused: int, why: str
) -> None:
    record(
        node,
        ModelQueried(
            request_id=call.request_id,
            principal=principal.id,
            institution=principal.institution,
            dataset=call.dataset,
            action=Action.TRAIN.value,
            purpose=call.purpose,
            decision="deny" if refused and kind == "predict" else "allow",
            job=call.job.id,
            kind=kind,
            rows=rows,
            refused=refused,
            reason=why if refused else "",
        ),
    )
