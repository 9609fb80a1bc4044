"""The Delta Sharing routes under ``/delta-sharing`` (the open protocol's REST API).

Each route parses, calls one function of ``shares``, ``tables`` or ``files``, and answers in the
protocol's shapes; matgate's errors become ``{"errorCode", "message"}`` with the same status.
Every route needs a bearer token except a file's signed URL, which is its own credential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import CurrentPrincipal, NodeDep
from gateway.errors import MatgateError
from gateway.faces.delta_sharing import admin, files, paging, shares, tables
from gateway.openapi import errors

__all__ = ["admin_router", "router"]

router = APIRouter(prefix="/delta-sharing", tags=["delta-sharing"], include_in_schema=False)
NDJSON = "application/x-ndjson; charset=utf-8"
_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    503: "TEMPORARILY_UNAVAILABLE",
}
MaxResults = Annotated[int | None, Query(alias="maxResults")]
PageToken = Annotated[str | None, Query(alias="pageToken", max_length=paging.TOKEN_MAX)]


class QueryRequest(BaseModel):
    """The body of a table query (fields this server does not use are ignored)."""

    model_config = ConfigDict(extra="ignore")

    predicateHints: list[str] | None = Field(default=None, max_length=1000)
    jsonPredicateHints: str | None = Field(default=None, max_length=100_000)
    limitHint: int | None = None
    version: int | None = None
    timestamp: str | None = Field(default=None, max_length=64)
    startingVersion: int | None = None


def _answer(work: Callable[[], Response]) -> Response:
    try:
        return work()
    except MatgateError as exc:
        code = _CODES.get(exc.status, "INTERNAL_ERROR")
        return JSONResponse({"errorCode": code, "message": exc.detail}, status_code=exc.status)


def _json(body: dict[str, Any]) -> Response:
    return JSONResponse(body, media_type="application/json; charset=utf-8")


_NO_STORE = {"Cache-Control": "no-store"}  # bearer tokens and signed URLs stay out of caches


def _lines(found: tuple[int, Iterator[str]]) -> Response:
    version, lines = found
    return StreamingResponse(
        (line + "\n" for line in lines),
        media_type=NDJSON,
        headers={"Delta-Table-Version": str(version), **_NO_STORE},
    )


@router.get("/profile")
def get_profile(
    node: NodeDep, principal: CurrentPrincipal, authorization: Annotated[str, Header()]
) -> Response:
    """A profile file for the Delta Sharing clients, carrying your own bearer token."""
    token = authorization.partition(" ")[2]
    return _answer(lambda: JSONResponse(tables.profile(node, principal, token), headers=_NO_STORE))


@router.get("/shares")
def list_shares(
    node: NodeDep,
    principal: CurrentPrincipal,
    max_results: MaxResults = None,
    token: PageToken = None,
) -> Response:
    """The shares offered to you."""
    return _answer(lambda: _json(shares.list_shares(node, principal, max_results, token)))


@router.get("/shares/{share}")
def get_share(share: str, node: NodeDep, principal: CurrentPrincipal) -> Response:
    """One share."""
    return _answer(lambda: _json(shares.get_share(node, principal, share)))


@router.get("/shares/{share}/schemas")
def list_schemas(
    share: str,
    node: NodeDep,
    principal: CurrentPrincipal,
    max_results: MaxResults = None,
    token: PageToken = None,
) -> Response:
    """The schemas of a share."""
    return _answer(lambda: _json(shares.list_schemas(node, principal, share, max_results, token)))


@router.get("/shares/{share}/schemas/{schema}/tables")
def list_tables(
    share: str,
    schema: str,
    node: NodeDep,
    principal: CurrentPrincipal,
    max_results: MaxResults = None,
    token: PageToken = None,
) -> Response:
    """The tables of a schema that you may discover."""
    return _answer(
        lambda: _json(shares.list_tables(node, principal, share, schema, max_results, token))
    )


@router.get("/shares/{share}/all-tables")
def all_tables(
    share: str,
    node: NodeDep,
    principal: CurrentPrincipal,
    max_results: MaxResults = None,
    token: PageToken = None,
) -> Response:
    """Every table of a share that you may discover."""
    return _answer(lambda: _json(shares.all_tables(node, principal, share, max_results, token)))


@router.api_route(
    "/shares/{share}/schemas/{schema}/tables/{table}/version", methods=["GET", "HEAD"]
)
def table_version(
    share: str, schema: str, table: str, node: NodeDep, principal: CurrentPrincipal
) -> Response:
    """The table's version, in the Delta-Table-Version header."""

    def work() -> Response:
        version = tables.version(node, principal, tables.Table(share, schema, table))
        return Response(headers={"Delta-Table-Version": str(version)})

    return _answer(work)


@router.get("/shares/{share}/schemas/{schema}/tables/{table}/metadata")
def table_metadata(
    share: str, schema: str, table: str, node: NodeDep, principal: CurrentPrincipal
) -> Response:
    """The table's protocol and metadata (its schema as you would receive it)."""
    return _answer(
        lambda: _lines(tables.metadata(node, principal, tables.Table(share, schema, table)))
    )


@router.post("/shares/{share}/schemas/{schema}/tables/{table}/query")
def table_query(
    share: str,
    schema: str,
    table: str,
    node: NodeDep,
    principal: CurrentPrincipal,
    body: QueryRequest | None = None,
) -> Response:
    """The table's permitted slice as one Parquet file behind a signed URL."""
    body = body or QueryRequest()
    request = tables.QueryBody(
        predicate_hints=tuple(body.predicateHints) if body.predicateHints is not None else None,
        json_predicate_hints=body.jsonPredicateHints,
        limit_hint=body.limitHint,
        version=body.version,
        timestamp=body.timestamp,
        starting_version=body.startingVersion,
    )
    return _answer(
        lambda: _lines(tables.query(node, principal, tables.Table(share, schema, table), request))
    )


@router.api_route("/files/{rid}.parquet", methods=["GET", "HEAD"])
def get_file(
    rid: str,
    node: NodeDep,
    exp: Annotated[str | None, Query(max_length=20)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """A table file, by its signed URL: decided again and recorded on every fetch."""
    return _answer(
        lambda: FileResponse(
            files.check_download(node, rid, exp, sig), media_type="application/vnd.apache.parquet"
        )
    )


# -- stewards: shares offered through the API (native matgate routes, problem+json errors) ----

admin_router = APIRouter(prefix="/delta-sharing/admin", tags=["delta-sharing"])
ShareName = Annotated[str, Path(max_length=128, description="The share's name")]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    **errors(403, 404, 503),
    409: {"description": "The share is defined in the node's config file"},
}


class ShareOffer(BaseModel):
    """Datasets a steward offers to recipients, for one purpose."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(min_length=1, max_length=1000, description="Dataset names.")
    users: list[str] = Field(default=[], max_length=1000, description="subject@institution")
    institutions: list[str] = Field(default=[], max_length=1000, description="Every user of these.")
    purpose: str = Field(default="research", max_length=64, description="Purpose of the reads.")


@admin_router.get("/shares", summary="Every share of this node (stewards)", responses=errors(403))
def steward_shares(node: NodeDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """The node's shares, from its config and from the API, with their recipients."""
    return admin.list_for_steward(node, principal)


@admin_router.put(
    "/shares/{name}", summary="Offer or change a share (stewards)", responses=_CONFLICT
)
def offer_share(
    name: ShareName, offer: ShareOffer, node: NodeDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Offer datasets to recipients; what they get is still decided by policy, per query."""
    return admin.offer(node, principal, name, offer.model_dump())


@admin_router.delete(
    "/shares/{name}", summary="Withdraw a share (stewards)", status_code=204, responses=_CONFLICT
)
def withdraw_share(name: ShareName, node: NodeDep, principal: CurrentPrincipal) -> Response:
    """Withdraw a share offered through the API."""
    admin.withdraw(node, principal, name)
    return Response(status_code=204)
