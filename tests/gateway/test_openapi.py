"""Schemathesis over the whole OpenAPI schema, in-process and authenticated.

No generated input may cause a 5xx, every response must match the schema, and requests without
valid credentials must be refused.
"""

from __future__ import annotations

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
