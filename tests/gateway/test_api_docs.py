"""Swagger UI (``/docs``) and ReDoc (``/redoc``) come from the node itself: every script and
stylesheet is same-origin, and in Chromium, with every other host blocked, both render the
node's operations without a script error or CSP violation. Without Chromium the browser test
skips, unless CI is set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

CHROMIUM = shutil.which("chromium")
PAGES = ("/docs", "/redoc")


class _Assets(HTMLParser):
    """The URLs a page loads: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("path", PAGES)
def test_docs_pages_load_only_the_nodes_own_assets(api, path):
    page = api.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it
    base = str(page.url)
    urls = [urljoin(base, u) for u in _assets(page.text)]
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        assert urlsplit(url).netloc == urlsplit(base).netloc, url
        got = api.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 0


def test_only_the_bundled_assets_are_served(api):
    assert api.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    for name in ("core.py", "..%2F__init__.py", "LICENSE"):
        r = api.get(f"/docs/assets/{name}")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set: install chromium and playwright)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium driven by Playwright, headless."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed")
    if CHROMIUM is None:
        _skip_or_fail("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/docs", ".opblock-summary"), ("/redoc", "[data-section-id^='operation/']")],
)
def test_docs_render_offline_in_a_browser(browser, live, app, path, operation):
    origin = urlsplit(live).netloc
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_the_node(route: Any) -> None:
        if urlsplit(route.request.url).netloc in (origin, ""):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_node)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(live + path)
        page.wait_for_selector(operation, timeout=30_000)
        shown = page.locator(operation).count()
        text = page.inner_text("body")
    finally:
        context.close()
    operations = sum(len(ops) for ops in app.openapi()["paths"].values())
    assert shown >= min(10, operations)
    assert "Search the catalog" in text
    # ReDoc's footer links a logo on Redocly's CDN: the CSP refuses it (and ReDoc hides it)
    refused_logo = "https://cdn.redoc.ly/redoc/logo-mini.svg' violates"
    assert [e for e in errors if refused_logo not in e] == []
    assert elsewhere == []
