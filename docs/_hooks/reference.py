"""Generated reference pages: the node config (from the pydantic models) and the HTTP API.

Used as an MkDocs hook (``hooks:`` in ``mkdocs.yml``): the pages ``reference/config.md`` and
``reference/api.md`` are generated at build time and never written to ``docs/``. Run as a script
to print them: ``python docs/_hooks/reference.py config|api``.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

_SRC = Path(__file__).resolve().parents[2] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

__all__ = ["api_reference", "config_models", "config_reference", "missing_descriptions"]

# Examples where the type alone says too little; every other key's example comes from its
# default or its type.
_EXAMPLES: dict[str, Any] = {
    "NodeInfo.institution": "alpha",
    "NodeInfo.title": "Alpha Institute of Materials",
    "NodeInfo.public_url": "https://matgate.alpha.example",
    "StoreConfig.url": "postgresql+psycopg://reader@db.alpha.example/lab",
    "StoreConfig.path": "stores/tensile",
    "StoreConfig.schemas": ["public"],
    "StoreConfig.tables": ["public.tensile_tests"],
    "IssuerConfig.issuer": "https://idp.alpha.example",
    "IssuerConfig.institution": "alpha",
    "IssuerConfig.audience": "https://matgate.alpha.example",
    "IssuerConfig.jwks_url": "https://idp.alpha.example/jwks.json",
    "IssuerConfig.jwks": {"keys": []},
    "PeerConfig.institution": "beta",
    "PeerConfig.url": "https://matgate.beta.example",
    "PeerConfig.public_url": "https://matgate.beta.example",
    "PeerConfig.jwks_url": "https://matgate.beta.example/.well-known/jwks.json",
    "PeerConfig.jwks": {"keys": []},
    "NetworkConfig.allow": ["10.20.0.0/16", "idp.internal"],
    "Dataset.institution": "alpha",
    "Dataset.name": "ni-superalloys",
    "Dataset.title": "Nickel superalloy creep and tensile tests",
    "Dataset.creators": ["A. Researcher"],
    "Dataset.created": dt.date(2025, 4, 1),
    "Dataset.keywords": ["superalloy", "creep"],
    "Dataset.method": "tensile test, ASTM E8",
    "Dataset.persistent_id": "doi:10.1234/alpha.ni",
    "Dataset.license": "CC-BY-4.0",
    "Dataset.citation": "Alpha Institute (2025), Ni superalloys, doi:10.1234/alpha.ni",
    "Dataset.embargo_until": dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    "Dataset.embargo_column": "release_at",
    "Store.store": "lab",
    "Store.table": "ni_superalloys",
    "Column.name": "yield_strength_mpa",
    "Column.unit": "MPa",
    "PolicyConfig.mask_salt": "a-long-random-secret",
    "PolicyConfig.purposes": ["benchmarking"],
    "CustomLicence.id": "LicenseRef-alpha-terms",
    "CustomLicence.title": "Alpha terms of use",
    "CustomLicence.requires_agreement": "alpha-terms",
    "AgreementSpec.id": "alpha-terms",
    "AgreementSpec.title": "Alpha data terms",
    "AgreementSpec.terms": "Research use only; cite the dataset; do not redistribute.",
    "AgreementSpec.dataset": "alpha/ni-superalloys",
    "AgreementSpec.institution": "alpha",
    "AgreementSpec.valid_until": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    "AgreementSpec.acceptance_days": 365,
    "PolicyLine.role": "partner",
    "PolicyLine.user": "beta:bob",
    "PolicyLine.institution": "beta",
    "PolicyLine.domain": "alpha",
    "PolicyLine.dataset": "tensile-*",
    "PolicyLine.purpose": "research",
    "PolicyLine.keep": ["composition", "pspp:property"],
    "PolicyLine.withhold": ["sensitivity:personal", "operator"],
    "PolicyLine.rows": "year >= 2020",
    "PolicyLine.agreement": "alpha-terms",
    "RoleAssignment.user": "beta:bob",
    "RoleAssignment.institution": "beta",
    "RoleAssignment.domain": "alpha",
}


def config_models() -> list[tuple[str, type[BaseModel]]]:
    """Every config model reachable from the node config, with the TOML table it is written as."""
    from gateway.config import NodeConfig
    from policies.config import PolicyConfig

    out: list[tuple[str, type[BaseModel]]] = []
    seen: set[type[BaseModel]] = set()

    def walk(table: str, model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((table, model))
        for name, field in model.model_fields.items():
            for sub, many in _submodels(field.annotation):
                if table == "" and name == "policy":
                    continue
                if name == "stores":
                    key = "[stores.NAME]"
                else:
                    inner = table.strip("[]") + "." if table else ""
                    key = f"[[{inner}{name}]]" if many else f"[{inner}{name}]"
                walk(key, sub)

    walk("", NodeConfig)
    walk("[policy]", PolicyConfig)
    return out


def _submodels(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    found = []
    for arg in typing.get_args(annotation):
        for sub, many in _submodels(arg):
            found.append((sub, many or origin in (tuple, list, dict)))
    return found


def missing_descriptions() -> list[str]:
    """``Model.field`` of every config field that has no description."""
    return [
        f"{model.__name__}.{name}"
        for _, model in config_models()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " \\| ".join(parts) + (" (optional)" if type(None) in args else "")
    if origin in (tuple, list):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type(args[1])}" if args else "table"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f'`"{m.value}"`' for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    names |= {dt.date: "date", dt.datetime: "date-time (with zone)", Any: "any", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(its defaults)"
    if isinstance(value, enum.Enum):
        value = value.value
    return "unset" if value is None else f"`{_toml(value)}`"


def _example(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    key = f"{model.__name__}.{name}"
    if _submodels(field.annotation):
        return "see its table"
    if key in _EXAMPLES:
        value = _EXAMPLES[key]
    elif field.examples:
        value = field.examples[0]
    else:
        value = _from_type(field.annotation)
        if value is None and not field.is_required():
            value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel) or value is None:
        return "see its table"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{name} = {_toml(value)}`"


def _from_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation)).value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None) and (found := _from_type(arg)) is not None:
                return found
    if annotation is bool:
        return True
    return None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if value is None:
        return "(unset)"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, enum.Enum):
        return json.dumps(value.value)
    return json.dumps(value)


def config_reference() -> str:
    """The node config reference as Markdown, one table per config model."""
    out = [
        "# Node config reference",
        "",
        "Generated from the pydantic models in `src/gateway/config.py`, `src/policies/config.py`"
        " and `src/connectors/datasets.py` each time the site is built. A node's TOML file is"
        " validated on load; an error names the file, the line and the key (see"
        " [getting started](../getting-started.md)). Unknown keys are refused.",
        "",
    ]
    out += _settings_reference()
    for table, model in config_models():
        heading = table or "top level"
        out += [f"## {model.__name__}", "", f"Written as `{heading}`." if table else "", ""]
        doc = (model.__doc__ or "").strip().split("\n\n")[0]
        out += [" ".join(doc.split()), ""]
        out += ["| key | type | default | description | example |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            desc = " ".join((field.description or "").split()).replace("|", "\\|")
            row = [f"`{name}`", _type(field.annotation), _default(field), desc]
            row.append(_example(model, name, field).replace("|", "\\|"))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def _settings_reference() -> list[str]:
    from gateway.settings import Settings

    out = [
        "## Process settings (environment)",
        "",
        "How a process runs a node, as opposed to what it serves: environment variables (or a"
        " `.env` file), each also a `matgate serve` option where one exists.",
        "",
        "| variable | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        desc = " ".join((field.description or "").split()).replace("|", "\\|")
        row = [f"`MATGATE_{name.upper()}`", _type(field.annotation), _default(field), desc]
        out.append("| " + " | ".join(row) + " |")
    return [*out, ""]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of a node with an empty config (the routes do not depend on it)."""
    from gateway.app import create_app
    from gateway.config import NodeConfig
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        config = NodeConfig.model_validate({"node": {"institution": "example"}})
        app = create_app(Settings(data_dir=Path(tmp), log_level="warning"), config)
        return app.openapi()


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    if "anyOf" in schema:
        parts = [_schema_type(s) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " \\| ".join(parts) + (" (optional)" if nullable else "")
    if schema.get("type") == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return str(schema.get("type", "any"))


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def api_reference(doc: dict[str, Any] | None = None) -> str:
    """The HTTP API reference as Markdown, rendered from the node's OpenAPI document."""
    doc = doc or openapi_document()
    out = [
        "# HTTP API reference",
        "",
        f"Rendered at build time from the OpenAPI document of matgate {doc['info']['version']}"
        " (a running node serves the same document at `/openapi.json`, and browses it with"
        " Swagger UI at `/docs` and ReDoc at `/redoc`, both served by the node itself, so they"
        " work offline). Every request except `/healthz`, `/readyz`, `/metrics` and the JWKS"
        " carries `Authorization: Bearer TOKEN`. Each operation lists the errors it can answer;"
        " every error is an `application/problem+json` body (RFC 9457, the"
        " [Problem](#schema-problem) schema) with `title`, `status`, `detail`, the"
        " `request_id` and, for refusals, the decision's `reasons` and `policy_version`, and"
        " the `agreements` to accept when that would lift it.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            tag = (op.get("tags") or ["node"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, op))
    for tag in sorted(by_tag):
        out += [f"## {tag}", ""]
        for method, path, op in by_tag[tag]:
            out += [f"### `{method} {path}`", ""]
            if op.get("summary"):
                out += [f"**{op['summary']}.** " + _cell(op.get("description")), ""]
            params = op.get("parameters", [])
            if params:
                out += [
                    "| parameter | in | type | required | description |",
                    "|---|---|---|---|---|",
                ]
                for p in params:
                    desc = p.get("description") or p.get("schema", {}).get("description")
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {_schema_type(p.get('schema', {}))} | "
                        f"{'yes' if p.get('required') else 'no'} | {_cell(desc)} |"
                    )
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, spec in body.items():
                out += [f"Request body (`{media}`): {_schema_type(spec.get('schema', {}))}", ""]
            codes = ", ".join(
                f"`{code}` {_cell(r.get('description'))}" for code, r in op["responses"].items()
            )
            out += [f"Responses: {codes}", ""]
    out += ["## Schemas", ""]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        out += [f"### {name} {{#schema-{name.lower()}}}", "", _cell(schema.get("description")), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            out += ["| field | type | required | description |", "|---|---|---|---|"]
            for field, spec in props.items():
                out.append(
                    f"| `{field}` | {_schema_type(spec)} | {'yes' if field in required else 'no'}"
                    f" | {_cell(spec.get('description'))} |"
                )
            out.append("")
        for example in schema.get("examples", [])[:1]:
            out += ["Example:", "", "```json", json.dumps(example, indent=2), "```", ""]
    return "\n".join(out)


# Pages other people write alongside this site: listed in the nav by name, shown once they exist.
OPTIONAL_PAGES = frozenset({"security.md", "compute-to-data.md", "console.md", "performance.md"})


def _prune(nav: list[Any], docs: Path) -> list[Any]:
    out: list[Any] = []
    for item in nav:
        title, value = next(iter(item.items())) if isinstance(item, dict) else (None, item)
        if isinstance(value, list):
            value = _prune(value, docs)
        elif value in OPTIONAL_PAGES and not (docs / value).is_file():
            continue
        out.append({title: value} if title is not None else value)
    return out


def _named(nav: list[Any]) -> set[str]:
    found: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found |= _named(value) if isinstance(value, list) else {value}
    return found


def on_config(config: Any) -> Any:
    """MkDocs hook: drop absent optional pages from the nav; add every other docs/*.md page."""
    docs = Path(config["docs_dir"])
    nav = _prune(list(config["nav"] or []), docs)
    named = _named(nav)
    more = [
        {_title(page): page.name} for page in sorted(docs.glob("*.md")) if page.name not in named
    ]
    if more:
        nav.append({"More": more})
    config["nav"] = nav
    return config


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").capitalize()


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated reference pages to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/config.md", content=config_reference()))
    files.append(File.generated(config, "reference/api.md", content=api_reference()))
    return files


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "config"
    print(config_reference() if which == "config" else api_reference())
