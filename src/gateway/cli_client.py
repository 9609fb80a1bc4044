"""The client-side commands: ``catalog``, ``pull``, ``policy ...`` and ``audit ...``.

They talk to a node over HTTP with the Python client; the URL and token come from ``--url`` and
``--token`` or from ``MATGATE_URL`` and ``MATGATE_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_client_commands"]


def _client_args(p: argparse.ArgumentParser) -> None:
    import os

    p.add_argument("--url", default=os.environ.get("MATGATE_URL"), help="node URL ($MATGATE_URL)")
    p.add_argument(
        "--token", default=os.environ.get("MATGATE_TOKEN"), help="bearer ($MATGATE_TOKEN)"
    )


def _client(args: argparse.Namespace, **kw: Any) -> Any:
    from gateway.client import Client

    if not args.url:
        raise SystemExit("matgate: give --url or set MATGATE_URL")
    kw.setdefault("progress", False)
    return Client(args.url, token=args.token, **kw)


def _print(obj: Any) -> int:
    print(json.dumps(obj, indent=2, default=str))
    return 0


def _lines(path: Path) -> list[dict[str, Any]]:
    """Policy lines from a JSON file (a list, or one object) or a TOML file of [[lines]]."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
        return list(data.get("lines", [])) + list(data.get("assignments", []))
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def add_client_commands(sub: Any) -> None:
    """Register the client-side commands on the ``matgate`` parser."""
    catalog = sub.add_parser("catalog", help="search the catalog", description="Search datasets.")
    catalog.add_argument("q", nargs="?", default=None, help="words to find")
    catalog.add_argument("--pspp", action="append", default=[], help="PSPP role a column has")
    catalog.add_argument("--column", default=None, help="part of a column name")
    catalog.add_argument("--unit", default=None, help="a column's unit")
    catalog.add_argument("--license", default=None, help="SPDX licence id")
    catalog.add_argument("--institution", default=None, help="owning institution")
    catalog.add_argument("--json", action="store_true", help="print JSON")
    _client_args(catalog)
    catalog.set_defaults(handler=_catalog)

    pull = sub.add_parser(
        "pull", help="pull a slice to a file", description="Pull a permitted slice into a file."
    )
    pull.add_argument("dataset", help="institution/name")
    pull.add_argument(
        "-o", "--output", type=Path, required=True, help=".parquet, .csv, .arrow, .json"
    )
    pull.add_argument("--purpose", required=True, help="declared purpose, e.g. research")
    pull.add_argument("--columns", default=None, help="comma-separated columns")
    pull.add_argument("--filter", default=None, help="OPTIMADE filter")
    pull.add_argument("--order-by", default=None, help="comma-separated; '-' for descending")
    pull.add_argument("--limit", type=int, default=None)
    pull.add_argument("--no-progress", action="store_true", help="no progress bar")
    _client_args(pull)
    pull.set_defaults(handler=_pull)

    add_policy_commands(sub)
    add_audit_commands(sub)


def add_policy_commands(sub: Any) -> None:
    """Register ``matgate policy`` and its subcommands."""
    policy = sub.add_parser(
        "policy",
        help="read and change access policies",
        description="Stewards: list, add, remove and dry-run policy lines.",
    )
    psub = policy.add_subparsers(title="policy commands", metavar="ACTION")

    show = psub.add_parser("list", help="a domain's lines", description="List a domain's policy.")
    show.add_argument("domain")
    _client_args(show)
    show.set_defaults(handler=lambda a: _with(a, lambda c: _print(c.get(f"/policies/{a.domain}"))))

    for name, verb in (("add", "add"), ("remove", "remove"), ("dry-run", "add")):
        p = psub.add_parser(
            name,
            help=f"{name} lines from a file",
            description=f"{name.capitalize()} the policy lines in FILE (JSON or TOML).",
        )
        p.add_argument("domain")
        p.add_argument("file", type=Path, help="JSON (list of lines) or TOML ([[lines]])")
        if name == "dry-run":
            p.add_argument("--remove", action="store_true", help="preview removing them instead")
        _client_args(p)
        p.set_defaults(handler=_edit, verb=verb, dry=name == "dry-run")

    explain = psub.add_parser(
        "explain",
        help="why a decision is what it is",
        description="Explain a decision for yourself or (stewards) someone else.",
    )
    explain.add_argument("dataset", help="institution/name")
    explain.add_argument("--action", default="read")
    explain.add_argument("--purpose", required=True)
    explain.add_argument("--columns", default=None, help="comma-separated")
    explain.add_argument(
        "--as", dest="as_user", default=None, help="their principal id, namespace:subject"
    )
    explain.add_argument(
        "--institution", default=None, help="their institution (default: the namespace)"
    )
    explain.add_argument("--roles", default="", help="their roles, comma-separated")
    _client_args(explain)
    explain.set_defaults(handler=_explain)


def _with(args: argparse.Namespace, fn: Any) -> int:
    with _client(args) as client:
        return int(fn(client))


def _edit(args: argparse.Namespace) -> int:
    lines = _lines(args.file)
    verb = "remove" if args.dry and args.remove else args.verb
    body = {verb: lines}
    path = f"/policies/{args.domain}" + ("/dry-run" if args.dry else "")
    return _with(args, lambda c: _print(c.post(path, body)))


def _explain(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"dataset": args.dataset, "action": args.action, "purpose": args.purpose}
    if args.columns:
        body["columns"] = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.as_user:
        url = args.as_user.startswith(("https://", "http://"))
        namespace, sep, subject = args.as_user.partition("#" if url else ":")
        if not (sep and namespace and subject):
            raise SystemExit("matgate: --as takes a principal id, namespace:subject")
        institution = args.institution or namespace
        roles = [r for r in args.roles.split(",") if r]
        body["principal"] = {
            "subject": subject,
            "institution": institution,
            "namespace": namespace,
            "roles": roles,
        }
    return _with(args, lambda c: _print(c.post("/explain", body)))


def add_audit_commands(sub: Any) -> None:
    """Register ``matgate audit`` and its subcommands."""
    audit = sub.add_parser(
        "audit",
        help="read and verify the audit log",
        description="Auditors: events, exports and verification of the log.",
    )
    asub = audit.add_subparsers(title="audit commands", metavar="ACTION")

    events = asub.add_parser("events", help="list events", description="List events (auditors).")
    for flag in (
        "since",
        "until",
        "principal",
        "institution",
        "dataset",
        "action",
        "decision",
        "purpose",
        "name",
    ):
        events.add_argument(f"--{flag}", default=None)
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--cursor", default=None)
    _client_args(events)
    events.set_defaults(handler=_events)

    export = asub.add_parser(
        "export",
        help="export the log",
        description="Export events (JSON lines or CSV), or the whole log as a "
        "bundle for offline verification.",
    )
    export.add_argument("-o", "--output", type=Path, required=True)
    export.add_argument("--format", choices=("jsonl", "csv", "bundle"), default="bundle")
    _client_args(export)
    export.set_defaults(handler=_export)

    verify = asub.add_parser(
        "verify",
        help="verify a log",
        description="Verify a node's log (fetched as a bundle and checked here, trusting nothing "
        "the "
        "node says) or an exported bundle FILE against its checkpoints and keys.",
    )
    verify.add_argument("file", nargs="?", type=Path, default=None, help="an exported bundle")
    verify.add_argument("--jwks", type=Path, default=None, help="trusted JWKS file of the node")
    _client_args(verify)
    verify.set_defaults(handler=_verify)


def _events(args: argparse.Namespace) -> int:
    keys = (
        "since",
        "until",
        "principal",
        "institution",
        "dataset",
        "action",
        "decision",
        "purpose",
        "name",
        "limit",
        "cursor",
    )
    params = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    with _client(args) as client:
        page = client.get("/audit/events", params=params)
    for event in page["events"]:
        print(json.dumps(event, default=str))
    if page.get("next_cursor"):
        print(f"# more: --cursor {page['next_cursor']}", file=sys.stderr)
    return 0


def _download(args: argparse.Namespace, path: str, params: dict[str, Any], out: Path) -> None:
    with _client(args) as client, client._http.stream("GET", path, params=params) as response:
        if response.status_code >= 400:
            response.read()
            from gateway.client import _error

            raise _error(response)
        with out.open("wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)


def _export(args: argparse.Namespace) -> int:
    if args.format == "bundle":
        _download(args, "/audit/bundle", {}, args.output)
    else:
        _download(args, "/audit/export", {"format": args.format}, args.output)
    print(f"wrote {args.output}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import tempfile

    from audit.bundle import verify_bundle

    jwks = json.loads(args.jwks.read_text()) if args.jwks else None
    if args.file is not None:
        report = verify_bundle(args.file, jwks)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bundle.jsonl"
            _download(args, "/audit/bundle", {}, path)
            if jwks is None:
                with _client(args) as client:
                    jwks = client.get("/.well-known/jwks.json")
            report = verify_bundle(path, jwks)
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else 1


def _catalog(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.catalog(
            args.q,
            pspp=args.pspp,
            column=args.column,
            unit=args.unit,
            license=args.license,
            institution=args.institution,
        )
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for ds in found:
        cols = len(ds["columns"])
        print(
            f"{ds['institution']}/{ds['name']:<24} {ds['license']:<14} {cols:>3} columns  "
            f"{ds['title']}"
        )
    if not found:
        print("no datasets match", file=sys.stderr)
    return 0


def _pull(args: argparse.Namespace) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    split = lambda t: [x.strip() for x in t.split(",") if x.strip()] if t else None  # noqa: E731
    with _client(args, progress=not args.no_progress) as client:
        table = client.dataset(args.dataset).to_arrow(
            split(args.columns),
            args.filter,
            purpose=args.purpose,
            order_by=split(args.order_by) or (),
            limit=args.limit,
        )
    out: Path = args.output
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        pq.write_table(table, out)
    elif suffix == ".csv":
        pacsv.write_csv(table, out)
    elif suffix in (".arrow", ".feather", ".arrows"):
        feather.write_feather(table, out)
    elif suffix in (".json", ".jsonl"):
        table.to_pandas().to_json(out, orient="records", lines=suffix == ".jsonl")
    else:
        raise SystemExit(f"matgate: unknown output format {suffix!r}")
    manifest = json.loads(table.schema.metadata[b"matgate.manifest"])
    print(
        f"{manifest['rows']} rows -> {out}  "
        f"(manifest {manifest['id']}, licence {manifest['licence']})"
    )
    for ob in manifest.get("obligations", []):
        print(f"  obligation: {ob['kind']}: {ob['detail']}")
    return 0
