"""Slices: the permitted part of a dataset, streamed from the store with its manifest.

``open_slice`` does everything that can fail before the first byte is sent: it finds the
dataset, parses and checks the filter, asks for the decision (recorded before any release),
builds the one neutral Query in which the decision's columns, masks and row filter are pushed
down, and reads the first batch. The returned ``Slice`` then streams; when the stream ends, or
breaks, the manifest is completed with what was actually sent and the completion is recorded.
A caller that holds every chunk until the end (``hold=True``, the slice routes for slices up to
``whole_slice_bytes``) has the decision appended with the completion, in one commit, still
before any byte leaves.

Columns come in the order asked. Arrow and Parquet slices describe themselves (see
``gateway.formats``): field metadata from the catalog, nullability, UTC timestamps, and the
manifest signed with the node's key once the last row is written (the seal), so that
``matgate verify`` can check a file on its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from audit.events import Event, SliceDelivered
from connectors.datasets import Dataset
from connectors.errors import ConnectorError, FilterError
from connectors.filterparser import check, parse, unparse
from connectors.filters import Filter, all_of, fields
from connectors.query import Query
from gateway.access import dataset_for, ensure, ensure_held, record_all
from gateway.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from gateway.formats import (
    Content,
    Encoded,
    Format,
    NotNullViolation,
    columns_of,
    conform,
    describe_fields,
)
from gateway.observability import claim_request_id
from policies.decisions import Action, Decision
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "MANIFEST_KEY",
    "Permitted",
    "Slice",
    "SliceRequest",
    "keep",
    "manifest_for",
    "open_slice",
    "permitted",
    "released",
]

MANIFEST_KEY = b"matgate.manifest"
SIGNATURE_KEY = b"matgate.signature"
READ_AHEAD = 2  # batches read from the store ahead of the one being sent
log = logging.getLogger("matgate.slices")


@dataclass(frozen=True)
class SliceRequest:
    """What a client asks of a dataset."""

    purpose: str
    columns: tuple[str, ...] | None = None
    filter: str | None = None
    order_by: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0
    format: Format = Format.ARROW


@dataclass
class Slice:
    """A slice ready to stream: its manifest so far and the chunks of its body.

    A slice opened with ``hold=True`` has its decision entry held back: it is appended with the
    completion when the last chunk has been made, so the caller must keep every chunk until the
    stream ends, or call ``release()`` (which appends the decision) before the first one leaves.
    """

    request_id: str
    manifest: dict[str, Any]
    format: Format
    chunks: Iterator[bytes] = field(repr=False)
    release: Callable[[], None] = field(repr=False, default=lambda: None)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers naming the manifest."""
        return {
            "Matgate-Request-Id": self.request_id,
            "Link": f'</provenance/{self.request_id}>; rel="provenance"',
        }


@dataclass(frozen=True)
class Permitted:
    """What a principal may have of a dataset for one request: decided, recorded (or its entry
    held, see ``permitted``), compiled."""

    request_id: str
    dataset: Dataset
    decision: Decision
    query: Query
    held: Event | None = None


def permitted(
    node: Node,
    principal: Principal,
    dataset_id: str,
    req: SliceRequest,
    action: Action = Action.READ,
    *,
    hold: bool = False,
) -> Permitted:
    """Find the dataset, check the request, decide (recorded), build the one pushed-down Query.

    With ``hold``, an allow is not recorded yet: its entry is ``held``, for the caller to append
    before anything is released (denials and refusals are recorded at once, as ever)."""
    request_id = claim_request_id(lambda rid: released(node, rid))
    dataset = dataset_for(node, principal, dataset_id, request_id=request_id)
    user_filter = _parse_filter(req.filter, dataset)
    _check_columns(dataset, req)
    asked = (node, principal, dataset, action, req.purpose, req.columns)
    held: Event | None = None
    if hold:
        decision, held = ensure_held(*asked, request_id=request_id)
    else:
        decision = ensure(*asked, request_id=request_id)
    try:
        _check_reach(decision, user_filter, req)
    except Forbidden:
        if held is not None:
            record_all(node, [held])
        raise
    query = Query(
        table=dataset.location.table,
        columns=in_asked_order(decision.columns, req.columns),
        filter=all_of(user_filter, decision.row_filter),
        masks=decision.masks,
        order_by=tuple(_order(o) for o in req.order_by),
        limit=_limit(node, req.limit),
        offset=req.offset,
    )
    return Permitted(request_id, dataset, decision, query, held)


def released(node: Node, manifest_id: str) -> bool:
    """Whether this node already released a slice under ``manifest_id``."""
    try:
        node.provenance.get(manifest_id)
    except NotFound:
        return False
    return True


def in_asked_order(permitted: tuple[str, ...], asked: tuple[str, ...] | None) -> tuple[str, ...]:
    """The permitted columns in the order the request named them (schema order if it did not)."""
    if asked is None:
        return permitted
    allowed = set(permitted)
    return tuple(dict.fromkeys(c for c in asked if c in allowed))


def open_slice(
    node: Node, principal: Principal, dataset_id: str, req: SliceRequest, *, hold: bool = False
) -> Slice:
    """Decide, record, and open the stream of a slice (see the module docstring).

    With ``hold``, the caller keeps every chunk until the stream ends or calls the slice's
    ``release()`` first (see ``Slice``): a slice that ends within what the caller holds then
    costs one commit of the audit log instead of two."""
    p = permitted(node, principal, dataset_id, req, hold=hold)
    gate = _Gate(node, p.held)
    try:
        manifest = manifest_for(node, principal, p.dataset, req, p.decision, p.request_id)
        batches = _first_batch_early(node, p.dataset, p.query)
        masks = {name: m.kind.value for name, m in p.decision.masks.items()}
        described = _described(p.dataset, batches.schema, masks)
        batches.conform(described)  # the first batch now: a store that breaks the catalog fails
        manifest["schema"] = columns_of(described)
        schema = described.with_metadata({MANIFEST_KEY: orjson.dumps(manifest)})
    except BaseException:
        gate.release()  # nothing is released, but the decision was made: it is recorded
        raise
    chunks = _deliver(node, principal, manifest, req.format, schema, batches, gate)
    node.provenance.started(manifest)
    return Slice(p.request_id, manifest, req.format, chunks, gate.release)


_Shape = tuple[str, tuple[tuple[str, str], ...]]  # a dataset id and its masks
_DESCRIBED: dict[_Shape, tuple[Dataset, pa.Schema, pa.Schema]] = {}


def _described(dataset: Dataset, stored: pa.Schema, masks: dict[str, str]) -> pa.Schema:
    """``describe_fields`` of a slice, built once per dataset (as registered), store schema and
    masks: its field metadata is the same for every request of the same shape."""
    key = (dataset.id, tuple(sorted(masks.items())))
    hit = _DESCRIBED.get(key)
    if hit is not None and hit[0] is dataset and hit[1].equals(stored, check_metadata=True):
        return hit[2]
    described = describe_fields(stored, dataset.columns, masks)
    if len(_DESCRIBED) >= 4096:
        _DESCRIBED.clear()
    _DESCRIBED[key] = (dataset, stored, described)
    return described


class _Gate:
    """A decision entry held back until the slice's completion, or until ``release``."""

    def __init__(self, node: Node, held: Event | None) -> None:
        self._node = node
        self._held = [held] if held is not None else []

    def release(self) -> None:
        """Append the held decision now (nothing if none is held); 503 if it cannot be."""
        if self._held:
            record_all(self._node, self._held)
            self._held = []

    def take(self) -> list[Event]:
        """The held entries, for the caller to append with its own."""
        held, self._held = self._held, []
        return held


def _parse_filter(text: str | None, dataset: Dataset) -> Filter | None:
    if text is None or not text.strip():
        return None
    try:
        tree = parse(text)
        check(tree, {c.name: c.type for c in dataset.columns}, text)
    except FilterError as exc:
        raise BadRequest(str(exc), position=exc.position, filter=text) from exc
    return tree


def _check_columns(dataset: Dataset, req: SliceRequest) -> None:
    known = set(dataset.column_names)
    asked = list(req.columns or ()) + [_order(o)[0] for o in req.order_by]
    unknown = [c for c in asked if c not in known]
    if unknown:
        raise BadRequest(f"unknown column(s) {', '.join(map(repr, unknown))} in {dataset.id}")


def _check_reach(decision: Decision, user_filter: Filter | None, req: SliceRequest) -> None:
    # Filtering or ordering on a column one may not see would leak it row by row.
    visible = set(decision.columns) - set(decision.masks)
    used = set(fields(user_filter)) if user_filter is not None else set()
    used |= {_order(o)[0] for o in req.order_by}
    hidden = sorted(used - visible)
    if hidden:
        raise Forbidden(
            f"the filter or order uses column(s) withheld or masked by policy: {', '.join(hidden)}"
        )


def _order(term: str) -> tuple[str, bool]:
    term = term.strip()
    return (term[1:], True) if term.startswith("-") else (term.lstrip("+"), False)


def _limit(node: Node, limit: int | None) -> int | None:
    cap = node.settings.max_rows
    if cap is None:
        return limit
    return cap if limit is None else min(limit, cap)


def manifest_for(
    node: Node,
    principal: Principal,
    dataset: Dataset,
    req: SliceRequest,
    decision: Decision,
    request_id: str,
) -> dict[str, Any]:
    """The manifest of a slice before it streams; rows, bytes and sha256 come at the end."""
    return {
        "id": request_id,
        "node": node.institution,
        "node_url": node.public_url,
        "dataset": dataset.id,
        "dataset_version": dataset.version,
        "dataset_title": dataset.title,
        "query": {
            "columns": list(in_asked_order(decision.columns, req.columns)),
            "filter": req.filter,
            "order_by": list(req.order_by),
            "limit": req.limit,
            "offset": req.offset,
            "row_filter": unparse(decision.row_filter) if decision.row_filter is not None else None,
        },
        "purpose": req.purpose,
        "principal": principal.id,
        "actor": principal.actor,
        "licence": dataset.license,
        "citation": dataset.citation,
        "obligations": [o.to_dict() for o in decision.obligations],
        "policy_version": decision.policy_version,
        "decision": {
            "withheld": list(decision.withheld),
            "masked": {k: m.kind.value for k, m in decision.masks.items()},
            "mask_key": decision.mask_key_id,
            "reasons": list(decision.reasons),
        },
        "format": req.format.value,
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "upstream": [],
        "rows": None,
        "bytes": None,
        "sha256": None,
        "complete": False,
    }


class _Batches:
    """The store's batches with the first one read already, so store errors come before any byte."""

    def __init__(
        self, first: pa.RecordBatch | None, schema: pa.Schema, rest: Generator[pa.RecordBatch]
    ):
        self.schema = schema
        self._first = first
        self._rest = rest
        self.rows = 0

    def conform(self, schema: pa.Schema) -> None:
        """Deliver every batch under ``schema``; the first is converted (and checked) now."""
        self.schema = schema
        if self._first is not None:
            self._first = _conform(self._first, schema)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                self.rows += first.num_rows
                yield first
            # Most slices end with their first batch: only a second one is worth a thread.
            second = next(self._rest, None)
        except BaseException:
            self._rest.close()  # the store's connection back to its pool now
            raise
        if second is None:
            return
        with contextlib.closing(_ReadAhead(self._rest)) as rest:
            for batch in itertools.chain((second,), rest):
                batch = _conform(batch, self.schema)
                self.rows += batch.num_rows
                yield batch


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    try:
        return conform(batch, schema)
    except NotNullViolation as exc:
        raise ServiceUnavailable(f"the store's data does not match the catalog: {exc}") from exc


class _ReadAhead:
    """``source`` read by a thread of its own, up to ``READ_AHEAD`` batches ahead, from now on.

    The store's driver decodes rows without the GIL, so reading the next batches overlaps
    encoding, hashing and sending this one; the bounded queue keeps memory to a few batches.
    """

    def __init__(self, source: Iterator[pa.RecordBatch]) -> None:
        self._source = source
        self._ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._finished = False
        self._reader = threading.Thread(target=self._produce, name="matgate-read-ahead")
        self._reader.daemon = True
        self._reader.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        source = self._source
        try:
            for batch in source:
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except Exception as exc:
            self._put(("error", exc))
        finally:
            # The store iterator's own cleanup (its connection back to the pool) runs here.
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._finished:
            raise StopIteration
        kind, value = self._ready.get()
        if kind == "batch":
            return value
        self._finished = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop reading. A reader past its last item only has its cleanup left: wait for it.
        One stopped early may be in the middle of a slow store read: it closes the store's
        iterator itself when that read returns, and nobody (perhaps the event loop, collecting
        this stream) waits."""
        self._stop.set()
        if self._finished:
            self._reader.join()


def _first_batch_early(node: Node, dataset: Dataset, query: Query) -> _Batches:
    connector = node.stores.get(dataset.location.store)
    try:
        stream = iter(connector.batches(query, batch_rows=node.settings.batch_rows))
        first = next(stream, None)
        schema = first.schema if first is not None else connector.schema(query)
    except ConnectorError as exc:
        raise ServiceUnavailable(f"store {dataset.location.store!r} failed: {exc}") from exc
    return _Batches(first, schema, _guard(stream))


def _guard(stream: Iterator[pa.RecordBatch]) -> Generator[pa.RecordBatch]:
    try:
        yield from stream
    except ConnectorError as exc:
        raise ServiceUnavailable(f"store failed mid-stream: {exc}") from exc


def _deliver(
    node: Node,
    principal: Principal,
    manifest: dict[str, Any],
    fmt: Format,
    schema: pa.Schema,
    batches: _Batches,
    gate: _Gate,
) -> Iterator[bytes]:
    sealed: dict[str, Any] = {}

    def seal(content: Content) -> dict[str, str]:
        # Everything up to the last row is written: sign the complete manifest into the file.
        # The hash of the whole response cannot be in it (the seal is part of the response).
        sealed.update(
            {k: v for k, v in manifest.items() if k not in ("bytes", "sha256")},
            rows=content.rows,
            content=content.to_dict(),
            complete=True,
            sealed=dt.datetime.now(dt.UTC).isoformat(),
        )
        return {
            MANIFEST_KEY.decode(): orjson.dumps(sealed).decode(),
            SIGNATURE_KEY.decode(): node.provenance.sign(sealed),
        }

    encoded = Encoded(fmt, schema, batches, seal if fmt.sealed else None)
    error = ""
    try:
        yield from encoded
    except GeneratorExit:
        error = "client went away"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("slice %s broke", manifest["id"])
        raise
    finally:
        final = {
            **(sealed or manifest),
            "rows": batches.rows,
            "bytes": encoded.bytes,
            "sha256": encoded.sha256,
            "complete": not error,
            "completed": dt.datetime.now(dt.UTC).isoformat(),
        }
        held = gate.take()
        try:
            keep(node, principal, final, error=error, held=held)
        except Exception:
            if held:  # nothing has left, and nothing may: not even the decision is recorded
                raise
            # The decision was recorded before release; a lost completion is logged loudly.
            log.exception("could not record the completion of slice %s", manifest["id"])


def keep(
    node: Node,
    principal: Principal,
    final: dict[str, Any],
    *,
    action: Action = Action.READ,
    error: str = "",
    held: Sequence[Event] = (),
) -> str:
    """Sign the final manifest of a slice, and record what the slice actually delivered, after
    the ``held`` entries (its decision, when it was held back), with the manifest kept in the
    same transaction (lineage holds only manifests the log holds). Returns the signed manifest
    (compact JWS).
    """
    query = final.get("query") or {}
    token = node.provenance.sign(final)
    delivered = SliceDelivered(
        request_id=final["id"],
        node=node.institution,
        principal=principal.id,
        institution=principal.institution,
        dataset=final["dataset"],
        action=action.value,
        purpose=final["purpose"],
        decision="allow",
        manifest_id=final["id"],
        policy_version=final.get("policy_version") or 0,
        rows=int(final.get("rows") or 0),
        bytes=int(final.get("bytes") or 0),
        sha256=final.get("sha256") or "",
        columns=tuple(query.get("columns") or ()),
        filter=query.get("filter"),
        format=final["format"],
        complete=bool(final.get("complete")),
        error=error,
    )
    record_all(node, [*held, delivered], also=node.provenance.keeper(final, token))
    node.provenance.completed(final, error=error)
    return token
