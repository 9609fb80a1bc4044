"""A public OPTIMADE provider as a store: pulled and governed like institutional data."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from gateway_support import node_settings

from gateway.app import create_app
from gateway.config import NodeConfig

ROOT = Path(__file__).resolve().parents[2]
DATASET = "aurora/public-gaps"


def _provider_module():
    spec = importlib.util.spec_from_file_location(
        "optimade_provider", ROOT / "tests/connectors/optimade_data/provider.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def node(tmp_path_factory, data_dir) -> Iterator[tuple[TestClient, dict[str, str], object]]:
    provider_module = _provider_module()
    work = tmp_path_factory.mktemp("optimade-node")
    with provider_module.reference_server(data_dir / "expt_gap.csv", work) as provider:
        config = NodeConfig.model_validate(
            {
                "node": {"institution": "aurora"},
                "network": {"allow": ["127.0.0.1"]},  # the reference server is on loopback
                "stores": {"provider": {"kind": "optimade", "url": provider.url}},
                "datasets": [
                    {
                        "name": "public-gaps",
                        "title": "Band gaps from a public OPTIMADE provider",
                        "license": "CC-BY-4.0",
                        "location": {"store": "provider", "table": "structures"},
                        "columns": [
                            {"name": "id", "type": "string", "pspp": "identifier"},
                            {
                                "name": "chemical_formula_reduced",
                                "type": "string",
                                "pspp": "structure",
                            },
                            {"name": "nelements", "type": "integer", "pspp": "structure"},
                            {
                                "name": "_matgate_band_gap",
                                "type": "float",
                                "pspp": "property",
                                "unit": "eV",
                            },
                        ],
                    }
                ],
                "policy": {
                    "roles": ["member", "partner"],
                    "assignments": [
                        {"institution": "borealis", "role": "partner", "domain": "aurora"}
                    ],
                    "lines": [
                        {"role": "member", "domain": "aurora", "action": "discover"},
                        {"role": "member", "domain": "aurora", "action": "read"},
                        {"role": "partner", "domain": "aurora", "action": "discover"},
                        {
                            "role": "partner",
                            "domain": "aurora",
                            "action": "read",
                            "purpose": "research",
                            "rows": "nelements = 2",
                        },
                    ],
                },
            }
        )
        plan = {"home": work, "port": 0, "url": "http://127.0.0.1:1"}
        app = create_app(node_settings(plan, config=None), config)
        issuer = app.state.node.issuer
        tokens = {
            "member": issuer.mint("mia", roles=["member"]),
            "partner": issuer.mint("pablo", institution="borealis"),
        }
        with TestClient(app) as client:
            yield client, {k: f"Bearer {v}" for k, v in tokens.items()}, provider


def _pull(client, token, **body):
    body.setdefault("purpose", "research")
    r = client.post(f"/datasets/{DATASET}/slice", json=body, headers={"Authorization": token})
    return r


def test_filter_is_pushed_to_the_provider_and_rows_match(node):
    client, tokens, provider = node
    r = _pull(client, tokens["member"], filter="nelements = 3 AND _matgate_band_gap > 1.5")
    assert r.status_code == 200, r.text
    got = pa.ipc.open_stream(r.content).read_all().to_pandas()
    frame = provider.frame
    expected = frame[(frame.nelements == 3) & (frame._matgate_band_gap > 1.5)]
    assert sorted(got["id"]) == sorted(expected["id"])


def test_row_rules_and_purposes_apply_to_public_data_too(node):
    client, tokens, provider = node
    got = pa.ipc.open_stream(_pull(client, tokens["partner"]).content).read_all()
    assert set(got.column("nelements").to_pylist()) == {2}
    assert got.num_rows == int((provider.frame.nelements == 2).sum())
    assert _pull(client, tokens["partner"], purpose="commercial").status_code == 403
