"""Catalog search: the criteria, what a dataset is found by, and the opaque paging cursor.

Every dataset row carries the columns its search needs (``index_row``): its words, pre-split
here so that SQLite's FTS5 table and PostgreSQL's ``to_tsvector('simple', ...)`` index the very
same tokens, its lower-cased licence, a bit per PSPP role of its columns, and its units and column
names between bars. ``where`` turns criteria into a SQL condition that every match satisfies (it
may let a few more through: the text of one PSPP role is checked only in ``matches``), and
``matches`` is the exact rule, run on each candidate of a page. A word of a query matches a word
of the dataset it begins (``gap`` finds ``gaps``).

Pages follow the catalog's order (registration order, kept when an entry is replaced: new entries
come last, so a walk meets each entry once even while datasets are added); a cursor is the place
of the last entry a page looked at, bound to the search it belongs to, in base64url JSON. The
place is sealed (AES-GCM, with a key of the node's own and the search as associated data): a
place counts every entry before it, hidden ones too, so a caller must not read it, and one that
was altered is refused. A home node's federated cursor carries each site's own cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connectors.datasets import Dataset, PSPPRole
from gateway.db import catalog_table
from gateway.errors import BadRequest

__all__ = [
    "CURSOR_KEY",
    "Criteria",
    "decode_cursor",
    "digest",
    "encode_cursor",
    "fts_match",
    "index_row",
    "local_after",
    "local_cursor",
    "matches",
    "search",
    "tokens",
    "where",
]

_WORD = re.compile(r"[^\W_]+")
_ROLE_BIT = {role: 1 << i for i, role in enumerate(PSPPRole)}
_MAX_CURSOR = 4096
CURSOR_KEY = "matgate catalog cursors"  # the label of the key that seals a cursor's place


def tokens(text: str) -> list[str]:
    """The words of ``text``, lower-cased: runs of letters and digits (``_`` splits words)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Criteria:
    """A catalog search: every given criterion must hold; ``q`` matches all its words."""

    q: str | None = None
    pspp: tuple[PSPPRole, ...] = ()
    column: str | None = None
    unit: str | None = None
    license: str | None = None
    institution: str | None = None

    def params(self) -> dict[str, Any]:
        """The same search as query parameters (for a peer's ``/catalog``)."""
        found = {k: v for k, v in asdict(self).items() if v not in (None, (), "")}
        if self.pspp:
            found["pspp"] = [r.value for r in self.pspp]
        return found

    def key(self) -> str:
        """A short fingerprint of the search, which binds a cursor to it."""
        body = json.dumps(self.params(), sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


# -- what a dataset is found by -----------------------------------------------------------------


def _text(ds: Dataset, pspp: Sequence[PSPPRole] = ()) -> str:
    # With a PSPP role asked for, words must be found in the dataset or in columns of that role.
    cols = [c for c in ds.columns if not pspp or c.pspp in pspp]
    parts = [ds.id, ds.title, ds.description, " ".join(ds.keywords), ds.method or ""]
    parts += [f"{c.name} {c.description} {c.unit or ''}" for c in cols]
    return " ".join(parts)


def _bars(values: Iterable[str]) -> str:
    return "|" + "|".join(sorted(set(values))) + "|"


def digest(ds: Dataset) -> str:
    """A fingerprint of the dataset's entry: equal entries, equal digests."""
    return hashlib.sha256(ds.model_dump_json().encode()).hexdigest()


def index_row(ds: Dataset, document: str | None = None) -> dict[str, Any]:
    """The search columns of the dataset's catalog row (``document``: its JSON, if at hand)."""
    document = ds.model_dump_json() if document is None else document
    mask = 0
    for col in ds.columns:
        mask |= _ROLE_BIT[col.pspp]
    return {
        "digest": hashlib.sha256(document.encode()).hexdigest(),
        "license_key": ds.license.lower(),
        "roles": mask,
        "units": _bars((c.unit or "").lower() for c in ds.columns if c.unit),
        "column_names": _bars(c.name.lower() for c in ds.columns),
        "search_text": " ".join(dict.fromkeys(tokens(_text(ds)))),
    }


# -- the exact rule, and the index's condition --------------------------------------------------


def matches(ds: Dataset, criteria: Criteria) -> bool:
    """Whether ``ds`` meets every criterion (the rule the index narrows the search for)."""
    c = criteria
    if c.institution and ds.institution != c.institution:
        return False
    if c.license and ds.license.lower() != c.license.lower():
        return False
    if c.pspp and not {col.pspp for col in ds.columns} & set(c.pspp):
        return False
    if c.column and not any(c.column.lower() in col.name.lower() for col in ds.columns):
        return False
    if c.unit and not any((col.unit or "").lower() == c.unit.lower() for col in ds.columns):
        return False
    wanted = tokens(c.q or "")
    if wanted:
        words = set(tokens(_text(ds, c.pspp)))
        if not all(any(w.startswith(t) for w in words) for t in wanted):
            return False
    return True


def search(datasets: Iterable[Dataset], criteria: Criteria) -> list[Dataset]:
    """The datasets that match ``criteria`` (a scan: the reference the index is held to)."""
    return [ds for ds in datasets if matches(ds, criteria)]


def _like(fragment: str) -> str:
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_match(criteria: Criteria) -> str | None:
    """The FTS5 query of the search's words (SQLite), or None without words."""
    wanted = list(dict.fromkeys(tokens(criteria.q or "")))
    return " AND ".join(f'"{w}"*' for w in wanted) or None


def where(criteria: Criteria, dialect: str) -> list[sa.ColumnElement[bool]]:
    """SQL conditions on ``catalog_datasets`` that every match of ``criteria`` meets."""
    t = catalog_table
    c = criteria
    out: list[sa.ColumnElement[bool]] = []
    if c.institution:
        out.append(t.c.institution == c.institution)
    if c.license:
        out.append(t.c.license_key == c.license.lower())
    if c.pspp:
        mask = 0
        for role in c.pspp:
            mask |= _ROLE_BIT[role]
        out.append(t.c.roles.op("&")(mask) != 0)
    if c.unit:
        out.append(t.c.units.like(_like(f"|{c.unit.lower()}|"), escape="\\"))
    if c.column:
        out.append(t.c.column_names.like(_like(c.column.lower()), escape="\\"))
    wanted = list(dict.fromkeys(tokens(c.q or "")))
    if wanted and dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in wanted)
        # the row's words, stored (revision 0007): to_tsvector('simple', search_text)
        vector: sa.ColumnElement[Any] = sa.literal_column("catalog_datasets.search_vector")
        out.append(vector.op("@@")(sa.func.to_tsquery(sa.literal_column("'simple'"), query)))
    elif wanted and dialect != "sqlite":  # SQLite: the FTS5 table drives (``fts_match``)
        # other databases: each word somewhere in the text (``matches`` decides)
        out += [t.c.search_text.like(_like(w), escape="\\") for w in wanted]
    return out


# -- cursors ------------------------------------------------------------------------------------


def encode_cursor(body: dict[str, Any]) -> str:
    """An opaque cursor carrying ``body``."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def local_cursor(criteria: Criteria, after: int, key: bytes) -> str:
    """The cursor of the page that follows place ``after`` in ``criteria``'s results, the place
    sealed with ``key`` (``CURSOR_KEY`` derived from the node's key)."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, after.to_bytes(8, "big"), criteria.key().encode())
    place = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return encode_cursor({"k": "local", "s": criteria.key(), "a": place})


def local_after(cursor: str, criteria: Criteria, key: bytes) -> int:
    """The place in the catalog a local cursor continues after; BadRequest if it is not one."""
    bad = BadRequest("cursor: not a cursor of this search (start again without one)")
    place = decode_cursor(cursor, criteria, kind="local").get("a")
    if not isinstance(place, str):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(place + "=" * (-len(place) % 4))
        opened = AESGCM(key).decrypt(raw[:12], raw[12:], criteria.key().encode())
    except (binascii.Error, ValueError, InvalidTag):
        raise bad from None
    return int.from_bytes(opened, "big")


def decode_cursor(cursor: str, criteria: Criteria, *, kind: str) -> dict[str, Any]:
    """The body of a cursor of ``kind`` made for ``criteria``; BadRequest for anything else."""
    bad = BadRequest("cursor: not a cursor of this search (start again without one)")
    if len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(body, dict) or body.get("k") != kind or body.get("s") != criteria.key():
        raise bad
    return body
