"""Lineage: the slices a node released and the training runs that consumed them.

``register_run`` accepts a run only if every manifest it names is this node's and genuine: the
signature verifies under the node's JWKS and the manifest's slice is in the node's audit log.
``graph`` answers dataset -> slice -> principal -> run -> model as nodes and edges.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from audit.errors import AuditUnavailable, LineageError, ManifestError
from audit.events import RunRegistered
from audit.log import AuditLog
from audit.manifests import manifest_id, verify_manifest
from audit.store import run_inputs, runs, slices

__all__ = ["Lineage", "Run"]


@dataclass(frozen=True, slots=True)
class Run:
    """A registered training run and the model it produced."""

    run_id: str
    principal: str
    model_name: str
    model_version: str
    model_hash: str
    metrics: dict[str, float]
    manifests: tuple[str, ...]
    purpose: str
    time: str
    audit_index: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``POST /lineage/runs``."""
        return {
            "run_id": self.run_id,
            "principal": self.principal,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_hash": self.model_hash,
            "metrics": self.metrics,
            "manifests": list(self.manifests),
            "purpose": self.purpose,
            "time": self.time,
            "audit_index": self.audit_index,
        }


def _slice_row(manifest: Mapping[str, Any], token: str) -> dict[str, Any]:
    return {
        "manifest_id": manifest_id(manifest),
        "node": str(manifest.get("node", "")),
        "dataset": str(manifest.get("dataset", "")),
        "dataset_version": str(manifest.get("dataset_version", manifest.get("version", ""))),
        "principal": str(manifest.get("principal", "")),
        "purpose": str(manifest.get("purpose", "")),
        # A manifest names a released slice: its decision was an allow, whatever detail it carries.
        "decision": d if isinstance(d := manifest.get("decision"), str) else "allow",
        "policy_version": int(manifest.get("policy_version", 0) or 0),
        "rows": int(manifest.get("rows", 0) or 0),
        "sha256": str(manifest.get("sha256", "")),
        "licence": str(manifest.get("licence", manifest.get("license", ""))),
        "time": str(manifest.get("time", "")),
        "token": token,
    }


_NEW_SLICE = {
    "sqlite": sqlite_insert(slices).on_conflict_do_nothing(index_elements=["manifest_id"]),
    "postgresql": pg_insert(slices).on_conflict_do_nothing(index_elements=["manifest_id"]),
}


def _insert_slice(conn: sa.Connection, row: dict[str, Any]) -> None:
    """Keep one manifest unless it is kept already, in one statement where the dialect can."""
    statement = _NEW_SLICE.get(conn.dialect.name)
    if statement is None:
        Lineage._insert_slices(conn, [row])
    else:
        conn.execute(statement, row)


@dataclass
class _Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)

    def node(self, key: str, kind: str, **attrs: Any) -> str:
        self.nodes.setdefault(key, {"id": key, "type": kind, **attrs})
        return key

    def edge(self, source: str, target: str, kind: str) -> None:
        edge = {"source": source, "target": target, "type": kind}
        if edge not in self.edges:
            self.edges.append(edge)


class Lineage:
    """Slices released by a node and runs registered against them, on the log's tables."""

    def __init__(self, engine: sa.Engine, log: AuditLog, *, jwks: Mapping[str, Any] | None = None):
        self._engine = engine
        self._log = log
        self._jwks = dict(jwks) if jwks is not None else log.jwks()
        self.node = log.node

    def verified(self, token: str) -> dict[str, Any]:
        """The manifest in ``token`` if it is genuine and this node's; LineageError otherwise."""
        try:
            manifest = verify_manifest(token, self._jwks)
            ident = manifest_id(manifest)
        except ManifestError as exc:
            raise LineageError(f"manifest refused: {exc.detail}") from exc
        if manifest.get("node") != self.node:
            raise LineageError(
                f"manifest {ident} was released by {manifest.get('node')!r}, "
                f"not by this node ({self.node})"
            )
        return manifest

    def record_slice(self, token: str) -> str:
        """Remember a signed manifest this node issued; returns its id."""
        manifest = self.verified(token)
        row = _slice_row(manifest, token)
        try:
            with self._engine.begin() as conn:
                self._insert_slices(conn, [row])
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"lineage not stored: {exc.__class__.__name__}") from exc
        return str(row["manifest_id"])

    def slice_writer(
        self, manifest: Mapping[str, Any], token: str
    ) -> Callable[[sa.Connection], None]:
        """The write that keeps a manifest this node has just signed (``token``), for the
        transaction of the log entry that records its delivery (``AuditLog.append``'s ``also``):
        the entry and the manifest commit together. The signature is the caller's own, so it is
        not verified again; ``record_slice`` is for tokens from elsewhere."""
        if manifest.get("node") != self.node:
            raise LineageError(f"manifest {manifest_id(manifest)} is not this node's")
        row = _slice_row(manifest, token)
        return lambda conn: _insert_slice(conn, row)

    @staticmethod
    def _insert_slices(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        ids = [r["manifest_id"] for r in rows]
        known: set[str] = set(
            conn.execute(
                sa.select(slices.c.manifest_id).where(slices.c.manifest_id.in_(ids))
            ).scalars()
        )
        fresh = [r for r in rows if r["manifest_id"] not in known]
        if fresh:
            conn.execute(slices.insert(), fresh)

    def register_run(
        self,
        *,
        principal: str,
        model_name: str,
        model_version: str,
        manifests: Sequence[str],
        model_hash: str = "",
        metrics: Mapping[str, float] | None = None,
        purpose: str = "",
        run_id: str | None = None,
        request_id: str = "",
    ) -> Run:
        """Record a training run that consumed the given signed manifests and produced a model."""
        if not manifests:
            raise LineageError("a run must name the manifests it consumed")
        verified = [(self.verified(t), t) for t in manifests]
        ids = tuple(dict.fromkeys(manifest_id(m) for m, _ in verified))
        for ident in ids:
            if not self._log.has_manifest(ident):
                raise LineageError(f"manifest {ident} is not in this node's audit log")
        run_id = run_id or str(uuid.uuid4())
        if self.run(run_id) is not None:
            raise LineageError(f"run {run_id} is already registered")
        # Strict JSON has no NaN or infinity (PostgreSQL's JSON type refuses them): keep the rest.
        clean_metrics = {
            str(k): float(v) for k, v in (metrics or {}).items() if math.isfinite(float(v))
        }
        first = verified[0][0]
        time = self._log.now()
        event = RunRegistered(
            time=time,
            request_id=request_id,
            principal=principal,
            dataset=str(first.get("dataset", "")),
            action="train",
            purpose=purpose,
            run_id=run_id,
            manifests=ids,
            model_name=model_name,
            model_version=model_version,
            model_hash=model_hash,
            metrics=clean_metrics,
        )
        try:
            # the run, its inputs and its entry commit together or not at all
            with self._engine.begin() as conn:
                index = self._log.append_in(conn, [event])[0]
                run = Run(
                    run_id,
                    principal,
                    model_name,
                    model_version,
                    model_hash,
                    clean_metrics,
                    ids,
                    purpose,
                    time,
                    index,
                )
                row = {k: v for k, v in run.to_dict().items() if k != "manifests"}
                self._insert_slices(conn, [_slice_row(m, t) for m, t in verified])
                conn.execute(runs.insert(), [row])
                conn.execute(
                    run_inputs.insert(), [{"run_id": run_id, "manifest_id": i} for i in ids]
                )
        except IntegrityError as exc:
            raise LineageError(f"run {run_id} is already registered") from exc
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"lineage not stored: {exc.__class__.__name__}") from exc
        return run

    def slice(self, manifest_id: str) -> tuple[dict[str, Any], str] | None:
        """A recorded slice's manifest and its signed token, or ``None``."""
        found = self._slices(slices.c.manifest_id == manifest_id)
        if not found:
            return None
        token = str(found[0]["token"])
        return verify_manifest(token, self._jwks), token

    def released_to(self, principal: str, limit: int) -> list[dict[str, Any]]:
        """The slices released to ``principal``, newest first, each with its signed token and
        whether that signature verifies under the node's keys over this very manifest
        (``signature_ok``, and ``problem`` when it does not)."""
        with self._engine.connect() as conn:
            query = (
                sa.select(slices)
                .where(slices.c.principal == principal)
                .order_by(slices.c.time.desc(), slices.c.manifest_id)
                .limit(limit)
            )
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["signature_ok"], row["problem"], row["manifest"] = False, "", None
            try:
                manifest = verify_manifest(str(row["token"]), self._jwks)
            except ManifestError as exc:
                row["problem"] = exc.detail
                continue
            if manifest_id(manifest) != row["manifest_id"] or manifest.get("node") != self.node:
                row["problem"] = "the signed manifest is not the one recorded for this slice"
                continue
            row["signature_ok"], row["manifest"] = True, manifest
        return rows

    def run(self, run_id: str) -> Run | None:
        """A registered run, or ``None``."""
        found = self._runs(runs.c.run_id == run_id)
        return found[0] if found else None

    def _runs(self, condition: sa.ColumnElement[bool]) -> list[Run]:
        with self._engine.connect() as conn:
            rows = (
                conn.execute(sa.select(runs).where(condition).order_by(runs.c.time))
                .mappings()
                .all()
            )
            ids = [r["run_id"] for r in rows]
            inputs: dict[str, list[str]] = {}
            for rid, mid in conn.execute(sa.select(run_inputs).where(run_inputs.c.run_id.in_(ids))):
                inputs.setdefault(str(rid), []).append(str(mid))
        return [
            Run(
                r["run_id"],
                r["principal"],
                r["model_name"],
                r["model_version"],
                r["model_hash"],
                dict(r["metrics"]),
                tuple(sorted(inputs.get(r["run_id"], []))),
                r["purpose"],
                r["time"],
                r["audit_index"],
            )
            for r in rows
        ]

    def _slices(self, condition: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            query = sa.select(slices).where(condition).order_by(slices.c.time)
            return [dict(r) for r in conn.execute(query).mappings()]

    def graph(
        self, *, dataset: str | None = None, principal: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        """Nodes and edges dataset -> slice -> principal -> run -> model around one anchor.

        ``model`` is a model name, or ``name@version``.
        """
        if sum(x is not None for x in (dataset, principal, model)) != 1:
            raise ValueError("give exactly one of dataset, principal or model")
        if model is not None:
            name, _, version = model.rpartition("@") if "@" in model else (model, "", "")
            cond = runs.c.model_name == name
            if version:
                cond = sa.and_(cond, runs.c.model_version == version)
            found_runs = self._runs(cond)
            found_slices = self._slices(
                slices.c.manifest_id.in_({m for r in found_runs for m in r.manifests})
            )
        else:
            column = slices.c.dataset if dataset is not None else slices.c.principal
            found_slices = self._slices(column == (dataset or principal))
            mids = [s["manifest_id"] for s in found_slices]
            consuming = sa.select(run_inputs.c.run_id).where(run_inputs.c.manifest_id.in_(mids))
            cond = runs.c.run_id.in_(consuming)
            if principal is not None:
                cond = sa.or_(cond, runs.c.principal == principal)
            found_runs = self._runs(cond)
            missing = {m for r in found_runs for m in r.manifests} - set(mids)
            if missing:
                found_slices += self._slices(slices.c.manifest_id.in_(missing))
        return self._build(found_slices, found_runs)

    def _build(self, found_slices: list[dict[str, Any]], found_runs: list[Run]) -> dict[str, Any]:
        g = _Graph()
        for s in found_slices:
            d = g.node(
                f"dataset:{s['dataset']}",
                "dataset",
                name=s["dataset"],
                version=s["dataset_version"],
            )
            sl = g.node(
                f"slice:{s['manifest_id']}",
                "slice",
                manifest_id=s["manifest_id"],
                rows=s["rows"],
                sha256=s["sha256"],
                purpose=s["purpose"],
                decision=s["decision"],
                policy_version=s["policy_version"],
                licence=s["licence"],
                time=s["time"],
            )
            p = g.node(f"principal:{s['principal']}", "principal", name=s["principal"])
            g.edge(d, sl, "released_as")
            g.edge(sl, p, "delivered_to")
        for r in found_runs:
            p = g.node(f"principal:{r.principal}", "principal", name=r.principal)
            run = g.node(
                f"run:{r.run_id}",
                "run",
                run_id=r.run_id,
                time=r.time,
                purpose=r.purpose,
                metrics=r.metrics,
                audit_index=r.audit_index,
            )
            m = g.node(
                f"model:{r.model_name}@{r.model_version}",
                "model",
                name=r.model_name,
                version=r.model_version,
                hash=r.model_hash,
            )
            g.edge(p, run, "ran")
            for mid in r.manifests:
                g.edge(f"slice:{mid}", run, "consumed_by")
            g.edge(run, m, "produced")
        return {"node": self.node, "nodes": list(g.nodes.values()), "edges": g.edges}
