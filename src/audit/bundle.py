"""The exported, verifiable copy of a log, and one-call verification of a log or a copy.

Format (JSON Lines, UTF-8, one record per ``\\n``-terminated line):
- first a header ``{"header": {"format": "matgate-audit/1", "node": ..., "size": n,
  "jwks": {"keys": [...]}}}``;
- then every entry's stored bytes verbatim, in index order (each line starts ``{"event":``);
- then every checkpoint ``{"checkpoint": {"size", "root", "time", "node", "kid", "signature"}}``.
Entry lines are the exact bytes that were hashed, so a verifier hashes them without re-encoding.
A verifier should take the JWKS from the node itself (``/.well-known/jwks.json``) rather than
trust the copy's header; ``verify_bundle`` accepts it as an argument for that reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from audit.canonical import canonical_json
from audit.checkpoints import Checkpoint
from audit.log import AuditLog
from audit.verify import Report, verify

__all__ = ["FORMAT", "Bundle", "read_bundle", "verify_bundle", "verify_log", "write_bundle"]

FORMAT = "matgate-audit/1"
_ENTRY = b'{"event":'
_CHECKPOINT = b'{"checkpoint":'
_HEADER = b'{"header":'


@dataclass(frozen=True, slots=True)
class Bundle:
    """A log copy read back: entry bytes, checkpoints, the node and its JWKS as shipped."""

    node: str
    jwks: dict[str, Any]
    entries: list[bytes]
    checkpoints: list[Checkpoint]


def write_bundle(log: AuditLog, fp: IO[bytes]) -> int:
    """Write the whole log as a verifiable copy to a binary file; returns the entry count."""
    checkpoints = log.checkpoints()
    header = {"format": FORMAT, "node": log.node, "size": log.size(), "jwks": log.jwks()}
    fp.write(canonical_json({"header": header}) + b"\n")
    count = 0
    for body in log.bodies():
        fp.write(body + b"\n")
        count += 1
    for cp in checkpoints:
        fp.write(canonical_json({"checkpoint": cp.to_dict()}) + b"\n")
    return count


def _lines(fp: IO[bytes]) -> Iterator[bytes]:
    for line in fp:
        yield line[:-1] if line.endswith(b"\n") else line


def read_bundle(fp: IO[bytes]) -> Bundle:
    """Read a copy written by ``write_bundle``; lines that are none of the three kinds are kept
    as entries, so the verifier reports them as malformed rather than dropping them."""
    node: str = ""
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
            if header.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} copy: {header.get('format')!r}")
            node, jwks = str(header.get("node", "")), dict(header.get("jwks", jwks))
        elif line.strip():
            entries.append(line)
    return Bundle(node, jwks, entries, checkpoints)


def verify_bundle(source: str | Path | IO[bytes], jwks: Mapping[str, Any] | None = None) -> Report:
    """Verify an exported copy, with the node's JWKS if given (else the one in the copy)."""
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            bundle = read_bundle(fp)
    else:
        bundle = read_bundle(source)
    return verify(bundle.entries, bundle.checkpoints, jwks if jwks is not None else bundle.jwks)


def verify_log(log: AuditLog, jwks: Mapping[str, Any] | None = None) -> Report:
    """Verify a live log's stored entries against its stored checkpoints."""
    return verify(log.bodies(), log.checkpoints(), jwks if jwks is not None else log.jwks())
