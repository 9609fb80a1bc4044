"""The web console over HTTP: security headers, sessions and CSRF, who may see which page,
hostile metadata escaped, the steward's dry-run and apply, the audit log and its proofs."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from console_support import csrf_of, enable_demo_signin, hostile_dataset, pulled_manifest, sign_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from gateway_support import free_port, node_settings, persona_tokens

from gateway.app import create_app
from gateway.console.session import COOKIE
from gateway.console.views import parse_since
from gateway.demo import prepare
from gateway.errors import BadRequest

NI = "aurora/ni-superalloys"
PARTNER_TRAIN = {
    "op": "add", "kind": "role", "subject": "partner", "dataset": "ni-superalloys",
    "action": "train", "purpose": "ml-training",
}  # fmt: skip


@pytest.fixture(scope="module")
def node_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """A node of this module's own (its policy changes), with the demo's one-click sign-in."""
    app = create_app(node_settings(prepare(tmp_path_factory.mktemp("console"), free_port())))
    enable_demo_signin(app)
    with TestClient(app):
        yield app


@pytest.fixture(scope="module")
def headers(node_app: FastAPI) -> dict[str, dict[str, str]]:
    """Bearer headers per persona, for the API calls that set the scene."""
    tokens = persona_tokens(node_app.state.node.issuer)
    return {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}


@pytest.fixture(scope="module")
def api(node_app: FastAPI) -> TestClient:
    """A plain API client of the module's node."""
    return TestClient(node_app)


PAGES = [
    ("steward", "/console/catalog"),
    ("steward", f"/console/datasets/{NI}"),
    ("steward", "/console/policy"),
    ("steward", f"/console/matrix/{NI}"),
    ("auditor", "/console/audit"),
    ("auditor", "/console/lineage"),
    ("ml-user", "/console/signin"),
    ("steward", "/console/policy/history"),
    ("steward", "/console/agreements"),
    ("steward", "/console/register?store=lab&table=ni_superalloys"),
    ("ml-user", "/console/pulls"),
    ("ml-user", "/console/jobs"),
]


@pytest.mark.parametrize(("persona", "url"), PAGES)
def test_pages_carry_a_strict_csp_and_refuse_framing(node_app, persona, url):
    page = sign_in(node_app, persona).get(url)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    # no inline script or style, and every asset is the node's own
    assert not re.search(r"<script(?![^>]*\bsrc=\"/console/static/)", page.text)
    assert "<style" not in page.text and " style=" not in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)


def test_assets_are_served_by_the_node(node_app):
    client = TestClient(node_app)
    css, js = client.get("/console/static/console.css"), client.get("/console/static/console.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "addEventListener" in js.text
    assert client.get("/console/static/..%2Fweb.py").status_code == 404
    assert client.get("/console/static/nothing.js").status_code == 404


def test_the_session_cookie_is_signed_httponly_and_samesite(node_app):
    client = TestClient(node_app, base_url="http://127.0.0.1", follow_redirects=False)
    page = client.get("/console/signin")
    cookie = page.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # this node's public URL is http; an https node sets it
    signed_in = sign_in(node_app, "steward")
    assert signed_in.get("/console/policy").status_code == 200
    forged = signed_in.cookies[COOKIE][:-3] + "AAA"
    stranger = TestClient(node_app, base_url="http://127.0.0.1", follow_redirects=False)
    stranger.cookies.set(COOKIE, forged, path="/console")
    answer = stranger.get("/console/policy")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"


def test_an_https_node_sets_secure_cookies(tmp_path):
    from starlette.responses import Response

    from gateway.console.session import Session, SessionCodec

    response = Response()
    SessionCodec(tmp_path / "k", secure=True).save(response, Session())
    assert "Secure" in response.headers["set-cookie"]
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_without_a_session_pages_send_you_to_sign_in(node_app):
    client = TestClient(node_app, follow_redirects=False)
    for url in ("/console/catalog", "/console/policy", "/console/audit", f"/console/matrix/{NI}"):
        answer = client.get(url)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"


def test_demo_signin_is_off_unless_enabled(tmp_path):
    app = create_app(node_settings(prepare(tmp_path, free_port())))
    client = TestClient(app, follow_redirects=False)
    page = client.get("/console/signin")
    assert "persona-steward" not in page.text
    session = app.state.console_codec.serializer.loads(client.cookies[COOKIE])
    answer = client.post(
        "/console/signin/demo", data={"persona": "steward", "csrf": session["csrf"]}
    )
    assert answer.status_code == 403
    assert client.get("/console/catalog").status_code == 303  # still not signed in


ROLE_GATES = [
    ("ml-user", "/console/policy", 403),
    ("ml-user", f"/console/matrix/{NI}", 403),
    ("ml-user", "/console/audit", 403),
    ("ml-user", f"/console/lineage?dataset={NI}", 403),
    ("partner", "/console/policy", 403),
    ("partner", "/console/audit", 403),
    ("auditor", "/console/policy", 403),
    ("auditor", "/console/audit", 200),
    ("auditor", f"/console/matrix/{NI}", 200),
    ("steward", "/console/audit", 403),
    ("steward", "/console/policy", 200),
    ("ml-user", f"/console/datasets/{NI}", 200),
    ("ml-user", "/console/datasets/aurora/no-such-thing", 404),
]


@pytest.mark.parametrize(("persona", "url", "status"), ROLE_GATES)
def test_who_may_see_which_page(node_app, persona, url, status):
    answer = sign_in(node_app, persona).get(url)
    assert answer.status_code == status
    if status == 403:
        assert "Not allowed" in answer.text
        assert answer.headers["content-security-policy"]


def _version(node_app: FastAPI) -> int:
    return int(node_app.state.node.governance.version)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/console/policy/dry-run", PARTNER_TRAIN),
        ("/console/policy/apply", {"op": "add", "line": '{"role": "partner"}'}),
        ("/console/signout", {}),
    ],
)
@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_forms_without_the_right_csrf_token_are_refused(node_app, url, data, csrf):
    client = sign_in(node_app, "steward")
    before = _version(node_app)
    body = dict(data) if csrf is None else {**data, "csrf": csrf}
    answer = client.post(url, data=body)
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert _version(node_app) == before
    assert client.get("/console/policy").status_code == 200  # still signed in


def test_signin_itself_needs_the_csrf_token(node_app):
    client = TestClient(node_app, follow_redirects=False)
    client.get("/console/signin")
    answer = client.post("/console/signin/demo", data={"persona": "steward", "csrf": "guess"})
    assert answer.status_code == 403


def test_another_sessions_csrf_token_does_not_work(node_app):
    mine, theirs = sign_in(node_app, "steward"), sign_in(node_app, "steward")
    token = csrf_of(theirs.get("/console/policy").text)
    assert (
        mine.post("/console/policy/dry-run", data={**PARTNER_TRAIN, "csrf": token}).status_code
        == 403
    )


def test_hostile_metadata_is_escaped_everywhere(node_app, api, headers):
    body = hostile_dataset(api, headers["steward"], "evil-alloys")
    client = sign_in(node_app, "steward")
    pages = [
        client.get("/console/catalog", params={"q": "Alloys"}),
        client.get("/console/datasets/aurora/evil-alloys"),
        client.get("/console/matrix/aurora/evil-alloys"),
        client.get("/console/catalog", params={"q": '<script>alert("q")</script>'}),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text and "<svg onload" not in page.text
        assert "</textarea><" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[1].text
    assert body["columns"][0]["name"] in pages[1].text
    assert "&lt;script&gt;alert(&#34;q&#34;)" in pages[3].text


def test_a_bad_line_shows_its_errors_on_the_fields(node_app):
    client = sign_in(node_app, "steward")
    token = csrf_of(client.get("/console/policy").text)
    bad_role = client.post(
        "/console/policy/dry-run", data={**PARTNER_TRAIN, "subject": "Partner!", "csrf": token}
    )
    assert bad_role.status_code == 422
    assert re.search(r'id="err-subject"[^>]*>role &#39;Partner!&#39;', bad_role.text)
    assert 'name="subject" id="f-subject" value="Partner!"' in bad_role.text
    bad_columns = client.post(
        "/console/policy/dry-run",
        data={**PARTNER_TRAIN, "columns": "pspp:colour", "csrf": token},
    )
    assert bad_columns.status_code == 422 and 'id="err-columns"' in bad_columns.text
    bad_purpose = client.post(
        "/console/policy/dry-run", data={**PARTNER_TRAIN, "purpose": "spying", "csrf": token}
    )
    assert bad_purpose.status_code == 422 and 'id="err-purpose"' in bad_purpose.text


def _cell(html: str, row: str, head: str) -> str:
    found = re.search(
        rf'data-cell="{re.escape(row)}\|{re.escape(head)}"[^>]*>(.*?)</td>', html, re.S
    )
    assert found, (row, head)
    return found.group(1)


def test_a_steward_dry_runs_applies_and_the_matrix_changes(node_app):
    client = sign_in(node_app, "steward")
    matrix = client.get(f"/console/matrix/{NI}").text
    assert "denied" in _cell(matrix, "borealis member", "train · ml-training")
    before = _version(node_app)
    token = csrf_of(client.get("/console/policy").text)
    diff = client.post("/console/policy/dry-run", data={**PARTNER_TRAIN, "csrf": token})
    assert diff.status_code == 200
    assert "borealis:any-member" in diff.text and "gains access" in diff.text
    assert _version(node_app) == before  # a dry run changes nothing
    line = re.search(r'name="line" value="([^"]+)"', diff.text)
    assert line
    import html as htmllib

    applied = client.post(
        "/console/policy/apply",
        data={"op": "add", "line": htmllib.unescape(line.group(1)), "csrf": csrf_of(diff.text)},
    )
    assert applied.status_code == 303 and applied.headers["location"] == "/console/policy"
    assert _version(node_app) == before + 1
    matrix = client.get(f"/console/matrix/{NI}").text
    assert "allowed" in _cell(matrix, "borealis member", "train · ml-training")
    # and the removal goes through the same dry run
    page = client.get("/console/policy").text
    raw = re.findall(r'name="line" value="([^"]+)"', page)
    mine = next(r for r in raw if "ml-training" in htmllib.unescape(r) and "train" in r)
    removal = client.post(
        "/console/policy/dry-run",
        data={"op": "remove", "line": htmllib.unescape(mine), "csrf": csrf_of(page)},
    )
    assert removal.status_code == 200 and "loses access" in removal.text


def test_a_member_sees_their_own_decisions_and_why(node_app):
    page = sign_in(node_app, "partner").get(f"/console/datasets/{NI}").text
    assert "What you may do with it" in page
    assert "denied" in page and "allowed" in page
    assert "hash" in page  # personal columns are masked by hashing for partners
    assert f"/catalog/{NI}/dcat" in page


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", dt.timedelta(hours=1)),
        ("7d", dt.timedelta(days=7)),
        ("30m", dt.timedelta(minutes=30)),
        ("2w", dt.timedelta(weeks=2)),
    ],
)
def test_time_spans_in_plain_words(text, expected):
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    assert parse_since(text, now) == now - expected


def test_dates_and_bad_times():
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    assert parse_since("2026-12-01", now) == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert parse_since("", now) is None
    with pytest.raises(BadRequest):
        parse_since("yesterday-ish", now)


def _indices(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="event-link">(\d+)</a>', html)]


@pytest.fixture(scope="module")
def busy(api: TestClient, headers: dict[str, dict[str, str]]) -> None:
    """Some refused pulls, so the log has a few pages of events."""
    for _ in range(6):
        answer = api.post(
            f"/datasets/{NI}/slice", json={"purpose": "commercial"}, headers=headers["partner"]
        )
        assert answer.status_code == 403


def test_the_audit_log_is_newest_first_filtered_and_paged(node_app, busy):
    size = node_app.state.node.audit.size()
    assert size > 4  # enough for two pages
    client = sign_in(node_app, "auditor")
    first = client.get("/console/audit", params={"limit": 3})
    got = _indices(first.text)
    assert got == sorted(got, reverse=True) and got[0] == size - 1 and len(got) == 3
    older = re.search(r'id="older" href="([^"]+)"', first.text)
    assert older
    second = _indices(client.get(older.group(1).replace("&amp;", "&")).text)
    assert second and max(second) < min(got)
    denied = client.get(
        "/console/audit", params={"decision": "deny", "principal": "borealis:pablo"}
    )
    assert _indices(denied.text) and "allow</span>" not in denied.text
    recent = client.get("/console/audit", params={"since": "1h", "name": "decision"})
    assert recent.status_code == 200 and _indices(recent.text)
    future = client.get("/console/audit", params={"since": "2999-01-01"})
    assert _indices(future.text) == []
    assert client.get("/console/audit", params={"since": "soonish"}).status_code == 400


def test_an_events_proof_is_checked_and_a_forged_entry_fails(node_app, busy):
    client = sign_in(node_app, "auditor")
    page = client.get("/console/audit/3")
    assert page.status_code == 200
    assert 'id="proof-status" class="verified"' in page.text
    assert client.get("/console/audit/999999").status_code == 404
    # change the stored leaf hash of one entry (lifting the append-only guard for the test):
    # its proof no longer leads to the signed root
    node = node_app.state.node
    table = sa.Table("audit_entries", sa.MetaData(), autoload_with=node.engine)
    with node.engine.begin() as conn:
        guards = conn.execute(
            sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
            {"t": "audit_entries"},
        ).all()
        for name, _sql in guards:
            conn.execute(sa.text(f'DROP TRIGGER "{name}"'))
        old = conn.execute(sa.select(table.c.leaf_hash).where(table.c.idx == 4)).scalar_one()
        conn.execute(table.update().where(table.c.idx == 4).values(leaf_hash=bytes(32)))
    try:
        broken = client.get("/console/audit/4")
        assert 'id="proof-status" class="failed"' in broken.text
    finally:
        with node.engine.begin() as conn:
            conn.execute(table.update().where(table.c.idx == 4).values(leaf_hash=old))
            for _name, sql in guards:
                conn.execute(sa.text(sql))
    assert 'class="verified"' in client.get("/console/audit/4").text


def test_lineage_is_drawn_with_click_through(node_app, api, headers):
    token = pulled_manifest(api, headers["ml-user"], NI)
    run = api.post(
        "/lineage/runs",
        json={"manifests": [token], "model_name": "console-forest", "model_version": "3"},
        headers=headers["ml-user"],
    )
    assert run.status_code == 201, run.text
    client = sign_in(node_app, "auditor")
    graph = client.get("/console/lineage", params={"dataset": NI}).text
    assert "<svg" in graph and 'class="node model"' in graph
    assert 'href="/console/lineage?model=console-forest%403"' in graph
    assert 'href="/console/lineage?principal=aurora%3Amia"' in graph
    model = client.get("/console/lineage", params={"model": "console-forest@3"}).text
    assert 'class="node dataset"' in model and "aurora/ni-superalloys" in model


def test_oidc_signin_refuses_an_issuer_not_offered(node_app):
    client = TestClient(node_app, follow_redirects=False)
    answer = client.get("/console/signin/oidc", params={"issuer": "https://evil.example"})
    assert answer.status_code == 403
    callback = client.get("/console/oidc/callback", params={"code": "x", "state": "y"})
    assert callback.status_code == 403


def test_an_ml_user_trains_on_site_and_reads_the_model_card(node_app):
    client = sign_in(node_app, "ml-user")
    page = client.get(f"/console/datasets/{NI}").text
    assert 'id="train"' in page
    started = client.post(
        f"/console/datasets/{NI}/train",
        data={"target": "yield_strength_mpa", "estimator": "ridge", "csrf": csrf_of(page)},
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    deadline = time.monotonic() + 120
    while True:
        job = client.get(job_url)
        assert job.status_code == 200
        if 'http-equiv="refresh"' not in job.text:
            break
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert 'id="model-card"' in job.text and "yield_strength_mpa" in job.text
    # somebody else's job is not theirs to read
    other = sign_in(node_app, "partner").get(job_url)
    assert other.status_code == 404
    refused = client.post(
        f"/console/datasets/{NI}/train", data={"target": "yield_strength_mpa", "csrf": "x"}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("params", "present", "absent"),
    [
        ({"q": "superalloy"}, NI, "aurora/expt-gap"),
        ({"pspp": "performance", "unit": "MPa"}, NI, "aurora/magpie-elements"),
        ({"institution": "cygnus"}, None, NI),
        ({"federated": "true"}, NI, None),
    ],
)
def test_catalog_search_in_the_console(node_app, params, present, absent):
    page = sign_in(node_app, "ml-user").get("/console/catalog", params=params)
    assert page.status_code == 200
    if present:
        assert f"<code>{present}</code>" in page.text
    if absent:
        assert f"<code>{absent}</code>" not in page.text
    if "federated" in params:
        assert "Each site&#39;s answer" in page.text or "Each site's answer" in page.text


def test_an_unknown_pspp_role_is_a_clear_error(node_app):
    assert sign_in(node_app, "ml-user").get("/console/catalog?pspp=colour").status_code == 400


def test_the_log_health_page_runs_the_real_verifier(node_app, busy):
    client = sign_in(node_app, "auditor")
    page = client.get("/console/audit/health")
    assert page.status_code == 200 and "latest checkpoint" in page.text
    ran = client.post("/console/audit/verify", data={"csrf": csrf_of(page.text)})
    assert ran.status_code == 200
    assert 'id="verify-status" class="verified"' in ran.text and "entries proven" in ran.text
    assert client.post("/console/audit/verify", data={"csrf": "no"}).status_code == 403
    assert sign_in(node_app, "steward").get("/console/audit/health").status_code == 403


def test_accepting_the_terms_changes_the_decision_shown(node_app):
    steels = "/console/datasets/aurora/steels-yield"
    client = sign_in(node_app, "partner")
    page = client.get(steels).text
    assert 'id="accept-aurora-steels-terms"' in page
    row = re.search(r"<td>read</td><td>research</td>\s*<td><span class=\"badge (\w+)\"", page)
    assert row and row.group(1) == "bad"  # not yet: the terms are not accepted
    done = client.post(
        "/console/datasets/aurora/steels-yield/accept",
        data={"agreement": "aurora-steels-terms", "csrf": csrf_of(page)},
    )
    assert done.status_code == 303 and done.headers["location"] == steels
    page = client.get(steels).text
    row = re.search(r"<td>read</td><td>research</td>\s*<td><span class=\"badge (\w+)\"", page)
    assert row and row.group(1) == "ok"
    refused = client.post(
        "/console/datasets/aurora/steels-yield/accept",
        data={"agreement": "aurora-steels-terms", "csrf": "forged"},
    )
    assert refused.status_code == 403
