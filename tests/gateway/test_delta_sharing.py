"""The Delta Sharing face: the official ``delta-sharing`` client reads shares from a profile file.

Aurora offers its superalloys, band gaps and steels to Borealis (share ``superalloys``) and the
superalloys to one of its own members (share ``members``). What ``load_as_pandas`` returns must
equal the slice the same recipient would pull natively; every file fetch is decided again.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import delta_sharing
import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from faces_support import faces_node
from gateway_support import LiveServer, persona_tokens
from requests.exceptions import HTTPError

from gateway.faces.delta_sharing import files

# The client passes pandas.concat's copy=False, which pandas 3 warns about; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")

NI, GAPS, STEELS = "ni-superalloys", "expt-gap", "steels-yield"
SHARES = [
    {"name": "superalloys", "datasets": [NI, GAPS, STEELS], "institutions": ["borealis"]},
    {"name": "members", "datasets": [NI], "users": ["aurora:mia"]},
]


def _serve(root: Path) -> tuple[LiveServer, dict[str, str]]:
    app, plan = faces_node(root, shares=SHARES)
    server = LiveServer(app, plan["port"]).start()
    tokens = persona_tokens(app.state.node.issuer)
    tokens["stranger"] = app.state.node.issuer.mint("sam", institution="cygnus")
    return server, tokens


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A node with the two shares, on loopback."""
    root = tmp_path_factory.mktemp("sharing")
    server, tokens = _serve(root)
    yield {"url": server.url, "tokens": tokens, "root": root}
    server.stop()


@pytest.fixture
def fresh_node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A node of its own, for tests that change its policy."""
    server, tokens = _serve(tmp_path)
    yield {"url": server.url, "tokens": tokens, "root": tmp_path}
    server.stop()


def _auth(node: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node['tokens'][who]}"}


def _profile(node: dict[str, Any], who: str) -> Path:
    """The recipient's profile file, as the node hands it out."""
    r = httpx.get(f"{node['url']}/delta-sharing/profile", headers=_auth(node, who))
    assert r.status_code == 200, r.text
    path = node["root"] / f"{who}.share"
    path.write_text(r.text)
    return path


def _native(node: dict[str, Any], who: str, dataset: str, **params: Any) -> pd.DataFrame:
    r = httpx.get(
        f"{node['url']}/datasets/aurora/{dataset}/slice",
        params={"purpose": "research", "format": "parquet", **params},
        headers=_auth(node, who),
    )
    assert r.status_code == 200, r.text
    return pq.read_table(io.BytesIO(r.content)).to_pandas()


def _query(
    node: dict[str, Any], who: str, share: str, table: str, body: dict[str, Any]
) -> httpx.Response:
    url = f"{node['url']}/delta-sharing/shares/{share}/schemas/aurora/tables/{table}/query"
    return httpx.post(url, json=body, headers=_auth(node, who))


def _file(response: httpx.Response) -> dict[str, Any]:
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert set(lines[0]) == {"protocol"} and set(lines[1]) == {"metaData"}
    (file,) = [line["file"] for line in lines[2:]]
    return file


@pytest.mark.parametrize(
    ("who", "share", "table"),
    [("partner", "superalloys", NI), ("partner", "superalloys", GAPS), ("ml-user", "members", NI)],
)
def test_load_as_pandas_is_the_recipients_slice(node, who, share, table):
    profile = _profile(node, who)
    shared = delta_sharing.load_as_pandas(f"{profile}#{share}.aurora.{table}")
    pd.testing.assert_frame_equal(shared, _native(node, who, table))


def test_the_partner_gets_the_governed_columns_and_rows(node):
    shared = delta_sharing.load_as_pandas(f"{_profile(node, 'partner')}#superalloys.aurora.{NI}")
    member = _native(node, "ml-user", NI)
    assert "sponsor" not in shared.columns and "sponsor" in member.columns
    assert set(shared["record_id"]) < set(member["record_id"])  # embargoed rows left out
    clear = dict(zip(member["record_id"], member["operator"], strict=True))
    assert all(
        op != clear[rid]
        for rid, op in zip(shared["record_id"], shared["operator"], strict=True)
        if clear[rid]
    )


@pytest.mark.parametrize(
    ("who", "shares", "tables"),
    [
        ("partner", ["superalloys"], {NI, GAPS, STEELS}),
        ("ml-user", ["members"], {NI}),
        ("stranger", [], set()),
    ],
)
def test_each_recipient_sees_its_own_shares(node, who, shares, tables):
    client = delta_sharing.SharingClient(str(_profile(node, who)))
    assert [s.name for s in client.list_shares()] == shares
    assert {t.name for t in client.list_all_tables()} == tables


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("stranger", "/shares/superalloys", 404),
        ("ml-user", "/shares/superalloys/all-tables", 404),
        ("partner", "/shares/members", 404),
        ("partner", "/shares/no-such-share", 404),
        ("partner", "/shares/superalloys/schemas/borealis/tables", 404),
        ("partner", "/shares/superalloys/schemas/aurora/tables/magpie-elements/metadata", 404),
        ("partner", "/shares/superalloys", 200),
        ("partner", "/shares/SUPERALLOYS/schemas", 200),
        ("partner", f"/shares/superalloys/schemas/aurora/tables/{NI}/version", 200),
        ("anonymous", "/shares", 401),
        ("anonymous", "/profile", 401),
    ],
)
def test_who_may_see_what(node, who, path, status):
    headers = {} if who == "anonymous" else _auth(node, who)
    r = httpx.get(f"{node['url']}/delta-sharing{path}", headers=headers)
    assert r.status_code == status, r.text


def test_a_table_the_recipient_may_not_read_is_refused_like_a_slice(node):
    native = httpx.get(
        f"{node['url']}/datasets/aurora/{STEELS}/slice",
        params={"purpose": "research"},
        headers=_auth(node, "partner"),
    )
    assert native.status_code == 403  # the steels need an accepted agreement
    with pytest.raises(HTTPError) as caught:
        delta_sharing.load_as_pandas(f"{_profile(node, 'partner')}#superalloys.aurora.{STEELS}")
    assert caught.value.response.status_code == 403
    assert "agreement" in caught.value.response.json()["message"]


@pytest.mark.parametrize(
    ("body", "native"),
    [
        ({"limitHint": 7}, {"limit": 7}),
        (
            {"predicateHints": ["target >= 3", "3.5 > target"]},
            {"filter": "target >= 3 AND target < 3.5"},
        ),
        ({"predicateHints": ["formula = 'AgCl'"]}, {"filter": 'formula = "AgCl"'}),
        ({"predicateHints": ["formula IS NULL"]}, {"filter": "formula IS UNKNOWN"}),
        ({"predicateHints": ["target > 3", "f(target) = 1"]}, {"filter": "target > 3"}),
        ({"predicateHints": ["no_such_column = 1"]}, {}),
        (
            {
                "jsonPredicateHints": json.dumps(
                    {
                        "op": "and",
                        "children": [
                            {
                                "op": "greaterThan",
                                "children": [
                                    {"op": "column", "name": "target", "valueType": "double"},
                                    {"op": "literal", "value": "2", "valueType": "double"},
                                ],
                            },
                            {
                                "op": "not",
                                "children": [
                                    {
                                        "op": "lessThanOrEqual",
                                        "children": [
                                            {"op": "literal", "value": "4", "valueType": "double"},
                                            {
                                                "op": "column",
                                                "name": "target",
                                                "valueType": "double",
                                            },
                                        ],
                                    }
                                ],
                            },
                        ],
                    }
                ),
                "limitHint": 5,
            },
            {"filter": "target > 2 AND NOT (target >= 4)", "limit": 5},
        ),
        ({"jsonPredicateHints": '{"op": "equal", "children": []}'}, {}),
    ],
)
def test_hints_are_pushed_into_the_slice(node, body, native):
    r = _query(node, "partner", "superalloys", GAPS, body)
    assert r.status_code == 200, r.text
    file = _file(r)
    table = pq.read_table(io.BytesIO(httpx.get(file["url"]).content)).to_pandas()
    pd.testing.assert_frame_equal(table, _native(node, "partner", GAPS, **native))
    assert json.loads(file["stats"])["numRecords"] == len(table)


def test_a_hint_on_a_withheld_column_is_skipped_not_answered(node):
    r = _query(node, "partner", "superalloys", NI, {"predicateHints": ["sponsor = 'x'"]})
    assert r.status_code == 200, r.text
    table = pq.read_table(io.BytesIO(httpx.get(_file(r)["url"]).content))
    assert "sponsor" not in table.column_names
    assert table.num_rows == len(_native(node, "partner", NI))


def test_metadata_and_version(node):
    base = f"{node['url']}/delta-sharing/shares/superalloys/schemas/aurora/tables/{NI}"
    meta = httpx.get(f"{base}/metadata", headers=_auth(node, "partner"))
    version = httpx.get(f"{base}/version", headers=_auth(node, "partner"))
    assert meta.headers["delta-table-version"] == version.headers["delta-table-version"]
    schema = json.loads(json.loads(meta.text.splitlines()[1])["metaData"]["schemaString"])
    names = [f["name"] for f in schema["fields"]]
    assert names == list(_native(node, "partner", NI, limit=0).columns)
    assert "sponsor" not in names


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"version": 10_000}, 400),
        ({"timestamp": "2020-01-01T00:00:00Z"}, 400),
        ({"startingVersion": 0}, 400),
        ({"limitHint": -1}, 400),
    ],
)
def test_history_is_not_shared(node, body, status):
    assert _query(node, "partner", "superalloys", GAPS, body).status_code == status


def test_pages_of_tables(node):
    url = f"{node['url']}/delta-sharing/shares/superalloys/all-tables"
    first = httpx.get(url, params={"maxResults": 2}, headers=_auth(node, "partner")).json()
    rest = httpx.get(
        url, params={"pageToken": first["nextPageToken"]}, headers=_auth(node, "partner")
    ).json()
    assert len(first["items"]) == 2 and "nextPageToken" not in rest
    assert {t["name"] for t in first["items"] + rest["items"]} == {NI, GAPS, STEELS}
    bad = httpx.get(url, params={"pageToken": "x"}, headers=_auth(node, "partner"))
    assert bad.status_code == 400 and bad.json()["errorCode"] == "INVALID_PARAMETER_VALUE"


def _decisions(node: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    events = httpx.get(
        f"{node['url']}/audit/events",
        params={"name": "decision", "limit": 10_000},
        headers=_auth(node, "auditor"),
    ).json()["events"]
    return [e for e in events if e.get("request_id") == rid]


def test_each_fetch_is_decided_and_recorded(node):
    file = _file(_query(node, "partner", "superalloys", GAPS, {}))
    rid = file["url"].split("/files/")[1].split(".parquet")[0]
    before = len(_decisions(node, rid))
    whole = httpx.get(file["url"])  # no token: the signed URL is the credential
    head = httpx.get(file["url"], headers={"Range": "bytes=0-3"})
    assert whole.status_code == 200 and len(whole.content) == file["size"]
    assert head.status_code == 206 and head.content == b"PAR1"
    after = _decisions(node, rid)
    assert len(after) == before + 2
    assert all(e["principal"] == "borealis:pablo" and e["decision"] == "allow" for e in after)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: u.replace("sig=", "sig=0"),
        lambda u: u[:-1] + ("0" if u[-1] != "0" else "1"),
        lambda u: u.replace("exp=", "exp=9"),
        lambda u: u.split("&sig=")[0],
        lambda u: u.replace("/files/", "/files/0"),
    ],
)
def test_a_tampered_url_gets_nothing(node, tamper):
    file = _file(_query(node, "partner", "superalloys", GAPS, {}))
    r = httpx.get(tamper(file["url"]))
    assert r.status_code in (403, 404) and b"PAR1" not in r.content


def test_an_expired_url_gets_nothing(node, monkeypatch):
    monkeypatch.setattr(files, "URL_TTL_SECONDS", 1)
    file = _file(_query(node, "partner", "superalloys", GAPS, {}))
    assert file["expirationTimestamp"] <= (time.time() + 1) * 1000
    time.sleep(1.2)
    r = httpx.get(file["url"])
    assert r.status_code == 403 and "expired" in r.json()["message"]


def test_a_url_made_before_access_was_lost_gets_nothing(fresh_node):
    node = fresh_node
    file = _file(_query(node, "partner", "superalloys", GAPS, {}))
    line = {
        "effect": "deny",
        "institution": "borealis",
        "domain": "aurora",
        "dataset": GAPS,
        "action": "read",
    }
    r = httpx.post(
        f"{node['url']}/policies/aurora", json={"add": [line]}, headers=_auth(node, "steward")
    )
    assert r.status_code == 200, r.text
    fetched = httpx.get(file["url"])
    assert fetched.status_code == 403 and b"PAR1" not in fetched.content
    rid = file["url"].split("/files/")[1].split(".parquet")[0]
    assert _decisions(node, rid)[-1]["decision"] == "deny"


@pytest.mark.parametrize(
    ("who", "method", "name", "body", "status"),
    [
        ("steward", "PUT", "gaps", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 200),
        ("ml-user", "PUT", "gaps", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 403),
        ("partner", "PUT", "gaps", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 403),
        ("anonymous", "PUT", "gaps", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 401),
        ("steward", "PUT", "superalloys", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 409),
        ("steward", "PUT", "gaps", {"datasets": ["no-such"], "users": ["cygnus:sam"]}, 400),
        ("steward", "PUT", "gaps", {"datasets": [GAPS]}, 422),
        ("steward", "PUT", "Bad Name", {"datasets": [GAPS], "users": ["cygnus:sam"]}, 422),
        ("steward", "PUT", "gaps", {"datasets": [GAPS], "users": ["not-a-user"]}, 422),
        ("steward", "DELETE", "no-such", None, 404),
        ("steward", "DELETE", "superalloys", None, 409),
        ("ml-user", "GET", "", None, 403),
    ],
)
def test_who_may_offer_shares(fresh_node, who, method, name, body, status):
    node = fresh_node
    headers = {} if who == "anonymous" else _auth(node, who)
    url = f"{node['url']}/delta-sharing/admin/shares" + (f"/{name}" if name else "")
    r = httpx.request(method, url, json=body, headers=headers)
    assert r.status_code == status, r.text


def test_an_offered_share_is_read_then_withdrawn(fresh_node):
    node = fresh_node
    steward = _auth(node, "steward")
    offer = {"datasets": [GAPS, NI], "users": ["cygnus:sam"]}
    url = f"{node['url']}/delta-sharing/admin/shares/gaps"
    assert httpx.put(url, json=offer, headers=steward).status_code == 200
    client = delta_sharing.SharingClient(str(_profile(node, "stranger")))
    assert [s.name for s in client.list_shares()] == ["gaps"]
    # Offered both, the stranger may discover only the public band gaps: that is all it sees.
    assert {t.name for t in client.list_all_tables()} == {GAPS}
    shared = delta_sharing.load_as_pandas(f"{_profile(node, 'stranger')}#gaps.aurora.{GAPS}")
    pd.testing.assert_frame_equal(shared, _native(node, "stranger", GAPS))
    listed = httpx.get(f"{node['url']}/delta-sharing/admin/shares", headers=steward).json()
    assert {(s["name"], s["source"]) for s in listed} == {
        ("superalloys", "config"),
        ("members", "config"),
        ("gaps", "api"),
    }
    assert httpx.delete(url, headers=steward).status_code == 204
    assert client.list_shares() == []
    events = httpx.get(
        f"{node['url']}/audit/events", params={"name": "share"}, headers=_auth(node, "auditor")
    ).json()["events"]
    assert [(e["share"], e["change"]) for e in events] == [
        ("gaps", "offered"),
        ("gaps", "withdrawn"),
    ]
    assert all(e["principal"] == "aurora:sana" for e in events)
