"""The node's OpenAPI document: each operation's error answers, as the problem documents they are.

Routes declare the errors their service can raise (``responses=errors(403, 404)``); what the
shape of an operation implies is added here: 401 where a bearer token is read, 422 where a
parameter or body is validated, 413 (and 400, a malformed length) where a body is read. Every
error answer is then ``application/problem+json`` with the ``Problem`` schema, unless the route
described another media type itself (the tlog-witness protocol answers in plain text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.problems import PROBLEM
from gateway.schemas import Problem

__all__ = ["ERRORS", "errors", "install"]

ERRORS: dict[int, str] = {
    400: "Bad request: a malformed filter, parameter or body",
    401: "Missing, invalid or expired bearer token",
    403: "Refused by policy (the reasons and the policy version say why)",
    404: "No such resource, or one you may not discover",
    406: "None of the accepted media types can be served",
    409: "Conflicts with the resource's current state",
    413: "The request body, or the answer, exceeds a configured limit",
    422: "Well-formed, but invalid (the errors name each bad field)",
    429: "A budget is spent; Retry-After says when to come back",
    502: "A peer node answered wrongly",
    503: "A store, a peer or the audit log is unavailable; nothing was released or changed",
    504: "A peer node did not answer in time",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_JSON = ("application/json", PROBLEM)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer these error statuses."""
    return {status: {"description": ERRORS[status]} for status in statuses}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` build the document with problem+json error answers."""
    app.openapi = _builder(app)  # type: ignore[method-assign]


def _builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _with_problems(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def _with_problems(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            _error_answers(operation)
    # FastAPI's own validation-error schemas are replaced by Problem everywhere.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _implied(operation: dict[str, Any]) -> set[int]:
    implied: set[int] = set()
    if any(requirement for requirement in operation.get("security", [])):
        implied.add(401)
    if operation.get("parameters") or "requestBody" in operation:
        implied.add(422)
    if "requestBody" in operation:
        implied |= {400, 413}
    return implied


def _error_answers(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(declared | _implied(operation)):
        answer = responses.get(str(status), {})
        content = answer.get("content", {})
        if content and not set(content) <= set(_JSON):
            continue  # a protocol of its own (text answers), described by the route
        description = answer.get("description")
        if not description or description == "Validation Error":
            description = ERRORS.get(status, "Error")
        responses[str(status)] = {
            "description": description,
            "content": {PROBLEM: {"schema": _PROBLEM_REF}},
        }
    operation["responses"] = dict(sorted(responses.items()))
