# ruff: noqa: E402  (the path fix below must run before the package imports)
"""Console benchmark: how long the console's pages take to render on the demo node.

A demo node runs in process (``TestClient``: no network, so the time is the page's own: session
check, token validation, the service calls and the template). Each page is fetched ``--repeat``
times, interleaved round by round with the baseline, ``GET /catalog`` (the same search as JSON
from the API), so that drift hits both alike. Prints each page's median in milliseconds and its
ratio to the baseline's median. Target: every page's median below 200 ms.

Run: ``.venv/bin/python bench/console.py [--repeat 30]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a script named audit.py: keep the folder off the path so "audit" is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import re
import statistics
import tempfile
import time

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.console.web import ConsoleSettings
from gateway.demo import PERSONAS, prepare
from gateway.settings import Settings

NI = "aurora/ni-superalloys"
PAGES = {
    "catalog": ("ml-user", "/console/catalog"),
    "dataset": ("ml-user", f"/console/datasets/{NI}"),
    "policy": ("steward", "/console/policy"),
    "matrix": ("steward", f"/console/matrix/{NI}"),
    "audit log": ("auditor", "/console/audit"),
    "event + proof": ("auditor", "/console/audit/1"),
    "lineage": ("auditor", f"/console/lineage?dataset={NI}"),
    "my pulls": ("ml-user", "/console/pulls"),
    "my jobs": ("ml-user", "/console/jobs"),
    "history": ("steward", "/console/policy/history"),
    "agreements": ("steward", "/console/agreements"),
    "register form": ("steward", "/console/register?store=lab&table=ni_superalloys"),
    "export (csv)": ("auditor", "/console/audit/export?format=csv"),
}


def _client(app: object, persona: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")  # type: ignore[arg-type]
    page = client.get("/console/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    client.post("/console/signin/demo", data={"persona": persona, "csrf": csrf.group(1)})
    return client


def _bearer(app: object, name: str) -> dict[str, str]:
    persona = next(p for p in PERSONAS if p.name == name)
    token = app.state.node.issuer.mint(  # type: ignore[attr-defined]
        persona.subject, roles=persona.roles, institution=persona.institution
    )
    return {"Authorization": f"Bearer {token}"}


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plan = prepare(Path(tmp), 0)
        home = plan["home"]
        settings = Settings(
            config=home / "node.toml",
            data_dir=home / "node",
            public_url=plan["url"],
            log_json=False,
            log_level="WARNING",
        )
        app = create_app(settings)
        app.state.console_settings = ConsoleSettings(demo_signin=True)
        with TestClient(app) as api:
            bearer = _bearer(app, "ml-user")
            pulled = api.post(f"/datasets/{NI}/slice", json={"purpose": "research", "limit": 5},
                              headers=bearer)  # fmt: skip
            assert pulled.status_code == 200, pulled.text  # events for the audit pages
            steward = _bearer(app, "steward")
            for effect in ("add", "remove"):  # two versions for the history page
                line = {"role": "partner", "domain": "aurora", "dataset": "ni-superalloys",
                        "action": "read", "purpose": "research"}  # fmt: skip
                changed = api.post("/policies/aurora", json={effect: [line]}, headers=steward)
                assert changed.status_code == 200, changed.text
            accepted = api.post("/agreements/aurora-steels-terms/accept", headers=bearer)
            assert accepted.status_code == 200, accepted.text
            clients = {p: _client(app, p) for p in ("ml-user", "steward", "auditor")}
            times: dict[str, list[float]] = {name: [] for name in ["baseline", *PAGES]}
            for _ in range(args.repeat):
                start = time.perf_counter()
                assert api.get("/catalog", headers=bearer).status_code == 200
                times["baseline"].append(time.perf_counter() - start)
                for name, (who, url) in PAGES.items():
                    start = time.perf_counter()
                    answer = clients[who].get(url)
                    times[name].append(time.perf_counter() - start)
                    assert answer.status_code == 200, (name, answer.status_code)
                    assert answer.url.path == url.partition("?")[0], (name, answer.url)
    base = statistics.median(times["baseline"])
    print(f"{'page':<16}{'median ms':>10}{'x API /catalog':>16}")
    worst = 0.0
    for name, values in times.items():
        median = statistics.median(values)
        if name != "baseline":
            worst = max(worst, median)
        print(f"{name:<16}{median * 1000:>10.1f}{median / base:>16.2f}")
    print(f"slowest page median {worst * 1000:.1f} ms (target < 200 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
