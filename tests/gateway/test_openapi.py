"""Schemathesis over the whole OpenAPI schema, in-process and authenticated.

No generated input may cause a 5xx, every response must match the schema, and requests without
valid credentials must be refused.
"""

from __future__ import annotations

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Semantic refusals (a schema-valid dataset whose store has no such table) are 4xx by design, so
# the positive-data check does not apply; everything the issue asks for does.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


def _operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_api_conforms(app, tokens):
    headers = {"Authorization": f"Bearer {tokens['steward']}"}
    operations = _operations(app)
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()


def test_every_data_route_needs_credentials(app, api):
    public = {"/healthz", "/readyz", "/.well-known/jwks.json", "/info"}
    # the witness protocol (c2sp.org/tlog-witness) authenticates the checkpoint's signature,
    # not the caller; the witness key is public by design
    public |= {"/audit/witness", "/audit/witness/add-checkpoint"}
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        if path in public:
            continue
        concrete = path.replace("{institution}", "aurora").replace("{name}", "ni-superalloys")
        concrete = concrete.replace("{request_id}", "x")
        for method, operation in operations.items():
            # A route open to anonymous callers says so ({} among its security requirements) and
            # answers them what `public` may have; a bad token is refused everywhere.
            optional = {} in operation.get("security", [])
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                if optional and not headers:
                    continue
                r = api.request(method.upper(), concrete, headers=headers)
                assert r.status_code == 401, (method, path, r.status_code)
                checked += 1
    assert checked >= 10


# -- the document itself: described, and every error a problem document ----------------------

# c2sp.org/tlog-witness prescribes plain-text answers for a submission's errors.
TEXT_PROTOCOL = {("post", "/audit/witness/add-checkpoint")}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _operations_of(doc):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_parameter_and_field_is_described(app):
    doc = app.openapi()
    missing = []
    for method, path, operation in _operations_of(doc):
        for key in ("summary", "description"):
            if not operation.get(key):
                missing.append(f"{method} {path}: {key}")
        for parameter in operation.get("parameters", []):
            if not parameter.get("description"):
                missing.append(f"{method} {path}: parameter {parameter['name']}")
    for name, schema in doc["components"]["schemas"].items():
        if not schema.get("description"):
            missing.append(f"schema {name}")
        for field, prop in schema.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"schema {name}.{field}")
    assert missing == []


def test_request_and_response_models_have_examples(app):
    doc = app.openapi()
    named = {
        "Problem",
        "SliceBody",
        "CatalogPage",
        "NodeInfo",
        "Provenance",
        "ExplainBody",
        "PolicyEdit",
        "TrainBody",
        "PredictBody",
        "ScreenBody",
        "RunBody",
        "FederatedQueryBody",
    }
    schemas = doc["components"]["schemas"]
    lacking = {n for n in named if not schemas[n].get("examples")}
    assert lacking == set()


def test_every_error_answer_is_a_problem_document(app):
    doc = app.openapi()
    problem = doc["components"]["schemas"]["Problem"]
    for member in ("type", "title", "status", "detail", "instance", "request_id"):
        assert member in problem["required"], member
    for member in ("reasons", "policy_version", "agreements", "errors", "retry_after"):
        assert member in problem["properties"], member
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    checked = 0
    for method, path, operation in _operations_of(doc):
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            assert answer.get("description"), (method, path, status)
            if (method, path) in TEXT_PROTOCOL and status != "413":
                assert "application/problem+json" not in answer["content"]
                continue
            assert answer["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (
                method,
                path,
                status,
            )
            checked += 1
    assert checked >= 100


@pytest.mark.parametrize(
    ("method", "path", "expected", "absent"),
    [
        ("get", "/healthz", set(), {"401", "403", "404", "422", "503"}),
        ("get", "/info", set(), {"401", "422"}),
        ("get", "/catalog", {"401", "406", "422"}, {"403", "503"}),
        ("post", "/catalog", {"401", "403", "409", "413", "422", "503"}, {"429"}),
        ("get", "/datasets/{institution}/{name}/slice", {"400", "401", "403", "404"}, {"409"}),
        ("post", "/jobs/{job_id}/predict", {"413", "429"}, set()),
        ("get", "/audit/bundle", {"401", "403"}, {"422", "413"}),
    ],
)
def test_each_operation_lists_the_errors_it_can_answer(app, method, path, expected, absent):
    answers = set(app.openapi()["paths"][path][method]["responses"])
    errors = {s for s in answers if int(s) >= 400}
    assert expected <= errors
    assert not absent & errors


@pytest.mark.parametrize(
    ("persona", "method", "path", "kwargs", "status"),
    [
        (None, "get", "/audit/events", {}, 401),
        ("ml-user", "get", "/audit/events", {}, 403),
        ("auditor", "get", "/audit/events", {"params": {"limit": 0}}, 422),
        ("ml-user", "get", "/catalog/aurora/no-such-thing", {}, 404),
        ("ml-user", "get", "/catalog", {"params": {"format": "xml"}}, 406),
        (
            "ml-user",
            "get",
            "/datasets/aurora/ni-superalloys/slice",
            {"params": {"purpose": "research", "filter": "yield_strength_mpa >"}},
            400,
        ),
        (
            "partner",
            "get",
            "/datasets/aurora/steels-yield/slice",
            {"params": {"purpose": "research"}},
            403,
        ),
        ("ml-user", "post", "/explain", {"json": {"dataset": "x"}}, 422),
    ],
)
def test_real_errors_validate_against_the_declared_schema(
    app, api, auth, persona, method, path, kwargs, status
):
    doc = app.openapi()
    template = next(
        p
        for p in doc["paths"]
        if p == path or (p.count("/") == path.count("/") and "{" in p and _matches(p, path))
    )
    declared = doc["paths"][template][method]["responses"]
    assert str(status) in declared, (method, template, status)
    headers = auth[persona] if persona else {}
    r = api.request(method.upper(), path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    schema = {**_resolve(doc, PROBLEM_REF), "components": doc["components"]}
    jsonschema.validate(r.json(), schema, format_checker=jsonschema.FormatChecker())
    assert r.json()["request_id"] == r.headers["matgate-request-id"]


def _matches(template: str, path: str) -> bool:
    return all(
        t == p or (t.startswith("{") and t.endswith("}"))
        for t, p in zip(template.split("/"), path.split("/"), strict=True)
    )


def test_a_refusal_for_missing_terms_names_them_in_the_schema(app, api, auth):
    r = api.get(
        "/datasets/aurora/steels-yield/slice",
        params={"purpose": "research"},
        headers=auth["partner"],
    )
    assert r.status_code == 403
    problem = r.json()
    assert problem["policy_version"] >= 1 and problem["reasons"]
    (terms,) = problem["agreements"]
    assert terms["id"] == "aurora-steels-terms"
    assert terms["accept_here"].endswith(
        "/datasets/aurora/steels-yield/agreements/aurora-steels-terms/accept"
    )
    assert f"POST {terms['accept']}" in problem["detail"]
