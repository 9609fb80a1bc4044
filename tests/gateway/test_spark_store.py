"""A Parquet table in a Spark catalog behind a node, under the node's policies: the partner's
row rule and masks run in Spark, the member reads every row, and each pull is audited."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tomli_w
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings

from connectors.spark import SparkConnector
from gateway.app import create_app

# The first test to ask for Spark starts the server: a cold JVM on a busy machine is slow.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

ROWS = 200
TABLE = "lake.gw_alloys"


def alloys() -> pa.Table:
    """Alloys with an operator (personal), a strength and a year."""
    return pa.table(
        {
            "alloy": [f"A-{n:03d}" for n in range(ROWS)],
            "operator": [None if n % 13 == 0 else f"op{n % 7}" for n in range(ROWS)],
            "strength": [float(n % 50) * 10.5 for n in range(ROWS)],
            "year": [2010 + n % 15 for n in range(ROWS)],
        }
    )


def config(url: str, public_url: str) -> dict[str, Any]:
    """A node of institution ``lake`` with one Spark store and one dataset in it."""
    columns = [
        {"name": "alloy", "type": "string", "pspp": "identifier"},
        {"name": "operator", "type": "string", "pspp": "processing", "sensitivity": "personal"},
        {"name": "strength", "type": "float", "unit": "MPa", "pspp": "property"},
        {"name": "year", "type": "integer", "pspp": "condition"},
    ]
    return {
        "node": {"institution": "lake", "public_url": public_url},
        "stores": {"warehouse": {"kind": "spark", "url": url, "schemas": ["lake"]}},
        "datasets": [
            {
                "name": "alloys",
                "title": "Alloys in the lakehouse",
                "license": "CC-BY-4.0",
                "location": {"store": "warehouse", "table": TABLE},
                "columns": columns,
            }
        ],
        "policy": {
            "roles": ["member", "partner", "auditor"],
            "assignments": [{"institution": "partnerlab", "role": "partner", "domain": "lake"}],
            "lines": [
                {"role": "auditor", "domain": "lake", "action": "audit"},
                {"role": "member", "domain": "lake", "action": "discover"},
                {"role": "member", "domain": "lake", "action": "read"},
                {"role": "partner", "domain": "lake", "action": "discover"},
                {
                    "role": "partner",
                    "domain": "lake",
                    "dataset": "alloys",
                    "action": "read",
                    "purpose": "research",
                    "withhold": ["sensitivity:personal"],
                    "mask": "hash",
                    "rows": "year >= 2020",
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def node(spark_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The node, with the table registered in Spark's catalog first."""
    home = tmp_path_factory.mktemp("spark-node")
    pq.write_table(alloys(), home / "alloys.parquet")
    with SparkConnector(spark_url) as spark:
        session = spark.session()
        session.sql("CREATE DATABASE IF NOT EXISTS lake")
        session.sql(f"DROP TABLE IF EXISTS {TABLE}")
        location = str(home / "alloys.parquet").replace("'", "")
        session.sql(f"CREATE TABLE {TABLE} USING parquet LOCATION '{location}'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (home / "node.toml").write_text(tomli_w.dumps(config(spark_url, url)))
    app = create_app(node_settings({"home": home, "port": port, "url": url}))
    with TestClient(app) as client:
        yield client, app


def pull(node: Any, institution: str, **body: Any) -> pa.Table:
    """A governed slice as Arrow, for a member of ``institution``."""
    client, app = node
    token = app.state.node.issuer.mint("someone", roles=["member"], institution=institution)
    payload = {"purpose": "research", "format": "arrow", **body}
    r = client.post(
        "/datasets/lake/alloys/slice", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(r.content).read_all()


def test_member_reads_every_row(node: Any) -> None:
    got = pull(node, "lake", order_by=["alloy"])
    assert got.num_rows == ROWS
    assert got.column("operator").to_pylist() == alloys().column("operator").to_pylist()


def test_partner_row_rule_and_mask_run_in_spark(node: Any) -> None:
    got = pull(node, "partnerlab", order_by=["alloy"], filter="strength > 100")
    want = [r for r in alloys().to_pylist() if r["year"] >= 2020 and r["strength"] > 100]
    assert got.column("alloy").to_pylist() == [r["alloy"] for r in want]
    assert got.schema.field("operator").type == pa.string()
    _, app = node
    key: bytes = app.state.node.mask.key
    for digest, row in zip(got.column("operator").to_pylist(), want, strict=True):
        if row["operator"] is None:
            assert digest is None
        else:
            assert digest == hmac.new(key, row["operator"].encode(), hashlib.sha256).hexdigest()


def test_partner_cannot_widen_the_rows(node: Any) -> None:
    got = pull(node, "partnerlab", filter="year < 2020 OR year >= 2020")
    assert set(got.column("year").to_pylist()) <= set(range(2020, 2025))
    assert got.num_rows == sum(1 for r in alloys().to_pylist() if r["year"] >= 2020)


def test_pulls_are_audited(node: Any) -> None:
    client, app = node
    token = app.state.node.issuer.mint("mia", roles=["member"], institution="lake")
    body = {"purpose": "research", "columns": ["alloy"], "limit": 3}
    r = client.post(
        "/datasets/lake/alloys/slice", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    auditor = app.state.node.issuer.mint("ari", roles=["auditor"], institution="lake")
    got = client.get(
        "/audit/events",
        params={"principal": "lake:mia", "limit": 100},
        headers={"Authorization": f"Bearer {auditor}"},
    )
    assert got.status_code == 200, got.text
    mine = [e for e in got.json()["events"] if e["request_id"] == r.headers["matgate-request-id"]]
    assert [e["name"] for e in mine] == ["decision", "slice"]


def test_spark_store_config_is_checked(tmp_path: Path) -> None:
    from gateway.config import StoreConfig

    with pytest.raises(ValueError, match="sc://"):
        StoreConfig(kind="spark", url="http://spark:15002")
    with pytest.raises(ValueError, match="needs 'url'"):
        StoreConfig(kind="spark")
    ok = StoreConfig(kind="spark", url="sc://spark:15002", schemas=("lake",), tables=("lake.a",))
    assert ok.target == "sc://spark:15002"
