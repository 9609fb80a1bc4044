"""The exported, verifiable copy of a log, and one-call verification of a log or a copy.

Format (JSON Lines, UTF-8, one record per ``\\n``-terminated line):
- first a header ``{"header": {"format": "matgate-audit/2", "node": ..., "origin": ...,
  "size": n, "jwks": {"keys": [...]}}}``;
- then every entry's stored bytes verbatim, in index order (each line starts ``{"event":``);
- then every checkpoint ``{"checkpoint": {"size", "root", "time", "node", "kid", "signature",
  "note"}}``, the last one signed when the copy was written and covering all its entries;
  ``note`` is the C2SP checkpoint note with the witnesses' cosignatures.
Entry lines are the exact bytes that were hashed, so a verifier hashes them without re-encoding.
The header's JWKS is what the node offers, not what the verifier trusts: it counts only for a
key the auditor pinned by fingerprint (see ``audit.verify.Trust``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from audit.canonical import canonical_json
from audit.checkpoints import Checkpoint, Notary, origin_of
from audit.log import AuditLog
from audit.verify import Report, Trust, verify

__all__ = ["FORMAT", "Bundle", "read_bundle", "verify_bundle", "verify_log", "write_bundle"]

FORMAT = "matgate-audit/2"
_FORMATS = (FORMAT, "matgate-audit/1")
_ENTRY = b'{"event":'
_CHECKPOINT = b'{"checkpoint":'
_HEADER = b'{"header":'


@dataclass(frozen=True, slots=True)
class Bundle:
    """A log copy read back: entry bytes, checkpoints, the node and the JWKS it offered."""

    node: str
    jwks: dict[str, Any]
    entries: list[bytes]
    checkpoints: list[Checkpoint]
    origin: str = ""


def write_bundle(
    log: AuditLog, fp: IO[bytes], notary: Notary | None = None, head: Checkpoint | None = None
) -> int:
    """Write the log as a verifiable copy up to ``head`` (default: a checkpoint signed now): the
    copy holds exactly the entries it covers; returns the entry count."""
    head = head or log.checkpoint()
    checkpoints = _up_to(log, head, notary)
    header = {
        "format": FORMAT,
        "node": log.node,
        "origin": notary.origin if notary else origin_of(log.node),
        "size": head.size,
        "jwks": log.jwks(),
    }
    fp.write(canonical_json({"header": header}) + b"\n")
    count = 0
    for body in itertools.islice(log.bodies(), head.size):
        fp.write(body + b"\n")
        count += 1
    for cp in checkpoints:
        fp.write(canonical_json({"checkpoint": cp.to_dict()}) + b"\n")
    return count


def _up_to(log: AuditLog, head: Checkpoint, notary: Notary | None) -> list[Checkpoint]:
    """The stored checkpoints up to ``head``, the head last with its note and cosignatures
    (only the covering checkpoint needs them; older ones keep their JSON signature)."""
    older = [cp for cp in log.checkpoints() if cp.size < head.size]
    return [*older, notary.attach(head) if notary is not None else head]


def _lines(fp: IO[bytes]) -> Iterator[bytes]:
    for line in fp:
        yield line[:-1] if line.endswith(b"\n") else line


def read_bundle(fp: IO[bytes]) -> Bundle:
    """Read a copy written by ``write_bundle``; lines that are none of the three kinds are kept
    as entries, so the verifier reports them as malformed rather than dropping them."""
    node = origin = ""
    jwks: dict[str, Any] = {"keys": []}
    entries: list[bytes] = []
    checkpoints: list[Checkpoint] = []
    for line in _lines(fp):
        if line.startswith(_ENTRY):
            entries.append(line)
        elif line.startswith(_CHECKPOINT):
            checkpoints.append(Checkpoint.from_dict(json.loads(line)["checkpoint"]))
        elif line.startswith(_HEADER):
            header = json.loads(line)["header"]
            if header.get("format") not in _FORMATS:
                raise ValueError(f"not a {FORMAT} copy: {header.get('format')!r}")
            node, jwks = str(header.get("node", "")), dict(header.get("jwks", jwks))
            origin = str(header.get("origin", ""))
        elif line.strip():
            entries.append(line)
    return Bundle(node, jwks, entries, checkpoints, origin)


def verify_bundle(
    source: str | Path | IO[bytes], trust: Trust | Mapping[str, Any] | None = None
) -> Report:
    """Verify an exported copy against what the caller trusts (a ``Trust`` or a trusted JWKS);
    without either, the report says authenticity was not checked."""
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            bundle = read_bundle(fp)
    else:
        bundle = read_bundle(source)
    return verify(bundle.entries, bundle.checkpoints, trust)


def verify_log(
    log: AuditLog, trust: Trust | Mapping[str, Any] | None = None, notary: Notary | None = None
) -> Report:
    """Verify a live log's stored entries against its checkpoints, one signed now; trusting the
    node's own key unless told otherwise (the node checking itself)."""
    head = log.checkpoint()
    checkpoints = _up_to(log, head, notary)
    bodies = itertools.islice(log.bodies(), head.size)
    return verify(bodies, checkpoints, trust if trust is not None else log.jwks())
