"""Where did a dataset go? A report of its decisions, releases, relays and the models trained on
it, each entry with an inclusion proof against one (witnessed) checkpoint, verifiable offline.

Format (``matgate-dataset-report/1``, JSON)::

    {"format", "dataset", "since", "until", "node", "origin",
     "checkpoint": {... the checkpoint JSON with its C2SP note and cosignatures},
     "entries": [{"index", "body", "proof": [hex, ...]}],   # body: the exact entry bytes
     "models": [{"run_id", "model_name", "model_version", "model_hash", "principal",
                 "audit_index", "manifests": [...]}],
     "truncated": bool,
     "jwks": {...}}   # the keys the node offers: they count only for a pinned fingerprint

``verify_report`` proves what the report shows (every entry is in the signed log, concerns the
dataset and the window; every model's run entry is in the log and consumed one of its slices).
It cannot prove that nothing was left out: for that, verify the whole log (``audit verify``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from audit.checkpoints import Checkpoint
from audit.entries import split_entry
from audit.merkle import leaf_hash, verify_inclusion
from audit.verify import Problem, Report, Trust, verify_checkpoint

__all__ = ["FORMAT", "build_report", "verify_report"]

FORMAT = "matgate-dataset-report/1"


def build_report(
    *,
    dataset: str,
    node: str,
    origin: str,
    checkpoint: Checkpoint,
    entries: Iterable[tuple[int, bytes, list[str]]],
    models: Iterable[Mapping[str, Any]],
    since: str | None = None,
    until: str | None = None,
    truncated: bool = False,
    jwks: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a report from entries ``(index, body, proof)`` proven against ``checkpoint``."""
    return {
        "format": FORMAT,
        "dataset": dataset,
        "since": since,
        "until": until,
        "node": node,
        "origin": origin,
        "checkpoint": checkpoint.to_dict(),
        "entries": [
            {"index": i, "body": body.decode("utf-8"), "proof": proof} for i, body, proof in entries
        ],
        "models": [dict(m) for m in models],
        "truncated": truncated,
        "jwks": dict(jwks or {"keys": []}),
    }


def _in_window(event: Mapping[str, Any], since: str | None, until: str | None) -> bool:
    time = str(event.get("time", ""))
    return (since is None or time >= since) and (until is None or time < until)


def verify_report(report: Mapping[str, Any], trust: Trust | None) -> Report:
    """Check a report offline against what the auditor trusts; the answer says how many
    entries are proven, against which checkpoint, signer and cosigners."""
    if report.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} report: {report.get('format')!r}")
    trust = trust or Trust()
    cp = Checkpoint.from_dict(report["checkpoint"])
    result = verify_checkpoint(cp, trust)
    dataset, since, until = report["dataset"], report.get("since"), report.get("until")
    root = bytes.fromhex(cp.root)
    manifests: set[str] = set()
    runs: dict[int, dict[str, Any]] = {}
    for item in report.get("entries", []):
        index, body = int(item["index"]), str(item["body"]).encode("utf-8")
        proof = [bytes.fromhex(p) for p in item.get("proof", [])]
        if not verify_inclusion(leaf_hash(body), index, cp.size, proof, root):
            result.problems.append(
                Problem(
                    "not-included",
                    index,
                    f"entry {index} is not in the log of size {cp.size} with the signed root",
                    cp.size,
                )
            )
            continue
        try:
            seq, _, event_json = split_entry(body)
            event = json.loads(event_json)
        except ValueError:
            result.problems.append(Problem("malformed", index, f"entry {index} is malformed"))
            continue
        if seq != index:
            result.problems.append(Problem("misplaced", index, f"entry {index} says seq {seq}"))
        if event.get("name") == "run":
            runs[index] = event
        elif event.get("dataset") != dataset:
            result.problems.append(
                Problem("foreign", index, f"entry {index} concerns {event.get('dataset')!r}")
            )
        if event.get("name") != "run" and not _in_window(event, since, until):
            result.problems.append(
                Problem("outside", index, f"entry {index} is outside the window")
            )
        if event.get("manifest_id"):
            manifests.add(str(event["manifest_id"]))
    for model in report.get("models", []):
        index = int(model.get("audit_index", -1))
        run = runs.get(index)
        if run is None or run.get("run_id") != model.get("run_id"):
            result.problems.append(
                Problem(
                    "unproven-model",
                    index,
                    f"model {model.get('model_name')!r}: its run "
                    f"entry {index} is not among the proven entries",
                )
            )
        elif not manifests & set(run.get("manifests", [])):
            result.problems.append(
                Problem(
                    "unproven-model",
                    index,
                    f"run {run.get('run_id')} consumed no slice of {dataset} shown in the report",
                )
            )
    result.size = len(report.get("entries", []))
    return result
