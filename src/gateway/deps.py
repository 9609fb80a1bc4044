"""Dependencies injected into routes, as ``Annotated`` aliases that read like sentences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import Unauthorized
from gateway.node import Node
from gateway.security import authenticate
from policies.principals import ANONYMOUS, Principal

__all__ = [
    "OPTIONAL_AUTH",
    "AgreementId",
    "CurrentPrincipal",
    "DatasetName",
    "Domain",
    "Institution",
    "JobId",
    "MaybePrincipal",
    "NodeDep",
    "PathId",
    "PathSlug",
    "RequestId",
    "StoreName",
]

# Path parameters are bounded like every other string of a request.
PathSlug = Annotated[str, Path(min_length=1, max_length=64)]
"""An institution, dataset name or policy domain in a path."""
PathId = Annotated[str, Path(min_length=1, max_length=128)]
"""A request, job or agreement id in a path."""
Institution = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The institution that owns the dataset (the first half of its id).",
        examples=["aurora"],
    ),
]
DatasetName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The dataset's name within its institution (the second half of its id).",
        examples=["ni-superalloys"],
    ),
]
Domain = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="A policy domain: the institution whose datasets its lines govern.",
        examples=["aurora"],
    ),
]
RequestId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        description="The request id of a slice (its Matgate-Request-Id header).",
    ),
]
StoreName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The name of a store configured on this node.",
        examples=["lab"],
    ),
]
JobId = Annotated[
    str, Path(min_length=1, max_length=128, description="A compute-to-data job's id.")
]
AgreementId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        description="An agreement's id, as the dataset's agreements list it.",
        examples=["aurora-steels-terms"],
    ),
]

_bearer = HTTPBearer(auto_error=False, description="A JWT from an issuer this node trusts.")


async def get_node(request: Request) -> Node:
    """The node this app serves (async: nothing to wait for, so no thread to hop to)."""
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]


def current_principal(
    request: Request,
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of the request's bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    source = request.client.host if request.client else "unknown"
    principal = authenticate(node, credentials.credentials, source=source)
    if node.watcher is None:
        node.governance.sync()  # another replica may have changed the policy: decide on the newest
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def optional_principal(
    request: Request,
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The token's principal, or the anonymous one without a token (a bad token is still 401).

    The anonymous principal matches the policy's ``public`` lines only, so a route taking it
    answers exactly what the steward opened to everyone, and nothing where nothing is open.
    """
    if credentials is None and "authorization" not in request.headers:
        if node.watcher is None:
            node.governance.sync()
        return ANONYMOUS
    return current_principal(request, node, credentials)


MaybePrincipal = Annotated[Principal, Depends(optional_principal)]
OPTIONAL_AUTH: dict[str, Any] = {"security": [{}]}
"""``openapi_extra`` of a route taking ``MaybePrincipal``: its bearer token is optional."""
