"""The Python client: find datasets, pull permitted slices as pandas or Arrow, verify them.

Light on imports (httpx, pyarrow, pandas, tqdm): nothing of the server side is imported, so it
installs and runs anywhere::

    from gateway.client import Client

    c = Client("http://127.0.0.1:8000", token="...")
    c.catalog(q="yield strength", pspp="property")
    df = c.dataset("alpha/ni-superalloys").pull(
        columns=["alloy", "yield_strength_mpa"],
        filter="test_temperature_c > 600",
        purpose="research",
    )
    df.attrs["matgate"]          # the manifest: licence, obligations, row count, content hash

Errors are those of ``gateway.errors`` (``Forbidden``, ``NotFound``, ``BadRequest`` ...), rebuilt
from the node's problem+json; a pull whose content does not match its manifest raises
``IntegrityError``. Pass ``transport=httpx.ASGITransport(app)``... to run against an app in-process.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from gateway.client_ml import Learning
from gateway.errors import IntegrityError, MatgateError, from_problem

__all__ = ["CatalogResult", "Client", "RemoteDataset"]

MANIFEST_KEY = b"matgate.manifest"
_ARROW = "application/vnd.apache.arrow.stream"


class CatalogResult(list[dict[str, Any]]):
    """Catalog entries (a list), with ``sites``: each site's status of a federated search."""

    def __init__(self, entries: Sequence[dict[str, Any]], sites: dict[str, Any]) -> None:
        super().__init__(entries)
        self.sites = sites
        self.complete = all(s.get("status") == "ok" for s in sites.values())


class Client(Learning):
    """A connection to one matgate node (your home node, for federated datasets)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        progress: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.progress = progress
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- catalog -------------------------------------------------------------------------

    def catalog(
        self,
        q: str | None = None,
        *,
        pspp: str | Sequence[str] | None = None,
        column: str | None = None,
        unit: str | None = None,
        license: str | None = None,
        institution: str | None = None,
        federated: bool = False,
    ) -> CatalogResult:
        """Datasets you may discover that match every given criterion; ``federated=True`` asks
        every node of the federation (each site's status is in the result's ``sites``)."""
        params: dict[str, Any] = {
            "q": q,
            "pspp": [pspp] if isinstance(pspp, str) else list(pspp or []),
            "column": column,
            "unit": unit,
            "license": license,
            "institution": institution,
        }
        if federated:
            params["federated"] = "true"
        body = self.get("/catalog", params={k: v for k, v in params.items() if v not in (None, [])})
        # Each entry's ``id`` (``institution/name``) is what ``dataset()`` and ``pull`` take;
        # nodes before it was served get it filled in here.
        entries = [{"id": f"{d['institution']}/{d['name']}", **d} for d in body["datasets"]]
        return CatalogResult(entries, (body.get("meta") or {}).get("sites", {}))

    def dataset(self, dataset_id: str) -> RemoteDataset:
        """A handle on dataset ``institution/name``."""
        return RemoteDataset(self, dataset_id)

    def provenance(self, request_id: str) -> dict[str, Any]:
        """The signed manifest of a slice you pulled: ``{"manifest": ..., "signature": ...}``."""
        return self.get(f"/provenance/{request_id}")

    # -- plumbing ------------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``path`` and return its JSON body (or raise the node's error)."""
        return _json(self._http.get(path, **kwargs))

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Any:
        """POST JSON to ``path`` and return the JSON answer (or raise the node's error)."""
        return _json(self._http.post(path, json=json_body, **kwargs))

    def _download(self, path: str) -> bytes:
        """GET ``path`` as raw bytes (or raise the node's error)."""
        response = self._http.get(path)
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    def delete(self, path: str, json_body: Any = None) -> Any:
        """DELETE ``path`` (with a JSON body, if given) and return the JSON answer."""
        return _json(self._http.request("DELETE", path, json=json_body))

    def _stream_arrow(self, path: str, body: dict[str, Any], progress: bool | None) -> pa.Table:
        with self._http.stream("POST", path, json=body, headers={"Accept": _ARROW}) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            request_id = response.headers.get("matgate-request-id", "")
            reader = _HashingReader(response.iter_bytes())
            stream = pa.ipc.open_stream(reader)
            batches = []
            bar = _bar(progress if progress is not None else self.progress)
            for batch in stream:
                batches.append(batch)
                if bar is not None:
                    bar.update(batch.num_rows)
            if bar is not None:
                bar.close()
            table = pa.Table.from_batches(batches, schema=stream.schema)
            reader.drain()
        found = self.provenance(request_id)
        manifest = found["manifest"]
        if manifest.get("sha256") != reader.hexdigest():
            raise IntegrityError(
                f"content hash {reader.hexdigest()} does not match the manifest's "
                f"{manifest.get('sha256')}"
            )
        if manifest.get("rows") != table.num_rows:
            raise IntegrityError(
                f"{table.num_rows} rows received, the manifest says {manifest.get('rows')}"
            )
        meta = dict(table.schema.metadata or {})
        meta[MANIFEST_KEY] = json.dumps(manifest).encode()
        meta[b"matgate.signature"] = (found.get("signature") or "").encode()
        return table.replace_schema_metadata(meta)


class RemoteDataset:
    """One dataset of the federation, seen through your node."""

    def __init__(self, client: Client, dataset_id: str) -> None:
        if dataset_id.count("/") != 1:
            raise ValueError("a dataset id is 'institution/name'")
        self.client = client
        self.id = dataset_id

    def metadata(self) -> dict[str, Any]:
        """FAIR metadata and the column schema."""
        return self.client.get(f"/catalog/{self.id}")

    def agreements(self) -> list[dict[str, Any]]:
        """The terms of use that cover the dataset (a peer's: as its owner lists them)."""
        found: list[dict[str, Any]] = self.client.get(f"/datasets/{self.id}/agreements")
        return found

    def accept(self, agreement_id: str, *, whole_institution: bool = False) -> dict[str, Any]:
        """Accept one of its agreements (through your node, which forwards a peer's to the
        owner); as a steward, ``whole_institution=True`` accepts for your institution."""
        params = {"whole_institution": "true"} if whole_institution else None
        path = f"/datasets/{self.id}/agreements/{agreement_id}/accept"
        accepted: dict[str, Any] = self.client.post(path, params=params)
        return accepted

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        purpose: str,
        order_by: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        progress: bool | None = None,
    ) -> pa.Table:
        """The permitted slice as a ``pyarrow.Table``; the manifest is in the schema metadata."""
        body = {
            "purpose": purpose,
            "columns": list(columns) if columns is not None else None,
            "filter": filter,
            "order_by": list(order_by),
            "limit": limit,
            "offset": offset,
            "format": "arrow",
        }
        return self.client._stream_arrow(f"/datasets/{self.id}/slice", body, progress)

    def pull(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        purpose: str,
        order_by: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """The permitted slice as a DataFrame; ``df.attrs["matgate"]`` holds the manifest."""
        table = self.to_arrow(
            columns,
            filter,
            purpose=purpose,
            order_by=order_by,
            limit=limit,
            offset=offset,
            progress=progress,
        )
        return to_pandas(table)

    def download(
        self,
        path: str | Path,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        *,
        purpose: str,
        format: str = "parquet",
        order_by: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Save the permitted slice as the node wrote it (Parquet or an Arrow stream: sealed
        with its signed manifest, for ``matgate verify``); returns the node's manifest."""
        body = {
            "purpose": purpose,
            "columns": list(columns) if columns is not None else None,
            "filter": filter,
            "order_by": list(order_by),
            "limit": limit,
            "offset": offset,
            "format": format,
        }
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        http = self.client._http
        with http.stream("POST", f"/datasets/{self.id}/slice", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            request_id = response.headers.get("matgate-request-id", "")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        manifest: dict[str, Any] = self.client.provenance(request_id)["manifest"]
        if manifest.get("sha256") != digest.hexdigest():
            partial.unlink(missing_ok=True)
            raise IntegrityError(
                f"content hash {digest.hexdigest()} does not match the manifest's "
                f"{manifest.get('sha256')}"
            )
        partial.replace(target)
        return manifest


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A DataFrame of ``table`` with its manifest in ``df.attrs``."""
    meta = table.schema.metadata or {}
    df = table.to_pandas(split_blocks=True, self_destruct=False)
    if MANIFEST_KEY in meta:
        df.attrs["matgate"] = json.loads(meta[MANIFEST_KEY])
        df.attrs["matgate_signature"] = meta.get(b"matgate.signature", b"").decode()
    return df


class _HashingReader(io.RawIOBase):
    """A readable file over response chunks that hashes every byte it hands out.

    ``read(n)`` returns exactly ``n`` bytes until the end, as Arrow's stream reader expects. A
    read that one received chunk covers is served from it (no copy when it is the whole chunk);
    a larger read (a batch's body) is joined once into bytes that Arrow then uses in place.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._chunk = b""
        self._view = memoryview(self._chunk)
        self._pos = 0
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        """Always."""
        return True

    def _take(self, size: int) -> bytes | memoryview | None:
        """Up to ``size`` bytes of the current chunk (the next one if it is used up)."""
        while self._pos >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._chunk, self._view, self._pos = chunk, memoryview(chunk), 0
        if self._pos == 0 and size >= len(self._chunk):
            self._pos = len(self._chunk)
            return self._chunk
        part = self._view[self._pos : self._pos + size]
        self._pos += len(part)
        return part

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left if ``size`` < 0), short only at the end."""
        wanted = size if size >= 0 else sys.maxsize
        parts = []
        while wanted > 0:
            part = self._take(wanted)
            if part is None:
                break
            parts.append(part)
            wanted -= len(part)
        data = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        self._digest.update(data)
        return data

    def readinto(self, target: Any) -> int:
        """Fill ``target`` as far as the stream goes."""
        data = self.read(len(memoryview(target)))
        memoryview(target).cast("B")[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Hash whatever the Arrow reader did not need (there should be nothing)."""
        self.read()

    def hexdigest(self) -> str:
        """SHA-256 of everything received."""
        return self._digest.hexdigest()


def _bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # Shown only when a pull takes longer than a second: small pulls stay quiet.
    return tqdm(unit=" rows", unit_scale=True, delay=1.0, desc="pull", leave=False)


def _error(response: httpx.Response) -> MatgateError:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    return from_problem(response.status_code, body if isinstance(body, dict) else None)


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _error(response)
    return response.json()
