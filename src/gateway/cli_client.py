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
        description="Verify an exported bundle FILE, or a node's log (--url: fetched as a "
        "bundle and checked here). Keys come only from what you name: --trust-key (a pinned "
        "fingerprint or C2SP vkey), --trust-jwks, and --witness keys; without one the answer is "
        "'unauthenticated'. Online, the last accepted checkpoint is kept in --state and the "
        "node must prove the log still extends it.",
    )
    verify.add_argument("file", nargs="?", type=Path, default=None, help="an exported bundle")
    _trust_args(verify)
    verify.add_argument(
        "--state",
        type=Path,
        default=None,
        help="file keeping the last accepted checkpoint per log (online; default "
        "~/.local/state/matgate/checkpoints.json)",
    )
    _client_args(verify)
    verify.set_defaults(handler=_verify)

    report = asub.add_parser(
        "report",
        help="where did a dataset go, with proofs",
        description="Every decision, release and relay of a dataset and every model trained "
        "on it, each with an inclusion proof against one witnessed checkpoint.",
    )
    report.add_argument("--dataset", required=True, help="institution/name")
    report.add_argument("--since", default=None, help="ISO time (inclusive)")
    report.add_argument("--until", default=None, help="ISO time (exclusive)")
    report.add_argument("-o", "--output", type=Path, default=None, help="write the report here")
    _client_args(report)
    report.set_defaults(handler=_report)

    check = asub.add_parser(
        "verify-report",
        help="verify a dataset report offline",
        description="Check every proof of a report written by 'matgate audit report'.",
    )
    check.add_argument("file", type=Path, help="the report (JSON)")
    _trust_args(check)
    check.set_defaults(handler=_verify_report)


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="FINGERPRINT",
        help="the node key you trust: its RFC 7638 thumbprint or its C2SP vkey (repeatable; "
        "write --trust-key=FINGERPRINT, a thumbprint may start with '-')",
    )
    p.add_argument(
        "--trust-jwks", "--jwks", type=Path, default=None, help="a JWKS file of keys you trust"
    )
    p.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="VKEY",
        help="a witness key you trust (C2SP vkey; repeatable)",
    )
    p.add_argument(
        "--witnesses", type=int, default=0, help="cosignatures from trusted witnesses required"
    )


def _trust(args: argparse.Namespace, offered: dict[str, Any] | None) -> Any:
    from audit.verify import Trust

    jwks = json.loads(args.trust_jwks.read_text()) if args.trust_jwks else None
    try:
        return Trust.of(
            jwks=jwks,
            pins=args.trust_key,
            offered=offered,
            witnesses=args.witness,
            required=args.witnesses,
        )
    except ValueError as exc:
        raise SystemExit(f"matgate: {exc}") from None


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

    from audit.bundle import read_bundle
    from audit.verify import verify

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "bundle.jsonl"
            _download(args, "/audit/bundle", {}, path)
        with path.open("rb") as fp:
            bundle = read_bundle(fp)
    report = verify(bundle.entries, bundle.checkpoints, _trust(args, bundle.jwks))
    if args.file is None and report.ok:
        # keyed by the URL the auditor chose, never by a name the node writes in the copy
        _check_state(args, str(args.url).rstrip("/"), report)
    out = report.to_dict()
    print(json.dumps(out, indent=2))
    print(out["summary"], file=sys.stderr)
    return 0 if report.ok else 1


def _check_state(args: argparse.Namespace, origin: str, report: Any) -> None:
    """Demand that the node's log extends the checkpoint accepted last time; then remember
    this one. A failure becomes a problem of ``report``."""
    import os

    from audit.verify import consistent_with

    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state"))
    path: Path = args.state or default / "matgate" / "checkpoints.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    previous = state.get(origin)
    current = (report.verified_size, report.root)
    if previous:
        old = (int(previous["size"]), str(previous["root"]))
        proof: list[str] = []
        if 0 < old[0] <= current[0]:
            with _client(args) as client:
                found = client.get(
                    "/audit/proof/consistency", params={"from": old[0], "to": current[0]}
                )
            if found.get("to_root") != current[1] or found.get("from_root") != old[1]:
                found["path"] = []  # roots that are not the ones verified: the proof fails
            proof = list(found.get("path", []))
        problem = consistent_with(old, current, proof) if old[0] else None
        if problem is not None:
            report.problems.append(problem)
            return
    state[origin] = {"size": current[0], "root": current[1], "time": report.checkpoint_time}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def _report(args: argparse.Namespace) -> int:
    params = {k: getattr(args, k) for k in ("dataset", "since", "until") if getattr(args, k)}
    with _client(args) as client:
        found = client.get("/audit/report", params=params)
    text = json.dumps(found, indent=2)
    if args.output:
        args.output.write_text(text)
        print(
            f"wrote {args.output}: {len(found['entries'])} entries, {len(found['models'])} "
            f"models, checkpoint of size {found['checkpoint']['size']}",
            file=sys.stderr,
        )
    else:
        print(text)
    return 0


def _verify_report(args: argparse.Namespace) -> int:
    from audit.report import verify_report

    data = json.loads(args.file.read_text())
    try:
        result = verify_report(data, _trust(args, data.get("jwks")))
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"matgate: {args.file}: not a dataset report ({exc})") from None
    out = result.to_dict()
    print(json.dumps(out, indent=2))
    print(out["summary"], file=sys.stderr)
    return 0 if result.ok else 1


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

    split = lambda t: [x.strip() for x in t.split(",") if x.strip()] if t else None  # noqa: E731
    out: Path = args.output
    as_sent = {".parquet": "parquet", ".arrows": "arrow"}.get(out.suffix.lower())
    if as_sent is not None:
        # Saved as the node wrote it, sealed with its signed manifest (``matgate verify``).
        with _client(args, progress=not args.no_progress) as client:
            sealed = client.dataset(args.dataset).download(
                out,
                split(args.columns),
                args.filter,
                purpose=args.purpose,
                format=as_sent,
                order_by=split(args.order_by) or (),
                limit=args.limit,
            )
        return _pulled(sealed, out)
    with _client(args, progress=not args.no_progress) as client:
        table = client.dataset(args.dataset).to_arrow(
            split(args.columns),
            args.filter,
            purpose=args.purpose,
            order_by=split(args.order_by) or (),
            limit=args.limit,
        )
    suffix = out.suffix.lower()
    if suffix == ".csv":
        pacsv.write_csv(table, out)
    elif suffix in (".arrow", ".feather", ".arrows"):
        feather.write_feather(table, out)
    elif suffix in (".json", ".jsonl"):
        table.to_pandas().to_json(out, orient="records", lines=suffix == ".jsonl")
    else:
        raise SystemExit(f"matgate: unknown output format {suffix!r}")
    return _pulled(json.loads(table.schema.metadata[b"matgate.manifest"]), out)


def _pulled(manifest: dict[str, Any], out: Path) -> int:
    print(
        f"{manifest['rows']} rows -> {out}  "
        f"(manifest {manifest['id']}, licence {manifest['licence']})"
    )
    for ob in manifest.get("obligations", []):
        print(f"  obligation: {ob['kind']}: {ob['detail']}")
    return 0
