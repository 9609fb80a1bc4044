"""The documentation: the site builds strictly, the config reference is complete, and the policy
reference's worked examples are what the real Governance decides."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.datasets import Dataset
from connectors.filterparser import unparse
from policies import Governance, PolicyConfig
from policies.principals import Principal

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "docs/_hooks/reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_has_a_description() -> None:
    assert _hooks().missing_descriptions() == []


def test_config_reference_names_every_key() -> None:
    hooks = _hooks()
    page = hooks.config_reference()
    for _, model in hooks.config_models():
        assert f"## {model.__name__}" in page
        for name in model.model_fields:
            assert f"| `{name}` |" in page, f"{model.__name__}.{name}"


def test_api_reference_lists_every_operation() -> None:
    hooks = _hooks()
    doc = hooks.openapi_document()
    page = hooks.api_reference(doc)
    for path, item in doc["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in page


def test_nav_names_only_existing_pages() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    generated = {"reference/config.md", "reference/api.md"}

    def pages(items: Any) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out += pages(value) if isinstance(value, list) else [value]
        return out

    optional = _hooks().OPTIONAL_PAGES  # written alongside; shown once they exist
    for page in pages(nav):
        assert page in generated | optional or (ROOT / "docs" / page).is_file(), page


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs not installed (pip install '.[docs]')",
)
def test_site_builds_strictly(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "reference/config/index.html").is_file()
    assert "institution_claim" in (tmp_path / "reference/config/index.html").read_text()
    assert "/federation/query" in (tmp_path / "reference/api/index.html").read_text()


# The worked examples of docs/policy.md: (id, lines, dataset changes, purpose, accepted agreement,
# expected: allowed, delivered columns, masks, withheld, row filter, a reason fragment).
R = {"role": "partner", "domain": "alpha", "action": "read"}
TERMS = {
    "id": "alpha-terms",
    "title": "Alpha terms",
    "terms": "Research only.",
    "institution": "alpha",
}
EMBARGO = {"embargo_until": dt.datetime(2027, 1, 1, tzinfo=dt.UTC)}
ALL = ("alloy", "yield_strength_mpa", "operator", "year")
EXAMPLES = [
    ("allow", [R], {}, "research", None, (True, ALL, {}, (), None, "allowed by 1")),
    (
        "withhold-drop",
        [{**R, "withhold": ["operator"]}],
        {},
        "research",
        None,
        (
            True,
            ("alloy", "yield_strength_mpa", "year"),
            {},
            ("operator",),
            None,
            "withheld: operator",
        ),
    ),
    (
        "withhold-hash",
        [{**R, "withhold": ["operator"], "mask": "hash"}],
        {},
        "research",
        None,
        (True, ALL, {"operator": "hash"}, (), None, "masked: operator (hash)"),
    ),
    (
        "deny-withhold",
        [R, {**R, "effect": "deny", "withhold": ["operator"]}],
        {},
        "research",
        None,
        (True, ("alloy", "yield_strength_mpa", "year"), {}, ("operator",), None, "withheld"),
    ),
    (
        "keep",
        [{**R, "keep": ["alloy", "pspp:property"]}],
        {},
        "research",
        None,
        (True, ("alloy", "yield_strength_mpa"), {}, ("operator", "year"), None, "withheld"),
    ),
    (
        "rows",
        [{**R, "rows": "year >= 2020"}],
        {},
        "research",
        None,
        (True, ALL, {}, (), "year >= 2020", "allowed"),
    ),
    (
        "deny-rows",
        [{**R, "rows": "year >= 2020"}, {**R, "effect": "deny", "rows": 'alloy = "IN718"'}],
        {},
        "research",
        None,
        (True, ALL, {}, (), 'year >= 2020 AND NOT alloy = "IN718"', "allowed"),
    ),
    (
        "deny",
        [R, {"effect": "deny", "institution": "beta", "domain": "alpha", "action": "read"}],
        {},
        "research",
        None,
        (False, (), {}, (), None, "denied by policy line"),
    ),
    (
        "purpose",
        [{**R, "purpose": "research"}],
        {},
        "commercial",
        None,
        (False, (), {}, (), None, "no policy line allows"),
    ),
    (
        "licence",
        [R],
        {"license": "CC-BY-NC-4.0"},
        "commercial",
        None,
        (False, (), {}, (), None, "non-commercial"),
    ),
    (
        "agreement",
        [{**R, "agreement": "alpha-terms"}],
        {},
        "research",
        None,
        (False, (), {}, (), None, "has not been accepted"),
    ),
    (
        "agreement-accepted",
        [{**R, "agreement": "alpha-terms"}],
        {},
        "research",
        "alpha-terms",
        (True, ALL, {}, (), None, "allowed"),
    ),
    (
        "public",
        [{"public": True, "domain": "alpha", "action": "read", "keep": ["alloy", "pspp:property"]}],
        {},
        "research",
        None,
        (True, ("alloy", "yield_strength_mpa"), {}, ("operator", "year"), None, "allowed"),
    ),
    ("embargo", [R], EMBARGO, "research", None, (False, (), {}, (), None, "under embargo")),
    (
        "embargo-waived",
        [{**R, "embargo": True}],
        EMBARGO,
        "research",
        None,
        (True, ALL, {}, (), None, "waived by policy"),
    ),
]
COLUMNS = [
    {"name": "alloy", "type": "string", "pspp": "identifier"},
    {"name": "yield_strength_mpa", "type": "float", "unit": "MPa", "pspp": "property"},
    {"name": "operator", "type": "string", "pspp": "identifier", "sensitivity": "personal"},
    {"name": "year", "type": "integer", "pspp": "condition"},
]


@pytest.mark.parametrize(
    ("lines", "changes", "purpose", "accept", "expected"),
    [pytest.param(*e[1:], id=e[0]) for e in EXAMPLES],
)
def test_policy_reference_examples(
    tmp_path: Path,
    lines: list[dict[str, Any]],
    changes: dict[str, Any],
    purpose: str,
    accept: str | None,
    expected: tuple[Any, ...],
) -> None:
    dataset = Dataset.model_validate(
        {
            "institution": "alpha",
            "name": "tensile",
            "title": "Tensile tests",
            "license": "CC-BY-4.0",
            "location": {"store": "lab", "table": "tensile"},
            "columns": COLUMNS,
            **changes,
        }
    )
    config = PolicyConfig.model_validate(
        {
            "agreements": [TERMS],
            "assignments": [{"institution": "beta", "role": "partner", "domain": "alpha"}],
            "lines": lines,
        }
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    gov = Governance(engine, config, clock=lambda: NOW, mask_key=b"k" * 32, mask_key_id="node:docs")
    try:
        gov.seed([dataset])
        bob = Principal("bob", "beta", frozenset({"partner"}))
        if accept:
            gov.accept(bob, accept)
        d = gov.decide(bob, dataset, "read", purpose)
        masks = {name: mask.kind.value for name, mask in d.masks.items()}
        rows = unparse(d.row_filter) if d.row_filter is not None else None
        allowed, columns, want_masks, withheld, want_rows, reason = expected
        assert (d.allowed, d.columns, masks, d.withheld, rows) == (
            allowed,
            columns,
            want_masks,
            withheld,
            want_rows,
        )
        assert any(reason in r for r in d.reasons), d.reasons
    finally:
        gov.close()
        engine.dispose()


def test_policy_page_shows_every_example() -> None:
    page = (ROOT / "docs/policy.md").read_text()
    for example in EXAMPLES:
        assert f"<!-- example: {example[0]} -->" in page, example[0]
