"""Every query parameter of the audit API is bounded: a bad one is a 4xx problem, never a 500.

Values the schema can refuse (types, ranges, lengths) are 422 like everywhere in the API; values
that are well-formed but mean nothing here (a cursor that is no index, a proof outside the log,
a time range that ends before it starts) are 400.
"""

from __future__ import annotations

import pytest

HUGE = "9" * 60
LONG = "x" * 400


def _bad(api, auth, path, params, status):
    r = api.get(path, params=params, headers=auth["auditor"])
    assert r.status_code == status, (path, params, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status


PAGES = [
    ({"cursor": HUGE}, 400),
    ({"cursor": "9223372036854775808"}, 400),  # one past BIGINT
    ({"cursor": "abc"}, 400),
    ({"cursor": "-1"}, 400),
    ({"cursor": "1e3"}, 400),
    ({"cursor": " 1"}, 400),
    ({"cursor": "\u0663"}, 400),  # an Arabic-Indic digit: int() would take it
    ({"cursor": "1" * 65}, 422),
    ({"limit": 0}, 422),
    ({"limit": -1}, 422),
    ({"limit": 10_001}, 422),
    ({"limit": HUGE}, 422),
]
FILTERS = [
    ({"since": "yesterday"}, 422),
    ({"since": "0001-01-01T00:00:00+01:00"}, 400),  # before year 1 in UTC
    ({"until": "9999-12-31T23:59:59+00:00", "since": "9999-12-31T23:59:59-01:00"}, 400),
    ({"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, 400),
    ({"decision": "maybe"}, 422),
    ({"principal": LONG}, 422),
    ({"dataset": LONG}, 422),
    ({"name": LONG}, 422),
]


@pytest.mark.parametrize(("params", "status"), PAGES + FILTERS)
def test_bad_event_queries_are_refused(api, auth, params, status):
    _bad(api, auth, "/audit/events", params, status)


@pytest.mark.parametrize(("params", "status"), FILTERS)
def test_bad_export_queries_are_refused(api, auth, params, status):
    _bad(api, auth, "/audit/export", params, status)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2025-01-01T00:00:00"},  # no zone: read as UTC
        {"since": "2025-01-01"},
        {"until": "9999-12-31T23:59:59Z"},
        {"cursor": "9223372036854775807", "limit": 10_000},
    ],
)
def test_edge_event_queries_are_answered(api, auth, params):
    r = api.get("/audit/events", params=params, headers=auth["auditor"])
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/audit/proof/inclusion", {"index": -1}, 422),
        ("/audit/proof/inclusion", {"index": HUGE}, 422),
        ("/audit/proof/inclusion", {"index": 2**62 + 1}, 422),
        ("/audit/proof/inclusion", {"index": 2**62}, 400),
        ("/audit/proof/inclusion", {"index": 10**9}, 400),
        ("/audit/proof/inclusion", {"index": 0, "size": 0}, 422),
        ("/audit/proof/inclusion", {"index": 0, "size": 10**9}, 400),
        ("/audit/proof/inclusion", {"index": 5, "size": 5}, 400),  # index >= size
        ("/audit/proof/inclusion", {"index": "x"}, 422),
        ("/audit/proof/inclusion", {}, 422),
        ("/audit/proof/consistency", {"from": -1}, 422),
        ("/audit/proof/consistency", {"from": HUGE}, 422),
        ("/audit/proof/consistency", {"from": 10**9}, 400),
        ("/audit/proof/consistency", {"from": 3, "to": 2}, 400),
        ("/audit/proof/consistency", {"from": 0, "to": 10**9}, 400),
        ("/audit/proof/consistency", {"from": 0, "to": -3}, 422),
        ("/lineage", {"dataset": LONG}, 422),
        ("/lineage", {"format": "xml", "dataset": "aurora/x"}, 422),
        ("/lineage", {}, 400),
        ("/lineage", {"dataset": "aurora/x", "model": "m"}, 400),
        ("/audit/export", {"format": "xml"}, 422),
        ("/audit/checkpoint", {"format": "xml"}, 422),
        ("/audit/report", {}, 422),
        ("/audit/report", {"dataset": ""}, 422),
        ("/audit/report", {"dataset": LONG}, 422),
        ("/audit/report", {"dataset": "aurora/x", "since": "yesterday"}, 422),
        ("/audit/report", {"dataset": "aurora/x", "since": "0001-01-01T00:00:00+01:00"}, 400),
        ("/audit/report", {"dataset": "aurora/x", "until": "9999-12-31T23:59:59-01:00"}, 400),
        (
            "/audit/report",
            {"dataset": "aurora/x", "since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00Z"},
            400,
        ),
    ],
)
def test_bad_proof_and_lineage_queries_are_refused(api, auth, path, params, status):
    _bad(api, auth, path, params, status)


def test_proofs_at_the_edges_of_the_log(api, auth):
    size = api.get("/audit/checkpoint", headers=auth["auditor"]).json()["size"]
    assert size > 0
    get = api.get
    last = get("/audit/proof/inclusion", params={"index": size - 1, "size": size}, headers={})
    assert last.status_code == 401  # proofs still need a token
    ok = get(
        "/audit/proof/inclusion", params={"index": size - 1, "size": size}, headers=auth["auditor"]
    )
    assert ok.status_code == 200 and ok.json()["size"] == size
    same = get(
        "/audit/proof/consistency", params={"from": size, "to": size}, headers=auth["auditor"]
    )
    assert same.status_code == 200 and same.json()["path"] == []
