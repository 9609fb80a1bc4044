"""The OPTIMADE face: the official validator against a node on loopback, and what each caller sees.

Aurora maps its public band gaps (``expt-gap``) and its governed superalloys (``ni-superalloys``,
named by ``record_id``) to structures. Anonymous callers get what ``public`` may read; the partner
gets the superalloys as a slice would give them: the personal column hashed, the confidential one
absent, embargoed rows left out.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from faces_support import faces_node
from gateway_support import LiveServer, persona_tokens

from gateway.faces.optimade.entries import composition

GAPS, NI = "expt-gap", "ni-superalloys"
MAPPINGS = {
    "structures": [
        {"dataset": GAPS, "formula": "formula"},
        {"dataset": NI, "formula": "alloy", "id_column": "record_id"},
    ]
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A node with both datasets mapped, served on loopback, with its personas' tokens."""
    app, plan = faces_node(tmp_path_factory.mktemp("optimade"), optimade=MAPPINGS)
    server = LiveServer(app, plan["port"]).start()
    tokens = persona_tokens(app.state.node.issuer)
    tokens["stranger"] = app.state.node.issuer.mint("sam", institution="cygnus")
    yield {"url": server.url, "tokens": tokens}
    server.stop()


def _headers(node: dict[str, Any], who: str) -> dict[str, str]:
    return {} if who == "anonymous" else {"Authorization": f"Bearer {node['tokens'][who]}"}


def _get(node: dict[str, Any], who: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{node['url']}/optimade{path}", params=params, headers=_headers(node, who))


def _all(node: dict[str, Any], who: str, **params: Any) -> list[dict[str, Any]]:
    """Every entry matching, following the next links."""
    r = _get(node, who, "/structures", page_limit=500, **params)
    out: list[dict[str, Any]] = []
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["data"]
        nxt = body["links"]["next"]
        if not nxt:
            return out
        r = httpx.get(nxt, headers=_headers(node, who))


def _native(node: dict[str, Any], who: str, dataset: str, **params: Any) -> Any:
    r = httpx.get(
        f"{node['url']}/datasets/aurora/{dataset}/slice",
        params={"purpose": "research", "format": "parquet", **params},
        headers=_headers(node, who),
    )
    assert r.status_code == 200, r.text
    return pq.read_table(io.BytesIO(r.content))


def _validator() -> str:
    found = shutil.which("optimade-validator") or str(
        Path(sys.executable).with_name("optimade-validator")
    )
    assert Path(found).exists(), (
        "optimade-validator (optimade[server], a dev dependency) is missing"
    )
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("who", ["anonymous", "partner"])
def test_the_official_validator_passes(node, who):
    command = [_validator(), f"{node['url']}/optimade", "--json"]
    if who != "anonymous":
        command += ["--headers", json.dumps(_headers(node, who))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["failure_count"] == 0, report.get("failure_messages")
    assert report["success_count"] >= 30
    assert report["optional_failure_count"] == 0, report.get("optional_failure_messages")


@pytest.mark.parametrize(
    ("who", "gaps", "superalloys"),
    [
        ("anonymous", True, False),
        ("stranger", True, False),
        ("partner", True, True),
        ("ml-user", True, True),
    ],
)
def test_each_caller_sees_the_datasets_it_may_read(node, who, gaps, superalloys):
    for dataset, expected in ((GAPS, gaps), (NI, superalloys)):
        r = _get(node, who, "/structures", filter=f'id STARTS "{dataset}:"', page_limit=1)
        assert r.status_code == 200, r.text
        assert (r.json()["meta"]["data_returned"] > 0) is expected, (who, dataset)


@pytest.mark.parametrize(
    ("who", "sponsor", "operator"), [("partner", False, "hashed"), ("ml-user", True, "clear")]
)
def test_governed_entries_are_the_callers_slice(node, who, sponsor, operator):
    native = _native(node, who, NI).to_pydict()
    entries = _all(node, who, filter=f'id STARTS "{NI}:"')
    by_id = {e["id"]: e["attributes"] for e in entries}
    assert set(by_id) == {f"{NI}:{rid}" for rid in native["record_id"]}
    assert len(by_id) == len(entries)
    for rid, op in zip(native["record_id"], native["operator"], strict=True):
        assert by_id[f"{NI}:{rid}"]["_matgate_operator"] == op
    assert all(("_matgate_sponsor" in a) is sponsor for a in by_id.values())
    info = _get(node, who, "/info/structures").json()["data"]["properties"]
    assert ("_matgate_sponsor" in info) is sponsor
    clear = dict(
        zip(
            *_native(node, "ml-user", NI).select(["record_id", "operator"]).to_pydict().values(),
            strict=True,
        )
    )
    shown = [(by_id[f"{NI}:{rid}"]["_matgate_operator"], clear[rid]) for rid in native["record_id"]]
    assert all((a == b) is (operator == "clear") for a, b in shown if b is not None)


def test_embargoed_rows_are_absent_for_the_partner(node):
    member = _native(node, "ml-user", NI).to_pydict()
    partner = set(_native(node, "partner", NI).column("record_id").to_pylist())
    hidden = [rid for rid in member["record_id"] if rid not in partner]
    assert hidden, "the demo hides some superalloy rows from partners"
    one = f"{NI}:{hidden[0]}"
    assert _get(node, "ml-user", f"/structures/{one}").status_code == 200
    assert _get(node, "partner", f"/structures/{one}").status_code == 404
    assert _get(node, "anonymous", f"/structures/{one}").status_code == 404


def test_a_filter_on_a_provider_field_is_pushed_into_the_slice(node):
    text = "_matgate_target > 3 AND _matgate_target < 3.5"
    entries = _all(node, "anonymous", filter=text)
    native = _native(node, "ml-user", GAPS, filter="target > 3 AND target < 3.5")
    assert {e["attributes"]["chemical_formula_descriptive"] for e in entries} == set(
        native.column("formula").to_pylist()
    )
    slices = httpx.get(
        f"{node['url']}/audit/events",
        params={"principal": "anonymous", "dataset": f"aurora/{GAPS}", "name": "slice"},
        headers=_headers(node, "auditor"),
    ).json()["events"]
    assert any(e["filter"] == "target > 3 AND target < 3.5" for e in slices), slices[-3:]


@pytest.mark.parametrize(
    "text",
    [
        'elements HAS ALL "Ni", "Al"',
        'elements HAS ANY "Cs", "Rb"',
        "nelements = 2",
        'chemical_formula_reduced = "AgCl"',
        'chemical_formula_anonymous = "A2B"',
    ],
)
def test_formula_properties_are_filtered_exactly(node, text):
    formulas = _native(node, "anonymous", GAPS).column("formula").to_pylist()
    expected = {f for f in formulas if _matches(text, composition(f))}
    found = {
        e["attributes"]["chemical_formula_descriptive"]
        for e in _all(node, "anonymous", filter=text)
    }
    assert found == expected and expected


def _matches(text: str, c: dict[str, Any]) -> bool:
    elements = set(c["elements"] or ())
    return {
        'elements HAS ALL "Ni", "Al"': {"Ni", "Al"} <= elements,
        'elements HAS ANY "Cs", "Rb"': bool({"Cs", "Rb"} & elements),
        "nelements = 2": c["nelements"] == 2,
        'chemical_formula_reduced = "AgCl"': c["chemical_formula_reduced"] == "AgCl",
        'chemical_formula_anonymous = "A2B"': c["chemical_formula_anonymous"] == "A2B",
    }[text]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/structures", {"filter": "nelements >"}, 400),
        ("/structures", {"filter": "elements HAS ALL"}, 400),
        ("/structures", {"page_limit": "-1"}, 400),
        ("/structures", {"page_limit": "ten"}, 400),
        ("/structures", {"page_limit": "100000"}, 403),
        ("/structures", {"response_format": "xml"}, 400),
        ("/structures", {"sort": "no_such_property"}, 400),
        ("/structures/expt-gap:NoSuchFormula", {}, 404),
        ("/info/references", {}, 404),
        ("/v2/info", {}, 553),
    ],
)
def test_bad_requests_are_optimade_errors(node, path, params, status):
    r = _get(node, "anonymous", path, **params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/vnd.api+json"
    body = r.json()
    assert body["errors"][0]["status"] == str(status) and body["meta"]["api_version"]


def test_versions_and_the_versioned_base(node):
    r = httpx.get(f"{node['url']}/optimade/versions")
    assert r.text.splitlines() == ["version", "1"] and r.headers["content-type"].startswith(
        "text/csv"
    )
    plain = _get(node, "anonymous", "/structures", page_limit=3).json()["data"]
    versioned = httpx.get(f"{node['url']}/optimade/v1/structures", params={"page_limit": 3}).json()
    assert [e["id"] for e in plain] == [e["id"] for e in versioned["data"]]


def test_a_bad_token_is_refused_not_anonymous(node):
    r = httpx.get(f"{node['url']}/optimade/structures", headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ('chemical_formula_descriptive CONTAINS "(AuS)2"', "Ag(AuS)2"),
        ('chemical_formula_descriptive STARTS WITH "Ag(AuS"', "Ag(AuS)2"),
        ('chemical_formula_descriptive ENDS "(W3Br7)2"', "Ag(W3Br7)2"),
        ('id CONTAINS "gap:Ag(AuS)2"', "Ag(AuS)2"),
    ],
)
def test_string_operands_match_literally(node, text, formula):
    found = {
        e["attributes"]["chemical_formula_descriptive"]
        for e in _all(node, "anonymous", filter=text)
    }
    assert formula in found
    assert all(text.split('"')[1] in (f if "id" not in text else f"expt-gap:{f}") for f in found)
