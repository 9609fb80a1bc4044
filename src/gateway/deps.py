"""Dependencies injected into routes, as ``Annotated`` aliases that read like sentences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

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
    "LaterPrincipal",
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


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def principal_of(
    request: Request,
    node: Node,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    optional: bool,
) -> Principal:
    """Who the request's bearer token stands for; with ``optional``, the anonymous principal when
    there is no token at all (a bad token is 401 either way). Blocking: it may read the policy
    version and an issuer's keys."""
    if optional and credentials is None and "authorization" not in request.headers:
        if node.watcher is None:
            node.governance.sync()
        return ANONYMOUS
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    source = request.client.host if request.client else "unknown"
    principal = authenticate(node, credentials.credentials, source=source)
    if node.watcher is None:
        node.governance.sync()  # another replica may have changed the policy: decide on the newest
    return principal


def current_principal(request: Request, node: NodeDep, credentials: Credentials) -> Principal:
    """The principal of the request's bearer token; 401 without a valid one."""
    return principal_of(request, node, credentials, optional=False)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def optional_principal(request: Request, node: NodeDep, credentials: Credentials) -> Principal:
    """The token's principal, or the anonymous one without a token (a bad token is still 401).

    The anonymous principal matches the policy's ``public`` lines only, so a route taking it
    answers exactly what the steward opened to everyone, and nothing where nothing is open.
    """
    return principal_of(request, node, credentials, optional=True)


MaybePrincipal = Annotated[Principal, Depends(optional_principal)]


@dataclass(frozen=True)
class PendingPrincipal:
    """``optional_principal``, finished by the route itself in its own thread: a sync route that
    takes it hops to a worker thread once instead of twice (once for the principal, once for its
    body) when the token was verified before. The route calls ``resolve()`` before anything else.
    """

    node: Node
    principal: Principal
    synced: bool

    def resolve(self) -> Principal:
        """The principal, as ``optional_principal`` gives it: the policy checked for a newer
        version first (blocking)."""
        if not self.synced and self.node.watcher is None:
            self.node.governance.sync()
        return self.principal


async def pending_principal(
    request: Request, node: NodeDep, credentials: Credentials
) -> PendingPrincipal:
    """The request's principal without a thread when nothing needs checking (a token verified
    before, or no token at all); else resolved in a worker thread exactly as
    ``optional_principal`` resolves it, so a bad token is still refused before the body is read.
    """
    if credentials is None and "authorization" not in request.headers:
        return PendingPrincipal(node, ANONYMOUS, synced=False)
    if credentials is not None and credentials.scheme.lower() == "bearer":
        known = node.auth.remembered(credentials.credentials)
        if known is not None:
            return PendingPrincipal(node, known, synced=False)
    principal = await run_in_threadpool(principal_of, request, node, credentials, optional=True)
    return PendingPrincipal(node, principal, synced=True)


LaterPrincipal = Annotated[PendingPrincipal, Depends(pending_principal)]
OPTIONAL_AUTH: dict[str, Any] = {"security": [{}]}
"""``openapi_extra`` of a route taking ``MaybePrincipal``: its bearer token is optional."""
