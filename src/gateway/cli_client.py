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
    catalog.add_argument(
        "--federated", action="store_true", help="search every node of the federation"
    )
    catalog.add_argument("--json", action="store_true", help="print JSON (for scripts)")
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
    pull.add_argument("--limit", type=int, default=None, help="at most this many rows")
    pull.add_argument("--no-progress", action="store_true", help="no progress bar")
    _client_args(pull)
    pull.set_defaults(handler=_pull)

    train = sub.add_parser(
        "train",
        help="train on a node (compute-to-data)",
        description="Train a forward model where the rows live; only the model comes back.",
    )
    train.add_argument("dataset", help="institution/name")
    train.add_argument("--target", required=True, help="the property column to predict")
    train.add_argument("--purpose", default="ml-training", help="declared purpose")
    train.add_argument("--estimator", default="random_forest", help="e.g. random_forest")
    train.add_argument("--cv", type=int, default=5, help="cross-validation folds")
    train.add_argument("--filter", default=None, help="rows to train on (filter language)")
    train.add_argument("-o", "--output", type=Path, default=None, help="write the model (skops)")
    train.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the job")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print the job as JSON")
    _client_args(train)
    train.set_defaults(handler=_train)

    add_policy_commands(sub)
    add_audit_commands(sub)


def _train(args: argparse.Namespace) -> int:
    from gateway.cli_output import print_table, wait_for_job

    body: dict[str, Any] = {
        "target": args.target,
        "purpose": args.purpose,
        "estimator": args.estimator,
        "cv": args.cv,
    }
    if args.filter:
        body["filter"] = args.filter
    with _client(args) as client:
        job = client.post(f"/datasets/{args.dataset}/train", body)
        job = wait_for_job(
            lambda: client.get(f"/jobs/{job['id']}"),
            job,
            timeout=args.timeout,
            enabled=not args.no_progress,
        )
        if job["status"] == "done" and args.output:
            args.output.write_bytes(client._download(f"/jobs/{job['id']}/model"))
    if args.json:
        _print(job)
    else:
        result = job.get("result") or {}
        rows = [("job", job["id"]), ("status", job["status"])]
        rows += [(k, v) for k, v in result.items() if isinstance(v, str | int | float)]
        metrics = (result.get("model") or {}).get("metrics")
        if isinstance(metrics, dict):
            rows += [(k, v) for k, v in metrics.items() if isinstance(v, str | int | float)]
        if args.output and job["status"] == "done":
            rows.append(("model", str(args.output)))
        print_table(rows, ("", args.dataset))
    if job["status"] != "done":
        error = job.get("error") or {}
        print(f"matgate: job {job['status']}: {error.get('detail', '')}", file=sys.stderr)
        return 1
    return 0


def add_policy_commands(sub: Any) -> None:
    """Register ``matgate policy`` and its subcommands."""
    policy = sub.add_parser(
        "policy",
        help="read and change access policies",
        description="Stewards: list, add, remove and dry-run policy lines.",
    )
    psub = policy.add_subparsers(title="policy commands", metavar="ACTION")

    show = psub.add_parser("list", help="a domain's lines", description="List a domain's policy.")
    show.add_argument("domain", help="the institution whose policy to list")
    show.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    _client_args(show)
    show.set_defaults(handler=_policy_list)

    for name, verb in (("add", "add"), ("remove", "remove"), ("dry-run", "add")):
        p = psub.add_parser(
            name,
            help=f"{name} lines from a file",
            description=f"{name.capitalize()} the policy lines in FILE (JSON or TOML).",
        )
        p.add_argument("domain", help="the institution whose policy to change")
        p.add_argument("file", type=Path, help="JSON (list of lines) or TOML ([[lines]])")
        if name == "dry-run":
            p.add_argument("--remove", action="store_true", help="preview removing them instead")
        p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        _client_args(p)
        p.set_defaults(handler=_edit, verb=verb, dry=name == "dry-run")

    explain = psub.add_parser(
        "explain",
        help="why a decision is what it is",
        description="Explain a decision for yourself or (stewards) someone else.",
    )
    explain.add_argument("dataset", help="institution/name")
    explain.add_argument(
        "--action", default="read", help="discover, read, train, manage or audit (default read)"
    )
    explain.add_argument("--purpose", required=True, help="declared purpose, e.g. research")
    explain.add_argument("--columns", default=None, help="comma-separated")
    explain.add_argument(
        "--as", dest="as_user", default=None, help="their principal id, namespace:subject"
    )
    explain.add_argument(
        "--institution", default=None, help="their institution (default: the namespace)"
    )
    explain.add_argument("--roles", default="", help="their roles, comma-separated")
    explain.add_argument("--json", action="store_true", help="print JSON (for scripts)")
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
    with _client(args) as client:
        found = client.post(path, body)
    if args.json:
        return _print(found)
    from gateway.cli_output import print_table

    if not args.dry:
        print(f"{found['domain']}: policy version {found['version']}")
        return 0
    rows = []
    for impact in found.get("impacts", []):
        what = [impact["access"]] if "access" in impact else []
        for key in ("columns_gained", "columns_lost"):
            if impact.get(key):
                what.append(f"{key.replace('_', ' ')}: {', '.join(impact[key])}")
        for key in ("masks", "rows"):
            if key in impact:
                what.append(f"{key}: {impact[key]['before']} -> {impact[key]['after']}")
        keys = ("principal", "dataset", "action", "purpose")
        rows.append((*[impact.get(k) for k in keys], "; ".join(what)))
    title = f"{found['domain']}: what the change would do (now at version {found['version']})"
    return print_table(
        rows,
        ("who", "dataset", "action", "purpose", "change"),
        title=title,
        empty="no decision would change",
    )


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
    with _client(args) as client:
        found = client.post("/explain", body)
    if args.json:
        return _print(found)
    from gateway.cli_output import print_table

    rows = [("allowed", found.get("allowed")), ("policy version", found.get("policy_version"))]
    rows += [("reason", r) for r in found.get("reasons", [])]
    for key in ("columns", "withheld"):
        names = found.get(key) or []
        if names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            rows.append((key, f"{len(names)}: {shown}"))
    rows += [(k, v) for k, v in found.items() if k in ("row_filter", "masks") and v]
    return print_table(rows, ("", found.get("dataset", args.dataset)))


def add_audit_commands(sub: Any) -> None:
    """Register ``matgate audit`` and its subcommands."""
    audit = sub.add_parser(
        "audit",
        help="read and verify the audit log",
        description="Auditors: events, exports and verification of the log.",
    )
    asub = audit.add_subparsers(title="audit commands", metavar="ACTION")

    events = asub.add_parser(
        "events", help="list events", description="List events (auditors), newest first."
    )
    for flag, text in _EVENT_FILTERS.items():
        kind = _time if flag in ("since", "until") else str
        events.add_argument(f"--{flag}", default=None, type=kind, help=text)
    events.add_argument("--limit", type=int, default=100, help="at most this many events")
    events.add_argument(
        "--oldest-first",
        action="store_true",
        help="oldest first, one page at a time (with --cursor)",
    )
    events.add_argument("--cursor", default=None, help="next page (with --oldest-first)")
    events.add_argument("--json", action="store_true", help="print JSON lines (for scripts)")
    _client_args(events)
    events.set_defaults(handler=_events)

    export = asub.add_parser(
        "export",
        help="export the log",
        description="Export events (JSON lines or CSV), or the whole log as a "
        "bundle for offline verification.",
    )
    export.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    export.add_argument(
        "--format",
        choices=("jsonl", "csv", "bundle"),
        default="bundle",
        help="jsonl or csv (events), or bundle (the log and its proofs; default)",
    )
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    report.add_argument(
        "--since", default=None, type=_time, help="from (inclusive): 1h, 7d, 2026-12-01 or ISO"
    )
    report.add_argument(
        "--until", default=None, type=_time, help="until (exclusive): 1h, 7d, 2026-12-01 or ISO"
    )
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


_EVENT_FILTERS = {
    "since": "from (inclusive): an age (30m, 1h, 7d), a date (2026-12-01) or an ISO time",
    "until": "until (exclusive): an age, a date or an ISO time",
    "principal": "who acted (subject@institution)",
    "institution": "the acting principal's institution",
    "dataset": "institution/name",
    "action": "discover, read, train, manage or audit",
    "decision": "allow or deny",
    "purpose": "declared purpose",
    "name": "event name, e.g. decision, slice.completed",
}


def _time(text: str) -> str:
    """argparse type: a relative, plain-date or ISO time as UTC ISO text."""
    from gateway.cli_output import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _events(args: argparse.Namespace) -> int:
    from gateway.cli_output import newest_events

    params = {k: getattr(args, k) for k in _EVENT_FILTERS if getattr(args, k) is not None}
    with _client(args) as client:
        if args.oldest_first:
            page = client.get(
                "/audit/events", params={**params, "limit": args.limit, "cursor": args.cursor}
            )
            found, more = page["events"], page.get("next_cursor")
        else:
            found, more = (
                newest_events(lambda p: client.get("/audit/events", params=p), params, args.limit),
                None,
            )
    if args.json:
        for event in found:
            print(json.dumps(event, default=str))
    else:
        from gateway.cli_output import print_table

        headers = ("time (UTC)", "name", "principal", "dataset", "action", "purpose", "decision")
        rows = [
            [
                str(e.get("time", ""))[:19].replace("T", " "),
                *[e.get(h) for h in headers[1:]],
                e.get("request_id"),
            ]
            for e in found
        ]
        print_table(rows, (*headers, "request id"), empty="no events match")
    if more:
        print(f"# more: --oldest-first --cursor {more}", file=sys.stderr)
    return 0


def _download(
    args: argparse.Namespace, path: str, params: dict[str, Any], out: Path, bar: bool = False
) -> None:
    from gateway.cli_output import progress

    with _client(args) as client, client._http.stream("GET", path, params=params) as response:
        if response.status_code >= 400:
            response.read()
            from gateway.client import _error

            raise _error(response)
        size = response.headers.get("content-length")
        total = int(size) if size and size.isdigit() else None
        with out.open("wb") as fh, progress(out.name, total, enabled=bar) as advance:
            for chunk in response.iter_bytes():
                fh.write(chunk)
                advance(len(chunk))


def _export(args: argparse.Namespace) -> int:
    bar = not args.no_progress
    if args.format == "bundle":
        _download(args, "/audit/bundle", {}, args.output, bar)
    else:
        _download(args, "/audit/export", {"format": args.format}, args.output, bar)
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
            federated=args.federated,
        )
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    from gateway.cli_output import print_table

    rows = [(d["id"], d["license"], len(d["columns"]), d["title"]) for d in found]
    print_table(rows, ("id", "licence", "columns", "title"), empty="no datasets match")
    for site, status in (getattr(found, "sites", None) or {}).items():
        if status.get("status") != "ok":
            detail = status.get("detail") or status.get("status")
            print(f"matgate: {site}: {detail} (its datasets are missing)", file=sys.stderr)
    return 0


def _policy_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.get(f"/policies/{args.domain}")
    if args.json:
        return _print(found)
    from gateway.cli_output import print_table

    rows = []
    for line in found.get("lines", []):
        who = line.get("role") or line.get("user") or line.get("institution")
        extra = [
            f"{k}={', '.join(v) if isinstance(v, list) else v}"
            for k in ("keep", "withhold", "mask", "rows", "agreement", "embargo")
            if (v := line.get(k)) and not (k == "mask" and v == "drop")
        ]
        rows.append(
            (
                line.get("effect") or "allow",
                who,
                line.get("dataset") or "*",
                line.get("action"),
                line.get("purpose") or "*",
                "  ".join(extra),
            )
        )
    title = f"{found.get('domain', args.domain)}, policy version {found.get('version', '?')}"
    return print_table(
        rows, ("effect", "who", "dataset", "action", "purpose", "conditions"), title=title
    )


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
