"""OPTIMADE providers as stores: public structure databases read like any other table.

A table is an OPTIMADE entry type (``structures``); its columns are the properties the provider
describes at ``/info/<entry>``: ``string``, ``integer``, ``float``, ``boolean`` and ``timestamp``
map to the logical types (timestamps to ``timestamp[us, UTC]``), ``list`` and ``dictionary``
properties (``elements``, ``species``, ...) are served as compact JSON text that cannot be
filtered or sorted on, and ``unknown`` ones are not served. ``id`` and ``type`` are strings.

The filter is compiled by ``compile_optimade`` and pushed down with ``filter``, the projection
with ``response_fields``, the order with ``sort``, offset with ``page_offset``; pages are followed
through ``links.next`` (on the provider's own origin only: host and port), one Arrow batch per
page, and no page is fetched beyond the query's limit.

Semantics, and where a provider may differ:

- OPTIMADE logic is two-valued: a comparison on an unknown (null or missing) value is false, so
  ``NOT x > 1`` would match rows where ``x`` is unknown. The gateway's logic is Kleene's, as SQL
  has it. ``compile_optimade`` pushes every ``NOT`` down to the comparisons and negates them
  (``NOT x > 1`` becomes ``x <= 1``, ``NOT x CONTAINS "a"`` becomes
  ``(x IS KNOWN AND NOT x CONTAINS "a")``), which gives the same rows as SQL on a conforming
  provider.
- ``order_by`` puts unknown values last on the first key, as every store here does, by reading
  the rows where that key is known and then those where it is not; ties and unknown values of
  later keys follow the provider, and ``id`` is appended as the last key so pages stay stable.
- The provider evaluates the filter: a provider that deviates from the specification (the
  reference server matches CONTAINS/STARTS/ENDS as regular expressions, does not unescape ``\\"``
  in strings, and refuses boolean literals) answers differently, or with an error.

Every request goes through a ``connectors.netguard`` client: the provider's host is resolved,
checked against the node's network policy (``network``; by default only public addresses) and
connected to at the checked address; a redirect to another host or port is refused.

``licence()`` and ``info()`` read the provider's ``/info``: the ``license`` link and
``available_licenses`` of OPTIMADE 1.1.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa

from connectors.base import ARROW_TYPES, Connector
from connectors.datasets import ColumnType
from connectors.errors import ConnectorError, FilterError, QueryError, StoreError, TableError
from connectors.filters import fields
from connectors.netguard import DestinationRefused, NetPolicy, guarded_client, same_origin
from connectors.optimadecompile import IDENTIFIER, compile_optimade
from connectors.query import MaskKind, Query
from connectors.sqlcompile import REDACTED

__all__ = [
    "EntryProperty",
    "OptimadeConnector",
    "ProviderInfo",
    "compile_optimade",
    "licence_id",
    "provider_info",
]

log = logging.getLogger(__name__)

TIMESTAMP = pa.timestamp("us", tz="UTC")
_VERSIONED = re.compile(r"/v\d+(\.\d+){0,2}$")
_TYPES = {
    "string": ColumnType.STRING,
    "integer": ColumnType.INTEGER,
    "float": ColumnType.FLOAT,
    "boolean": ColumnType.BOOLEAN,
    "timestamp": ColumnType.TIMESTAMP,
}
_JSON_TYPES = frozenset({"list", "dictionary"})
_TOP_LEVEL = frozenset({"id", "type"})  # resource members, not attributes
_SPDX_URL = re.compile(r"^https?://spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?$")
_CC_URL = re.compile(r"^https?://creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)/?(?:legalcode)?")
_CC0_URL = re.compile(r"^https?://creativecommons\.org/publicdomain/zero/1\.0/?")


# ---- provider metadata --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryProperty:
    """One property of an entry type, as the provider describes it at ``/info/<entry>``."""

    name: str
    optimade_type: str
    column_type: ColumnType | None
    sortable: bool
    unit: str | None = None
    description: str = ""

    @property
    def is_json(self) -> bool:
        """True when the property is a list or dictionary, served as JSON text."""
        return self.optimade_type in _JSON_TYPES


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What a provider's ``/info`` says about it."""

    base_url: str
    api_version: str | None
    entry_types: tuple[str, ...]
    license_url: str | None
    available_licenses: tuple[str, ...]
    provider_name: str | None = None
    provider_prefix: str | None = None
    provider_homepage: str | None = None

    @property
    def licence(self) -> str | None:
        """An SPDX id when the provider names one, else its licence URL, else None."""
        return licence_id(self.license_url, self.available_licenses) or self.license_url


def licence_id(license_url: str | None, available: tuple[str, ...] = ()) -> str | None:
    """The SPDX id of a provider's licence: its first ``available_licenses`` or a known URL."""
    if available:
        return available[0]
    if not license_url:
        return None
    if found := _SPDX_URL.match(license_url):
        return found.group(1)
    if found := _CC_URL.match(license_url):
        return f"CC-{found.group(1).upper()}-{found.group(2)}"
    if _CC0_URL.match(license_url):
        return "CC0-1.0"
    return None


def _link(value: object) -> str | None:
    # A JSON:API link is either a URL string or an object with "href".
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("href"), str):
        return str(value["href"])
    return None


def provider_info(document: Mapping[str, Any], base_url: str) -> ProviderInfo:
    """The ``ProviderInfo`` of an ``/info`` response document; StoreError when malformed."""
    data = document.get("data")
    attributes = data.get("attributes") if isinstance(data, Mapping) else None
    if not isinstance(attributes, Mapping):
        raise StoreError(f"OPTIMADE provider {base_url} sent an /info without data.attributes")
    by_format = attributes.get("entry_types_by_format")
    entries = by_format.get("json") if isinstance(by_format, Mapping) else None
    if not isinstance(entries, list):
        endpoints = attributes.get("available_endpoints") or []
        entries = [e for e in endpoints if e not in ("info", "links", "versions")]
    licences = attributes.get("available_licenses") or ()
    meta = document.get("meta")
    provider = meta.get("provider") if isinstance(meta, Mapping) else None
    provider = provider if isinstance(provider, Mapping) else {}
    return ProviderInfo(
        base_url=base_url,
        api_version=attributes.get("api_version"),
        entry_types=tuple(str(e) for e in entries),
        license_url=_link(attributes.get("license")),
        available_licenses=tuple(str(x) for x in licences),
        provider_name=provider.get("name"),
        provider_prefix=provider.get("prefix"),
        provider_homepage=_link(provider.get("homepage")),
    )


def _entry_properties(document: Mapping[str, Any], entry: str) -> dict[str, EntryProperty]:
    data = document.get("data")
    described = data.get("properties") if isinstance(data, Mapping) else None
    if not isinstance(described, Mapping):
        raise StoreError(f"/info/{entry} lists no properties")
    out: dict[str, EntryProperty] = {}
    for name, spec in described.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = "string" if name in _TOP_LEVEL else str(spec.get("type", "unknown"))
        out[name] = EntryProperty(
            name=name,
            optimade_type=kind,
            column_type=ColumnType.STRING if kind in _JSON_TYPES else _TYPES.get(kind),
            sortable=bool(spec.get("sortable", False)) and kind not in _JSON_TYPES,
            unit=spec.get("unit"),
            description=str(spec.get("description") or ""),
        )
    return out


# ---- the connector ------------------------------------------------------------------------


def _api_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root if _VERSIONED.search(root) else f"{root}/v1"


def _parse_time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a timestamp")
    moment = dt.datetime.fromisoformat(value)
    # Naive times (the reference server sends them) are UTC, as OPTIMADE requires.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _problem(body: Mapping[str, Any], status: int) -> str:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            text = ": ".join(str(error[k]) for k in ("title", "detail") if error.get(k))
            parts.append(text or str(error.get("status", status)))
    return "; ".join(parts) or f"HTTP {status}"


class OptimadeConnector(Connector):
    """An OPTIMADE provider; ``base_url`` with or without its ``/v1`` suffix."""

    kind = "optimade"

    def __init__(
        self,
        base_url: str,
        *,
        entry: str = "structures",
        page_limit: int = 100,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        network: NetPolicy | None = None,
    ) -> None:
        """``client`` (tests) is used as given; otherwise one guarded by ``network`` is made."""
        if page_limit < 1:
            raise ConnectorError(f"page_limit must be positive, got {page_limit}")
        if timeout <= 0:
            raise ConnectorError(f"timeout must be positive, got {timeout}")
        self.base_url = _api_root(base_url)
        try:
            self._origin = httpx.URL(self.base_url)
            self._host = self._origin.host
        except httpx.InvalidURL as exc:
            raise ConnectorError(f"{base_url!r} is not a URL: {exc}") from None
        if not self.base_url.startswith(("http://", "https://")) or not self._host:
            raise ConnectorError(f"an OPTIMADE provider needs an http(s) URL, not {base_url!r}")
        self.entry = entry
        self.page_limit = page_limit
        self.timeout = timeout
        self._owns_client = client is None
        self._client = client or guarded_client(
            network or NetPolicy(),
            timeout=timeout,
            follow_redirects=True,
            max_redirects=5,
            headers={"Accept": "application/vnd.api+json, application/json"},
        )
        self._info: ProviderInfo | None = None
        self._properties: dict[str, dict[str, EntryProperty]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> OptimadeConnector:
        return self

    def close(self) -> None:
        """Close the HTTP client if this connector created it."""
        if self._owns_client:
            self._client.close()

    # -- HTTP --

    def _get(self, url: str, params: dict[str, str] | None = None, filtered: str = "") -> Any:
        try:
            response = self._client.get(url, params=params)
        except DestinationRefused as exc:
            where = self.base_url
            raise StoreError(f"OPTIMADE provider {where} may not be reached: {exc}") from None
        except httpx.TimeoutException:
            raise StoreError(
                f"OPTIMADE provider {self.base_url} did not answer within {self.timeout} s"
            ) from None
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach OPTIMADE provider {self.base_url}: {exc}") from None
        if not same_origin(self._origin, response.url):
            # Pages, redirects included, come from the provider's host only (http->https is fine).
            raise StoreError(f"OPTIMADE provider {self.base_url} redirected to {response.url}")
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise StoreError(
                f"OPTIMADE provider {self.base_url} answered {response.status_code} "
                f"with {kind}, not JSON"
            ) from None
        if response.status_code >= 400 or (isinstance(body, Mapping) and body.get("errors")):
            problem = _problem(body, response.status_code)
            # 400 and 501 on a filtered request mean the provider cannot take that filter.
            if filtered and response.status_code in (400, 501):
                raise FilterError(
                    f"the OPTIMADE provider refused the filter {filtered!r}: {problem}"
                )
            raise StoreError(
                f"OPTIMADE provider {self.base_url} answered {response.status_code}: {problem}"
            )
        if not isinstance(body, Mapping):
            raise StoreError(f"OPTIMADE provider {self.base_url} sent a JSON {type(body).__name__}")
        warnings = (
            body.get("meta", {}).get("warnings") if isinstance(body.get("meta"), Mapping) else None
        )
        for warning in warnings or []:
            log.warning("OPTIMADE provider %s: %s", self.base_url, warning)
        return body

    # -- metadata --

    def info(self) -> ProviderInfo:
        """The provider's ``/info``, read once."""
        with self._lock:
            if self._info is None:
                self._info = provider_info(self._get(f"{self.base_url}/info"), self.base_url)
            return self._info

    def licence(self) -> str | None:
        """The provider's licence: an SPDX id when it names one, else its URL, else None."""
        return self.info().licence

    def tables(self) -> tuple[str, ...]:
        """The entry types the provider serves."""
        return self.info().entry_types

    def _entry(self, table: str) -> str:
        entry = table or self.entry
        if not IDENTIFIER.match(entry):
            raise TableError(f"{entry!r} is not an OPTIMADE entry type name")
        if entry not in self.tables():
            served = ", ".join(self.tables()) or "none"
            raise TableError(f"OPTIMADE provider serves no entry type {entry!r} (it has: {served})")
        return entry

    def properties(self, table: str = "") -> dict[str, EntryProperty]:
        """The properties of entry type ``table`` (default ``entry``), from ``/info/<entry>``."""
        entry = self._entry(table)
        with self._lock:
            found = self._properties.get(entry)
        if found is None:
            found = _entry_properties(self._get(f"{self.base_url}/info/{entry}"), entry)
            with self._lock:
                self._properties[entry] = found
        return found

    def _arrow_schema(self, table: str) -> pa.Schema:
        fields = []
        for prop in self.properties(table).values():
            if prop.column_type is ColumnType.TIMESTAMP:
                fields.append(pa.field(prop.name, TIMESTAMP))
            elif prop.column_type is not None:
                fields.append(pa.field(prop.name, ARROW_TYPES[prop.column_type]))
        return pa.schema(fields)

    # -- reading --

    def _filter_text(self, query: Query, props: Mapping[str, EntryProperty]) -> str:
        if query.filter is None:
            return ""
        for name in fields(query.filter):
            if props[name].is_json:
                kind = props[name].optimade_type
                raise FilterError(
                    f"column {name!r} holds a {kind} (JSON text); it cannot be filtered"
                )
        stamps = frozenset(n for n, p in props.items() if p.column_type is ColumnType.TIMESTAMP)
        return compile_optimade(query.filter, stamps)

    def _sort_keys(self, query: Query, props: Mapping[str, EntryProperty]) -> list[str]:
        keys = []
        for name, descending in query.order_by:
            if not props[name].sortable:
                raise QueryError(f"the OPTIMADE provider cannot sort on {name!r}")
            keys.append(f"-{name}" if descending else name)
        tiebreak = props.get("id")
        if keys and "id" not in dict(query.order_by) and tiebreak and tiebreak.sortable:
            keys.append("id")  # a unique last key keeps offset paging stable
        return keys

    def _segments(self, query: Query, props: Mapping[str, EntryProperty]) -> list[tuple[str, str]]:
        """(filter, sort) pairs read in turn; two when unknown values must sort last."""
        text = self._filter_text(query, props)
        keys = self._sort_keys(query, props)
        if not keys or query.order_by[0][0] == "id":
            return [(text, ",".join(keys))]
        first = query.order_by[0][0]
        known = f"{first} IS KNOWN" if not text else f"({text}) AND {first} IS KNOWN"
        unknown = f"{first} IS UNKNOWN" if not text else f"({text}) AND {first} IS UNKNOWN"
        return [(known, ",".join(keys)), (unknown, ",".join(keys[1:]))]

    def _pages(
        self, entry: str, read: list[str], segments: list[tuple[str, str]], query: Query
    ) -> Iterator[list[Mapping[str, Any]]]:
        skip, left = query.offset, query.limit
        for text, sort in segments:
            if left is not None and left <= 0:
                return
            start = {
                "response_fields": ",".join(read or ["id"]),
                "page_limit": str(self._size(left)),
            }
            start |= {k: v for k, v in (("filter", text), ("sort", sort)) if v}
            if skip:
                start["page_offset"] = str(skip)
            params: dict[str, str] | None = start
            url: str | None = f"{self.base_url}/{entry}"
            first = True
            while url is not None and (left is None or left > 0):
                body = self._get(url, params, filtered=text)
                rows = body.get("data")
                if not isinstance(rows, list):
                    raise StoreError(f"OPTIMADE provider {self.base_url} sent a page without data")
                if first:
                    skip = self._skipped(body, skip, len(rows))
                    first = False
                rows = rows if left is None else rows[:left]
                if not rows:
                    break
                if left is not None:
                    left -= len(rows)
                yield rows
                url, params = self._next(body, left), None

    def _size(self, left: int | None) -> int:
        return self.page_limit if left is None else max(1, min(self.page_limit, left))

    def _skipped(self, body: Mapping[str, Any], skip: int, got: int) -> int:
        """The offset still to skip in the next segment, after the first page of this one."""
        if not skip:
            return 0
        if got:
            return 0
        meta = body.get("meta")
        total = meta.get("data_returned") if isinstance(meta, Mapping) else None
        if not isinstance(total, int):
            raise StoreError(f"OPTIMADE provider {self.base_url} does not report data_returned")
        return max(skip - total, 0)

    def _next(self, body: Mapping[str, Any], left: int | None) -> str | None:
        links = body.get("links")
        target = _link(links.get("next")) if isinstance(links, Mapping) else None
        if target is None:
            return None
        try:
            url = httpx.URL(target)
        except httpx.InvalidURL:
            raise StoreError(f"OPTIMADE provider {self.base_url} sent a bad next link") from None
        if not same_origin(self._origin, url):
            raise StoreError(f"OPTIMADE provider {self.base_url} sent a next link to {target}")
        if left is not None and "page_limit" in url.params:
            # The last page asks for only the rows still wanted.
            url = url.copy_set_param("page_limit", str(self._size(left)))
        return str(url)

    def _count(self, query: Query) -> int:
        entry = self._entry(query.table)
        props = self.properties(entry)
        text = self._filter_text(query, props)
        params = {"response_fields": "id", "page_limit": "1"} | ({"filter": text} if text else {})
        body = self._get(f"{self.base_url}/{entry}", params, filtered=text)
        meta = body.get("meta")
        total = meta.get("data_returned") if isinstance(meta, Mapping) else None
        if not isinstance(total, int):
            # No count from the provider: read the ids of the slice.
            bare = Query(entry, ("id",), query.filter, limit=query.limit, offset=query.offset)
            return sum(len(rows) for rows in self._pages(entry, ["id"], [(text, "")], bare))
        total = max(total - query.offset, 0)
        return total if query.limit is None else min(total, query.limit)

    def _batches(
        self, query: Query, schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        entry = self._entry(query.table)
        props = self.properties(entry)
        read = [n for n in query.columns if _fetched(query, n)]
        segments = self._segments(query, props)
        for rows in self._pages(entry, read, segments, query):
            yield _batch(rows, query, schema, props)


def _fetched(query: Query, name: str) -> bool:
    mask = query.masks.get(name)
    return mask is None or mask.kind is MaskKind.HASH


def _values(rows: list[Mapping[str, Any]], prop: EntryProperty) -> list[Any]:
    if prop.name in _TOP_LEVEL:
        return [row.get(prop.name) for row in rows]
    values = []
    for row in rows:
        attributes = row.get("attributes")
        values.append(attributes.get(prop.name) if isinstance(attributes, Mapping) else None)
    return values


def _array(rows: list[Mapping[str, Any]], prop: EntryProperty, kind: pa.DataType) -> pa.Array:
    values = _values(rows, prop)
    try:
        if prop.is_json:
            values = [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]
        elif prop.column_type is ColumnType.TIMESTAMP:
            values = [_parse_time(v) for v in values]
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
        raise StoreError(
            f"OPTIMADE property {prop.name!r} is not {prop.optimade_type}: {exc}"
        ) from None


def _batch(
    rows: list[Mapping[str, Any]],
    query: Query,
    schema: pa.Schema,
    props: Mapping[str, EntryProperty],
) -> pa.RecordBatch:
    arrays = []
    for field in schema:
        mask = query.masks.get(field.name)
        if mask is not None and mask.kind is MaskKind.NULL:
            arrays.append(pa.nulls(len(rows), field.type))
        elif mask is not None and mask.kind is MaskKind.REDACT:
            arrays.append(pa.array([REDACTED] * len(rows), pa.string()))
        else:
            arrays.append(_array(rows, props[field.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
