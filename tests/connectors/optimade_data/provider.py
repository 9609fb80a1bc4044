"""The OPTIMADE reference server on loopback, serving ``expt_gap.csv`` as structures.

Each formula of the CSV becomes a structure: ``chemical_formula_descriptive`` is the formula as
written, ``chemical_formula_reduced``/``elements``/``elements_ratios``/``nelements``/``nsites``
come from its integer-scaled composition, ``last_modified`` is one hour per row after 2020-01-01,
and the band gap is the provider property ``_matgate_band_gap`` (eV) with ``_matgate_metallic``
beside it. Every 50th row (from row 7) has no band gap, so unknown values are exercised.

The server validates its licence URL with a HEAD request at start-up, and reaches for the
internet for nothing else once ``insert_test_data`` is off; proxies point at a closed port so
that any such attempt fails fast, and a small loopback server answers for the licence page.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd

PREFIX = "matgate"
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\()|(\))|(\d+(?:\.\d+)?)")
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def composition(formula: str) -> dict[str, Fraction]:
    """Element amounts of a formula such as ``Ag0.5Ge1Pb1.75S4`` or ``Ag(W3Br7)2``."""
    tokens = []
    pos = 0
    while pos < len(formula):
        found = _TOKEN.match(formula, pos)
        if found is None:
            raise ValueError(f"cannot read {formula!r} at {pos}")
        tokens.append(found)
        pos = found.end()
    stack: list[dict[str, Fraction]] = [{}]
    for i, token in enumerate(tokens):
        after = tokens[i + 1].group(4) if i + 1 < len(tokens) else None
        amount = Fraction(after) if after else Fraction(1)
        if token.group(1):
            stack[-1][token.group(1)] = stack[-1].get(token.group(1), Fraction(0)) + amount
        elif token.group(2):
            stack.append({})
        elif token.group(3):
            inner = stack.pop()
            for element, n in inner.items():
                stack[-1][element] = stack[-1].get(element, Fraction(0)) + n * amount
    return stack[0]


def structure(index: int, formula: str, gap: float | None) -> dict[str, object]:
    """One OPTIMADE structure resource (JSON lines form) for a CSV row."""
    amounts = composition(formula)
    scale = math.lcm(*(a.denominator for a in amounts.values()))
    counts = {e: int(a * scale) for e, a in amounts.items()}
    common = math.gcd(*counts.values())
    counts = {e: n // common for e, n in counts.items()}
    elements = sorted(counts)
    total = sum(counts.values())
    moment = _EPOCH + dt.timedelta(hours=index)
    attributes = {
        "chemical_formula_descriptive": formula,
        "chemical_formula_reduced": "".join(
            f"{e}{counts[e] if counts[e] != 1 else ''}" for e in elements
        ),
        "elements": elements,
        "nelements": len(elements),
        "elements_ratios": [counts[e] / total for e in elements],
        "nsites": total,
        "structure_features": [],
        "last_modified": {"$date": moment.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "band_gap": gap,
        "metallic": None if gap is None else gap == 0,
    }
    return {"type": "structures", "id": f"mg-{index:05d}", "attributes": attributes}


def write_jsonl(csv_path: Path, out: Path, step: int) -> pd.DataFrame:
    """Write every ``step``-th CSV row as OPTIMADE JSON lines; return those rows as columns."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::step]
    records = []
    with out.open("w", encoding="utf-8") as sink:
        sink.write(json.dumps({"x-optimade": {"meta": {"api_version": "1.2.0"}}}) + "\n")
        for index, row in enumerate(rows):
            gap = None if index % 50 == 7 else float(row["target"])
            entry = structure(index, row["formula"], gap)
            sink.write(json.dumps(entry) + "\n")
            attrs = entry["attributes"]
            assert isinstance(attrs, dict)
            records.append(
                {
                    "id": entry["id"],
                    "chemical_formula_descriptive": attrs["chemical_formula_descriptive"],
                    "chemical_formula_reduced": attrs["chemical_formula_reduced"],
                    "elements": json.dumps(attrs["elements"], separators=(",", ":")),
                    "nelements": attrs["nelements"],
                    "nsites": attrs["nsites"],
                    "last_modified": _EPOCH + dt.timedelta(hours=index),
                    f"_{PREFIX}_band_gap": gap,
                    f"_{PREFIX}_metallic": attrs["metallic"],
                }
            )
    frame = pd.DataFrame(records)
    return frame.astype(
        {
            "id": "string",
            "chemical_formula_descriptive": "string",
            "chemical_formula_reduced": "string",
            "elements": "string",
            "nelements": "Int64",
            "nsites": "Int64",
            f"_{PREFIX}_band_gap": "Float64",
            f"_{PREFIX}_metallic": "boolean",
        }
    )


def free_port() -> int:
    """A loopback port nobody listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LICENCE_TEXT = b"Creative Commons Attribution 4.0 International (test copy)\n"


class _Pages(BaseHTTPRequestHandler):
    """The licence page, plus answers no OPTIMADE provider should give."""

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        kind, body = "text/plain", LICENCE_TEXT
        for prefix, document in _HOSTILE.items():
            if self.path.startswith(prefix):
                kind, body = "application/json", json.dumps(document).encode()
                break
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # keep test output clean


# A provider that answers its first page with a next link into the cloud metadata service.
_HOSTILE: dict[str, object] = {
    "/hostile/v1/info/structures": {
        "data": {"id": "structures", "properties": {"id": {"type": "string", "sortable": True}}}
    },
    "/hostile/v1/info": {
        "data": {
            "id": "/",
            "type": "info",
            "attributes": {
                "api_version": "1.2.0",
                "entry_types_by_format": {"json": ["structures"]},
            },
        },
        "meta": {},
    },
    "/hostile/v1/structures": {
        "data": [{"id": "x-1", "type": "structures", "attributes": {}}],
        "meta": {"data_returned": 2, "more_data_available": True},
        "links": {"next": "http://169.254.169.254/latest/meta-data/"},
    },
}


@contextmanager
def pages_server() -> Iterator[str]:
    """A loopback HTTP server for the licence page and a misbehaving provider; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Provider:
    """A running reference server and the rows it serves."""

    url: str
    frame: pd.DataFrame
    licence_url: str
    pages_url: str


@contextmanager
def reference_server(csv_path: Path, workdir: Path, step: int = 4) -> Iterator[Provider]:
    """Start ``optimade.server.main:app`` under uvicorn on a free loopback port.

    The server scans its whole collection in Python for every page (mongomock), so tests serve
    every ``step``-th row of the CSV to stay quick.
    """
    frame = write_jsonl(csv_path, workdir / "structures.jsonl", step)
    with pages_server() as pages_url:
        licence_url = f"{pages_url}/licences/CC-BY-4.0"
        config = {
            "database_backend": "mongomock",
            "insert_test_data": False,
            "insert_from_jsonl": str(workdir / "structures.jsonl"),
            "log_dir": str(workdir / "logs"),
            "license": licence_url,
            "page_limit": 25,
            "page_limit_max": 500,
            "provider": {
                "prefix": PREFIX,
                "name": "matgate test provider",
                "description": "expt_gap.csv served as OPTIMADE structures",
                "homepage": pages_url,
            },
            "provider_fields": {
                "structures": [
                    {"name": "band_gap", "type": "float", "unit": "eV", "description": "band gap"},
                    {"name": "metallic", "type": "boolean", "description": "zero band gap"},
                ]
            },
        }
        (workdir / "logs").mkdir(exist_ok=True)
        (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        closed = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "OPTIMADE_CONFIG_FILE": str(workdir / "config.json"),
            "HTTPS_PROXY": closed,
            "HTTP_PROXY": closed,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        port = free_port()
        log = (workdir / "server.log").open("wb")
        command = [sys.executable, "-m", "uvicorn", "optimade.server.main:app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, workdir / "server.log")
            yield Provider(url, frame, licence_url, pages_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # Start-up loads the JSON lines into mongomock: seconds on a busy machine.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"OPTIMADE server exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/v1/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"OPTIMADE server did not start: {log.read_text(errors='replace')}")
