"""OPTIMADE requests run through the slice service: decided, pushed down, audited, manifested.

For each mapped dataset the caller may discover, one slice is opened (``gateway.slices``) with the
filter's simple conjuncts on mapped columns pushed into the store's query; the rows that come
back are what a slice would give the caller, and the whole OPTIMADE filter (as the optimade
package's Mongo transformer reads it) is then applied to the entries built from them. A dataset
the caller may not read contributes nothing, exactly as it would to a native pull.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import urllib.parse
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from connectors.datasets import ColumnType, Dataset
from connectors.filterparser import unparse
from connectors.filters import Compare, CompareOp, Filter, all_of
from gateway.access import discoverable
from gateway.config import OptimadeMapping
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.faces.optimade import entries as E
from gateway.formats import Format
from gateway.slices import SliceRequest, open_slice, permitted
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = [
    "API_VERSION",
    "Params",
    "entry_info",
    "error_body",
    "info",
    "links",
    "params",
    "structure",
    "structures",
]

API_VERSION = "1.2.0"
SCHEMA = "https://schemas.optimade.org/openapi/v1.2/optimade.json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 500
_PUSHABLE = {"$eq": CompareOp.EQ, "$lt": CompareOp.LT, "$lte": CompareOp.LE}
_PUSHABLE |= {"$gt": CompareOp.GT, "$gte": CompareOp.GE}


@dataclass(frozen=True)
class Params:
    """The query parameters of an entry listing, checked."""

    filter: str | None = None
    page_limit: int = DEFAULT_LIMIT
    page_offset: int = 0
    response_fields: tuple[str, ...] | None = None
    sort: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class Where:
    """Where a request was made: for ``meta.query`` and pagination links."""

    base: str  # the face's base URL, e.g. http://host/optimade
    path: str  # the endpoint under it, e.g. /structures
    query: str  # the raw query string


def params(query: dict[str, str]) -> Params:
    """Parse the listing parameters; 400 on values OPTIMADE does not allow."""
    fmt = query.get("response_format", "json")
    if fmt != "json":
        raise BadRequest(f"response_format {fmt!r} is not served; use 'json'")
    limit = _integer(query, "page_limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise _LimitTooLarge(f"page_limit {limit} exceeds the maximum of {MAX_LIMIT}")
    fields = query.get("response_fields")
    sort = tuple(
        (term.strip().removeprefix("-"), term.strip().startswith("-"))
        for term in (query.get("sort") or "").split(",")
        if term.strip()
    )
    return Params(
        filter=(query.get("filter") or "").strip() or None,
        page_limit=limit,
        page_offset=_integer(query, "page_offset", 0),
        response_fields=tuple(f.strip() for f in fields.split(",") if f.strip())
        if fields is not None
        else None,
        sort=sort,
    )


class _LimitTooLarge(BadRequest):
    """OPTIMADE answers 403 to a page_limit above the server's maximum."""

    status = 403
    title = "Forbidden"


def _integer(query: dict[str, str], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a non-negative integer, not {raw!r}") from None
    if value < 0:
        raise BadRequest(f"{key} must be a non-negative integer, not {raw!r}")
    return value


# -- metadata ---------------------------------------------------------------------------------


def _meta(node: Node, where: Where, **extra: Any) -> dict[str, Any]:
    return {
        "query": {"representation": where.path + (f"?{where.query}" if where.query else "")},
        "api_version": API_VERSION,
        "time_stamp": _now(),
        "more_data_available": False,
        "provider": {
            "name": f"matgate: {node.title}",
            "description": f"Governed materials data of {node.title}, served by a matgate node.",
            "prefix": E.PREFIX,
            "homepage": node.public_url,
        },
        "implementation": {"name": "matgate", "version": version("matgate")},
        "schema": SCHEMA,
        **extra,
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_body(node: Node, where: Where, status: int, title: str, detail: str) -> dict[str, Any]:
    """A JSON:API error document, as OPTIMADE clients expect."""
    return {
        "errors": [{"status": str(status), "title": title, "detail": detail}],
        "meta": _meta(node, where),
    }


def info(node: Node, where: Where) -> dict[str, Any]:
    """``/info``: what this OPTIMADE API serves."""
    return {
        "data": {
            "type": "info",
            "id": "/",
            "attributes": {
                "api_version": API_VERSION,
                "available_api_versions": [{"url": f"{where.base}/v1", "version": API_VERSION}],
                "formats": ["json"],
                "available_endpoints": ["info", "links", "structures"],
                "entry_types_by_format": {"json": ["structures"]},
                "is_index": False,
            },
        },
        "meta": _meta(node, where, data_returned=1),
    }


def links(node: Node, where: Where) -> dict[str, Any]:
    """``/links``: this node is no index of other databases."""
    return {"data": [], "meta": _meta(node, where, data_returned=0), "links": {"next": None}}


def entry_info(node: Node, principal: Principal, where: Where, entry: str) -> dict[str, Any]:
    """``/info/structures``: the standard properties, and the provider fields you may read."""
    if entry != "structures":
        raise NotFound(f"no entry type {entry!r}; this API serves 'structures'")
    seen = []
    for mapping, dataset in _mapped(node, principal):
        try:
            decision = permitted(
                node, principal, dataset.id, SliceRequest(purpose=mapping.purpose)
            ).decision
        except (Forbidden, NotFound):
            continue
        seen.append(E.provider_fields(mapping, dataset, decision.columns))
    properties = {**E.standard_properties(), **E.provider_properties(seen)}
    return {
        "data": {
            "id": "structures",
            "type": "info",
            "description": "Structures: compositions of this node's mapped datasets.",
            "formats": ["json"],
            "properties": properties,
            "output_fields_by_format": {"json": list(properties)},
        },
        "meta": _meta(node, where, data_returned=1),
    }


# -- entries ----------------------------------------------------------------------------------


def structures(node: Node, principal: Principal, where: Where, p: Params) -> dict[str, Any]:
    """``/structures``: the entries matching the filter, one page of them."""
    query = _mongo(p.filter)
    found: list[dict[str, Any]] = []
    for mapping, dataset in _mapped(node, principal):
        found += _read(
            node, principal, mapping, dataset, query, pushed=_push(query, mapping, dataset)
        )
    found = _sorted(found, p.sort)
    page = found[p.page_offset : p.page_offset + p.page_limit]
    more = p.page_offset + len(page) < len(found)
    next_link = None
    if more:
        args = dict(urllib.parse.parse_qsl(where.query, keep_blank_values=True))
        args.update(page_offset=str(p.page_offset + len(page)), page_limit=str(p.page_limit))
        next_link = f"{where.base}{where.path}?{urllib.parse.urlencode(args)}"
    return {
        "data": [_resource(doc, p.response_fields) for doc in page],
        "meta": _meta(node, where, data_returned=len(found), more_data_available=more),
        "links": {"next": next_link},
    }


def structure(
    node: Node, principal: Principal, where: Where, entry_id: str, p: Params
) -> dict[str, Any]:
    """``/structures/{id}``: one entry, if the caller may read it."""
    name, sep, value = entry_id.partition(":")
    for mapping, dataset in _mapped(node, principal, name) if sep else []:
        pushed = _id_filter(dataset, mapping, value)
        for doc in _read(node, principal, mapping, dataset, None, pushed=pushed):
            if doc["id"] == entry_id:
                return {
                    "data": _resource(doc, p.response_fields),
                    "meta": _meta(node, where, data_returned=1),
                    "links": {"next": None},
                }
    raise NotFound(f"no structure {entry_id!r}")


def _mapped(
    node: Node, principal: Principal, name: str | None = None
) -> list[tuple[OptimadeMapping, Dataset]]:
    """The mapped datasets (only ``name``, if given) the caller may discover, each read by its
    id (others are not even asked for, and nothing else of the catalog is read)."""
    mappings = [m for m in node.config.optimade.structures if name is None or m.dataset == name]
    ids = [f"{node.institution}/{m.dataset}" for m in mappings]
    visible = {d.name: d for d in discoverable(node, principal, ids)}
    return [(m, visible[m.dataset]) for m in mappings if m.dataset in visible]


def _read(
    node: Node,
    principal: Principal,
    mapping: OptimadeMapping,
    dataset: Dataset,
    query: dict[str, Any] | None,
    *,
    pushed: Filter | None,
) -> list[dict[str, Any]]:
    """One slice of a mapped dataset, as entries matching ``query``."""
    req = SliceRequest(
        purpose=mapping.purpose,
        filter=unparse(pushed) if pushed is not None else None,
        format=Format.ARROW,
    )
    try:
        opened = open_slice(node, principal, dataset.id, req)
    except (Forbidden, NotFound):
        return []  # not readable by this caller: as absent as it is from a native pull
    table = pa.ipc.open_stream(b"".join(opened.chunks)).read_all()
    mapped = E.provider_fields(mapping, dataset, table.column_names)
    docs = E.entries(mapped, table, _modified(dataset))
    if not query:
        return docs
    from mongomock.filtering import filter_applies

    return [doc for doc in docs if filter_applies(query, doc)]


def _modified(dataset: Dataset) -> dt.datetime:
    day = dataset.modified or dataset.created or dt.date(1970, 1, 1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from optimade.filterparser import LarkParser

    return LarkParser(version=(1, 2, 0))


@functools.lru_cache(maxsize=1)
def _transformer() -> type[Any]:
    """The optimade package's Mongo transformer, matching string operands literally.

    Its CONTAINS, STARTS and ENDS put the operand into a regular expression unescaped, so
    ``CONTAINS "Ag(SI)2"`` would not match its own text; here the operand is escaped first.
    """
    from lark import Token
    from optimade.filtertransformers.mongo import MongoTransformer

    class Literal(MongoTransformer):
        def fuzzy_string_op_rhs(self, arg: list[Any]) -> Any:
            with_keyword = isinstance(arg[1], Token) and arg[1].type == "WITH"
            operand = arg[2] if with_keyword else arg[1]
            if isinstance(operand, str):
                operand = re.escape(operand)
            return super().fuzzy_string_op_rhs([arg[0], operand])

    return Literal


def _mongo(text: str | None) -> dict[str, Any] | None:
    """The OPTIMADE filter as a Mongo query (the optimade package's own reading); 400 if bad."""
    if text is None:
        return None
    from optimade.exceptions import BadRequest as OptimadeBadRequest

    try:
        tree = _parser().parse(text)
        query: dict[str, Any] = _transformer()().transform(tree)
    except OptimadeBadRequest as exc:
        raise BadRequest(f"filter: {exc.detail}") from None
    except Exception as exc:  # the transformer raises lark's own errors on odd trees
        raise BadRequest(f"filter: {type(exc).__name__}: {exc}") from None
    return query


def _push(
    query: dict[str, Any] | None, mapping: OptimadeMapping, dataset: Dataset
) -> Filter | None:
    """The conjuncts of ``query`` that compare one mapped column to a literal of its type.

    Each is implied by the whole filter, so the store returns a superset of what matches; the
    whole filter is applied afterwards.
    """
    if not query:
        return None
    conjuncts = query.get("$and", [query]) if len(query) == 1 else [query]
    columns = {E.provider_name(c): c for c in dataset.column_names if c != mapping.formula}
    columns["chemical_formula_descriptive"] = mapping.formula
    pushed: list[Filter] = []
    for item in conjuncts:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((prop, cond),) = item.items()
        column = columns.get(prop)
        if column is None or not isinstance(cond, dict) or len(cond) != 1:
            continue
        ((op, value),) = cond.items()
        if op in _PUSHABLE and _fits(dataset.column(column).type, value):
            pushed.append(Compare(column, _PUSHABLE[op], value))
    return all_of(*pushed)


def _fits(kind: ColumnType, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return kind is ColumnType.STRING
    if isinstance(value, int | float):
        return kind in (ColumnType.INTEGER, ColumnType.FLOAT)
    return False


def _id_filter(dataset: Dataset, mapping: OptimadeMapping, value: str) -> Filter | None:
    column = mapping.id_column or mapping.formula
    kind = dataset.column(column).type
    if kind is ColumnType.STRING:
        return Compare(column, CompareOp.EQ, value)
    if kind is ColumnType.INTEGER:
        try:
            return Compare(column, CompareOp.EQ, int(value))
        except ValueError:
            return None
    return None


def _sorted(docs: list[dict[str, Any]], sort: tuple[tuple[str, bool], ...]) -> list[dict[str, Any]]:
    known = set(E.standard_properties())
    for prop, _ in sort:
        if prop not in known and not prop.startswith(f"_{E.PREFIX}_"):
            raise BadRequest(f"cannot sort on unknown property {prop!r}")
    for prop, descending in reversed(sort):
        present = [d for d in docs if d.get(prop) is not None]
        absent = [d for d in docs if d.get(prop) is None]
        try:
            present.sort(key=lambda d: d[prop], reverse=descending)
        except TypeError:
            raise BadRequest(f"cannot sort on {prop!r}: its values are not comparable") from None
        docs = present + absent
    if not sort:
        docs.sort(key=lambda d: d["id"])
    return docs


def _resource(doc: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    attributes = {k: v for k, v in doc.items() if k not in ("id", "type")}
    if fields is not None:
        # Every field asked for is answered, null where this entry's dataset has no such column.
        attributes = {k: attributes.get(k) for k in fields if k not in ("id", "type")}
    stamp = attributes.get("last_modified")
    if isinstance(stamp, dt.datetime):
        attributes["last_modified"] = stamp.isoformat().replace("+00:00", "Z")
    return {"id": doc["id"], "type": "structures", "attributes": attributes}
