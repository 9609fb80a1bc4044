"""The ``matgate verify FILE`` command (its checks are in ``gateway.filecheck``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_verify_command"]


def add_verify_command(sub: Any) -> None:
    """``matgate verify FILE [--jwks URL|FILE] [--json]``."""
    verify = sub.add_parser(
        "verify",
        help="check a slice file on its own",
        description="Check a Parquet or Arrow slice file against the node's published keys: "
        "signature, row count, content hash, fields. Name the keys you trust with --jwks "
        "(the node's URL or its /.well-known/jwks.json, or a JWKS file); the file's own "
        "claims about its origin are never used to find them.",
    )
    verify.add_argument("file", type=Path, help="a .parquet or .arrows file pulled from a node")
    verify.add_argument(
        "--jwks",
        default=os.environ.get("MATGATE_JWKS"),
        help="trusted keys: a node URL, a JWKS URL or a JWKS file (default: $MATGATE_JWKS)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    from gateway.filecheck import claimed_origin, load_keys, verify_file

    if not args.jwks:
        origin = claimed_origin(args.file)
        hint = f" (the file says it comes from {origin})" if origin else ""
        print(
            f"matgate: name the keys you trust with --jwks URL|FILE{hint}; "
            "they are never taken from the file itself",
            file=sys.stderr,
        )
        return 2
    report = verify_file(args.file, load_keys(args.jwks))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    for check in report.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<10} {check.detail}")
    m = report.manifest or {}
    if m:
        print(
            f"slice {m.get('id')} of {m.get('dataset')} (version {m.get('dataset_version')}) "
            f"for {m.get('principal')}, purpose {m.get('purpose')}, licence {m.get('licence')}"
        )
        for ob in m.get("obligations") or []:
            print(f"  obligation: {ob.get('kind')}: {ob.get('detail')}")
    print("verified" if report.ok else "NOT verified")
    return 0 if report.ok else 1
