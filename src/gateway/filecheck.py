"""``matgate verify FILE``: check a slice file on its own against the node's published keys.

A Parquet file or an Arrow IPC stream pulled from a node carries its manifest signed by the
node's key (the seal, see ``gateway.formats``). This checks, with nothing but the file and a
trust root the user names (the node's ``/.well-known/jwks.json`` URL, or a JWKS file; never keys
found in the file itself):

- the seal's signature verifies under a key of that set, and the readable copy of the manifest
  beside it says the same;
- the rows in the file are as many as the manifest says;
- the SHA-256 of the bytes the seal covers (Parquet: all before the footer; Arrow: all before
  the seal message) is the manifest's;
- the fields (names in order, types, nullability, catalog metadata) are those the manifest
  lists, so the field descriptions are covered by the signature too;
- the manifest says the slice was complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from audit.errors import ManifestError, UnknownKey
from audit.manifests import manifest_header, verify_manifest
from gateway.errors import BadRequest, ServiceUnavailable
from gateway.formats import COVERS_ARROW, COVERS_PARQUET, Format, Sealed, columns_of, read_seal

__all__ = ["Check", "FileReport", "claimed_origin", "load_keys", "verify_file"]

_COVERS = {Format.PARQUET: COVERS_PARQUET, Format.ARROW: COVERS_ARROW}


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, whether it held, and the evidence."""

    name: str
    ok: bool
    detail: str


@dataclass
class FileReport:
    """Every check made on one file, and the manifest if its signature verified."""

    path: str
    format: str = ""
    manifest: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there were checks and every one held."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        """Record a check; returns ``ok``."""
        self.checks.append(Check(name, ok, detail))
        return ok

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "path": self.path,
            "format": self.format,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
            "manifest": self.manifest,
        }


def load_keys(source: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The JWKS at ``source``: an http(s) URL (a node's base URL means its well-known JWKS) or
    a file."""
    if source.startswith(("http://", "https://")):
        import httpx

        url = source
        if urlparse(source).path in ("", "/"):
            url = source.rstrip("/") + "/.well-known/jwks.json"
        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=False)
            response.raise_for_status()
            keys = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(f"cannot read the keys at {url}: {exc}") from exc
    else:
        try:
            keys = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read the keys in {source}: {exc}") from exc
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise BadRequest(f"{source} is not a JWKS (an object with a 'keys' list)")
    return keys


def verify_file(path: Path, jwks: dict[str, Any]) -> FileReport:
    """Check the file at ``path`` against ``jwks`` (see the module docstring)."""
    report = FileReport(str(path))
    try:
        sealed = read_seal(path.read_bytes())
    except (OSError, ValueError) as exc:
        report.add("seal", False, str(exc))
        return report
    report.format = sealed.format.value
    report.add("seal", True, f"{sealed.format.value} file with a signed manifest")
    signed = _signature(report, sealed, jwks)
    if signed is None:
        return report
    report.manifest = signed
    _same_copy(report, sealed, signed)
    content = signed.get("content") or {}
    rows = signed.get("rows")
    report.add(
        "rows",
        rows == sealed.rows == content.get("rows"),
        f"{sealed.rows} rows in the file, {rows} in the manifest",
    )
    digest = hashlib.sha256(sealed.covered).hexdigest()
    report.add(
        "content",
        digest == content.get("sha256")
        and len(sealed.covered) == content.get("bytes")
        and content.get("covers") == _COVERS[sealed.format],
        f"sha256 {digest} of {len(sealed.covered)} bytes ({_COVERS[sealed.format]}); "
        f"the manifest says {content.get('sha256')} of {content.get('bytes')}",
    )
    fields = columns_of(sealed.schema)
    declared = signed.get("schema")
    report.add(
        "schema",
        fields == declared,
        "fields, types, nullability and field metadata as signed"
        if fields == declared
        else f"the file's fields {_names(fields)} differ from the signed {_names(declared)}",
    )
    report.add(
        "complete",
        signed.get("complete") is True,
        "the node sealed the slice after its last row"
        if signed.get("complete") is True
        else "the manifest does not say the slice was complete",
    )
    return report


def _signature(report: FileReport, sealed: Sealed, jwks: dict[str, Any]) -> dict[str, Any] | None:
    token = sealed.seal.get("matgate.signature", "")
    try:
        kid = manifest_header(token).get("kid")
        signed = verify_manifest(token, jwks)
    except UnknownKey as exc:
        report.add("signature", False, f"{exc.detail}: not among the keys you trust")
        return None
    except ManifestError as exc:
        report.add("signature", False, exc.detail)
        return None
    report.add("signature", True, f"signed by {signed.get('node')!r} with key {kid}")
    return signed


def _same_copy(report: FileReport, sealed: Sealed, signed: dict[str, Any]) -> None:
    copy = sealed.seal.get("matgate.manifest")
    try:
        same = copy is None or json.loads(copy) == signed
    except ValueError:
        same = False
    report.add(
        "manifest",
        same,
        "the readable manifest is the signed one"
        if same
        else "the readable manifest differs from the signed one",
    )
    if sealed.draft is not None:
        try:
            draft_id = json.loads(sealed.draft).get("id")
        except (ValueError, AttributeError):
            draft_id = None
        report.add(
            "draft",
            draft_id == signed.get("id"),
            f"the schema's draft manifest names slice {draft_id}",
        )


def _names(columns: Any) -> list[str]:
    return [c.get("name", "?") for c in columns] if isinstance(columns, list) else []


def claimed_origin(path: Path) -> str | None:
    """The node URL the file's (unverified) manifest names: a hint, never a trust root."""
    try:
        sealed = read_seal(path.read_bytes())
        url = json.loads(sealed.seal.get("matgate.manifest", "{}")).get("node_url")
    except (OSError, ValueError, AttributeError):
        return None
    return str(url) if url else None
