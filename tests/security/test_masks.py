"""API3 (broken object property level authorisation): hashed personal columns must not reverse.

A member may read the ``operator`` column only hashed. An attacker who knows every operator's
name (a dictionary) must not be able to tell whose rows are whose; the node's own datasets still
join on the hash, other nodes' do not unless the institutions share a key on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.ipc as ipc
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from security_lab import OPERATORS, bearer, lab_app, lab_config, load_samples, sample_rows

from gateway.cli import main as cli_main
from gateway.config import ConfigError
from gateway.keys import MaskSecret

SHARED = "MATGATE_TEST_SHARED_MASK_KEY"


def pull(app: FastAPI, dataset: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of a slice and its manifest, read as the member would."""
    with TestClient(app) as client:
        r = client.post(
            f"/datasets/lab/{dataset}/slice",
            json={"purpose": "research", "columns": ["sample_id", "operator"]},
            headers=bearer(app),
        )
        assert r.status_code == 200, r.text
        table = ipc.open_stream(io.BytesIO(r.content)).read_all()
        manifest = json.loads(table.schema.metadata[b"matgate.manifest"])
        return table.to_pylist(), manifest


def hashed_operators(app: FastAPI, dataset: str = "samples") -> dict[str, str]:
    """sample id -> hashed operator."""
    rows, _ = pull(app, dataset)
    return {r["sample_id"]: r["operator"] for r in rows}


def truth() -> dict[str, str]:
    """sample id -> operator, as the store holds it."""
    return {r["sample_id"]: r["operator"] for r in sample_rows()}


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store with two tables of the same samples."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    load_samples(url, "samples")
    load_samples(url, "samples_b")
    return url


def _guesses(name: str) -> set[str]:
    """What a dictionary attack computes for one name: unkeyed and guessable-key digests."""
    raw = name.encode()
    out = set()
    for salt in (b"", b"salt", b"pepper", b"demo-salt-not-secret", b"lab", b"matgate"):
        for joined in (salt + b"\x1f" + raw, salt + raw, raw + salt):
            for algo in ("sha256", "sha1", "md5", "sha512", "blake2b"):
                out.add(hashlib.new(algo, joined).hexdigest())
        out.add(hmac.new(salt, raw, hashlib.sha256).hexdigest())
    return out


def test_a_dictionary_attack_on_a_hashed_column_finds_nobody(store: str, tmp_path: Path) -> None:
    """Every operator is in the attacker's dictionary; no hash matches any of its guesses."""
    app = lab_app(tmp_path / "node", lab_config(store, {"samples": "samples"}))
    seen = set(hashed_operators(app).values())
    assert len(seen) == len(OPERATORS)  # still a faithful pseudonym: one hash per person
    dictionary = set().union(*(_guesses(n) for n in OPERATORS))
    assert seen.isdisjoint(dictionary)


def test_the_hash_is_an_hmac_under_the_node_secret_kept_private(store: str, tmp_path: Path) -> None:
    """The secret was made at first start beside the node key, mode 0600, and keys the HMAC."""
    app = lab_app(tmp_path / "node", lab_config(store, {"samples": "samples"}))
    secret_file = tmp_path / "node" / "mask_secret"
    assert secret_file.exists() and (secret_file.stat().st_mode & 0o777) == 0o600
    secret = MaskSecret.load(secret_file)
    got = hashed_operators(app)
    for sample, operator in truth().items():
        assert got[sample] == hmac.new(secret.key, operator.encode(), hashlib.sha256).hexdigest()
    _, manifest = pull(app, "samples")
    assert manifest["decision"]["mask_key"] == secret.kid


def test_hashes_join_across_datasets_of_one_node(store: str, tmp_path: Path) -> None:
    """Two datasets of one node: the same person has the same hash in both."""
    app = lab_app(tmp_path / "node", lab_config(store, {"samples": "samples", "b": "samples_b"}))
    assert hashed_operators(app, "samples") == hashed_operators(app, "b")


def test_hashes_differ_across_nodes(store: str, tmp_path: Path) -> None:
    """Two nodes, each with its own secret: the same person cannot be linked across them."""
    one = lab_app(tmp_path / "one", lab_config(store, {"samples": "samples"}))
    two = lab_app(tmp_path / "two", lab_config(store, {"samples": "samples"}))
    a, b = hashed_operators(one), hashed_operators(two)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    assert set(a.values()).isdisjoint(b.values())


def test_a_shared_key_joins_across_nodes_on_purpose(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Institutions that configure the same named key get the same hashes, and the manifests
    say which key: the join is deliberate and attributable."""
    monkeypatch.setenv(SHARED, os.urandom(24).hex())
    shared = {"mask_key": "consortium", "shared_mask_keys": [{"name": "consortium", "env": SHARED}]}
    one = lab_app(tmp_path / "one", lab_config(store, {"samples": "samples"}, **shared))
    two = lab_app(tmp_path / "two", lab_config(store, {"samples": "samples"}, **shared))
    (a, ma), (b, mb) = pull(one, "samples"), pull(two, "samples")
    assert a == b
    assert ma["decision"]["mask_key"] == mb["decision"]["mask_key"]
    assert ma["decision"]["mask_key"].startswith("shared:consortium:")
    assert not (tmp_path / "one" / "mask_secret").exists()  # the node's own key is not used


def test_rotation_changes_every_hash_and_the_key_id(store: str, tmp_path: Path) -> None:
    """``matgate keys rotate-mask-secret``: after a restart, new hashes under a new key id."""
    home = tmp_path / "node"
    config = lab_config(store, {"samples": "samples"})
    before, m1 = pull(lab_app(home, config), "samples")
    assert cli_main(["keys", "rotate-mask-secret", "--data-dir", str(home)]) == 0
    assert (home / "mask_secret").stat().st_mode & 0o777 == 0o600
    after, m2 = pull(lab_app(home, config), "samples")
    assert m1["decision"]["mask_key"] != m2["decision"]["mask_key"]
    old = {r["sample_id"]: r["operator"] for r in before}
    new = {r["sample_id"]: r["operator"] for r in after}
    assert all(old[k] != new[k] for k in old)
    again, m3 = pull(lab_app(home, config), "samples")  # stable until the next rotation
    assert again == after and m3["decision"]["mask_key"] == m2["decision"]["mask_key"]


def test_the_audit_log_names_the_mask_key(store: str, tmp_path: Path) -> None:
    """The decision event records which key hashed the columns it released."""
    app = lab_app(tmp_path / "node", lab_config(store, {"samples": "samples"}))
    _, manifest = pull(app, "samples")
    with TestClient(app) as client:
        r = client.get(
            "/audit/events", params={"name": "decision"}, headers=bearer(app, roles=("auditor",))
        )
    allowed = [e for e in r.json()["events"] if e["decision"] == "allow" and e["action"] == "read"]
    assert allowed and {e["mask_key"] for e in allowed} == {manifest["decision"]["mask_key"]}


@pytest.mark.parametrize(
    ("policy", "env", "fragment"),
    [
        ({"mask_salt": "pepper"}, {}, "mask_salt is no longer read"),
        ({"mask_salt": ""}, {}, "mask_salt is no longer read"),
        (
            {"mask_key": "consortium", "shared_mask_keys": [{"name": "consortium", "env": SHARED}]},
            {},
            f"{SHARED} is not set",
        ),
        (
            {"mask_key": "consortium", "shared_mask_keys": [{"name": "consortium", "env": SHARED}]},
            {SHARED: "short"},
            "at least 32",
        ),
        ({"mask_key": "nobody"}, {}, "names no [[policy.shared_mask_keys]]"),
    ],
    ids=["legacy-salt", "legacy-empty-salt", "shared-key-unset", "shared-key-short", "unknown"],
)
def test_a_node_whose_masks_have_no_good_key_does_not_start(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: dict[str, Any],
    env: dict[str, str],
    fragment: str,
) -> None:
    """Refused at start with a message naming the problem, never served unkeyed."""
    monkeypatch.delenv(SHARED, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises((ConfigError, ValidationError)) as caught:
        lab_app(tmp_path / "node", lab_config(store, {"samples": "samples"}, **policy))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("content", "mode", "fragment"),
    [
        (None, 0o644, "private to its owner"),
        ("not json", 0o600, "not a matgate mask secret"),
        ('{"format": "matgate-mask-secret-v1", "secret": "c2hvcnQ="}', 0o600, "not a matgate"),
    ],
    ids=["readable-by-others", "garbage", "too-short"],
)
def test_a_bad_secret_file_stops_the_node(
    store: str, tmp_path: Path, content: str | None, mode: int, fragment: str
) -> None:
    """A secret others can read, or one that is not a secret, is refused at start."""
    home = tmp_path / "node"
    lab_app(home, lab_config(store, {"samples": "samples"}))
    secret = home / "mask_secret"
    if content is not None:
        secret.write_text(content)
    secret.chmod(mode)
    with pytest.raises(ConfigError, match=fragment):
        lab_app(home, lab_config(store, {"samples": "samples"}))


def test_the_demo_node_hashes_under_its_own_key(api: TestClient, auth: dict[str, Any]) -> None:
    """The demo's partner reads the personal column hashed, under the node's key id."""
    r = api.get(
        "/datasets/aurora/ni-superalloys/slice",
        params={"purpose": "research", "format": "arrow"},
        headers=auth["partner"],
    )
    assert r.status_code == 200, r.text
    table = ipc.open_stream(io.BytesIO(r.content)).read_all()
    manifest = json.loads(table.schema.metadata[b"matgate.manifest"])
    assert "hash" in manifest["decision"]["masked"].values()
    assert str(manifest["decision"]["mask_key"]).startswith("node:")
