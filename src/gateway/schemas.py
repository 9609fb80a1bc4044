"""Request and response bodies of the HTTP API (what OpenAPI publishes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.datasets import Dataset
from gateway.formats import Format
from policies.decisions import Action

__all__ = [
    "AgreementTerms",
    "CatalogPage",
    "FederatedQueryBody",
    "Name",
    "NodeInfo",
    "PredictBody",
    "Problem",
    "Provenance",
    "ScreenBody",
    "SliceBody",
    "ValidationIssue",
]

_ORDER = r"^[+-]?[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Every list and string of a request is bounded (and every body too: see gateway.limits).
Name = Annotated[str, Field(min_length=1, max_length=128)]
"""A column (or role) name as a request may carry it; unknown ones are refused later."""
MAX_ORDER_TERMS = 16
MAX_METRICS = 100


class ValidationIssue(BaseModel):
    """One invalid field of a request (a 422's ``errors``)."""

    loc: list[str | int] = Field(description="Where: body, query, path or header, then names.")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="The kind of error (pydantic's error type).")


class AgreementTerms(BaseModel):
    """An agreement that, once accepted, lifts a refusal (a 403's ``agreements``)."""

    id: str = Field(description="The agreement id.", examples=["aurora-steels-terms"])
    title: str = Field(description="Its short title.")
    accept: str = Field(
        description="Where you can accept it (POST): your home node when the owner knows it, "
        "else the owner."
    )
    accept_here: str = Field(description="Where to accept it at the owning node itself (POST).")


class Problem(BaseModel):
    """An RFC 9457 problem document: every error answer of the node (``application/problem+json``).

    Beside the standard members it carries the request id (to find the request in the node's log)
    and, where they apply, the extension members below; others may follow (RFC 9457 allows it).
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://matgate.dev/problems/forbidden",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "agreement 'aurora-steels-terms' has not been accepted; accept "
                    "agreement 'aurora-steels-terms' with POST https://aurora.example/datasets/"
                    "aurora/steels-yield/agreements/aurora-steels-terms/accept",
                    "instance": "/datasets/aurora/steels-yield/slice",
                    "request_id": "5f0c3a7e9b1d4c2a8e6f1a2b3c4d5e6f",
                    "reasons": ["agreement 'aurora-steels-terms' has not been accepted"],
                    "policy_version": 3,
                }
            ]
        },
    )

    type: str = Field(description="URI of the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.", ge=400, le=599)
    detail: str = Field(description="What went wrong in this case, in one line.")
    instance: str = Field(description="The path that was asked for.")
    request_id: str = Field(
        description="The request's id (also the Matgate-Request-Id header), as the node's log "
        "and audit entries name it."
    )
    reasons: list[str] | None = Field(
        default=None, description="Why the policy refused (403), one reason per entry."
    )
    policy_version: int | None = Field(
        default=None, description="The version of the policy that decided (403)."
    )
    agreements: list[AgreementTerms] | None = Field(
        default=None, description="Agreements whose acceptance would lift the refusal (403)."
    )
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Each invalid field of the request (422)."
    )
    position: int | None = Field(
        default=None, description="Offset of a filter's syntax error in the filter text (400)."
    )
    filter: str | None = Field(default=None, description="The filter that failed to parse (400).")
    sites: dict[str, Any] | None = Field(
        default=None, description="Each site's status, for a federated query that failed."
    )
    retry_after: int | None = Field(
        default=None, description="Seconds until the next call is admitted (429)."
    )
    limit: int | None = Field(default=None, description="The limit that was exceeded, in bytes.")
    format: str | None = Field(default=None, description="The format that cannot be served (406).")


class SliceBody(BaseModel):
    """What to pull from a dataset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "purpose": "research",
                    "columns": ["ni_wt_pct", "test_temperature_c", "yield_strength_mpa"],
                    "filter": "yield_strength_mpa > 900",
                    "order_by": ["-yield_strength_mpa"],
                    "limit": 100,
                    "format": "arrow",
                }
            ]
        },
    )

    purpose: str = Field(
        description="Declared use, e.g. research, ml-training.", min_length=1, max_length=64
    )
    columns: list[Name] | None = Field(
        default=None,
        description="Columns to return; omitted: every column you may have.",
        max_length=1000,
    )
    filter: str | None = Field(
        default=None, description="OPTIMADE filter syntax.", max_length=20_000
    )
    order_by: list[Annotated[str, Field(max_length=129)]] = Field(
        default_factory=list,
        max_length=MAX_ORDER_TERMS,
        description="Columns to sort by; '-' before a name: descending.",
    )
    limit: int | None = Field(
        default=None, ge=0, le=1_000_000_000, description="At most this many rows."
    )
    offset: int = Field(default=0, ge=0, le=1_000_000_000, description="Skip this many rows first.")
    format: Format = Field(default=Format.ARROW, description="Response format.")

    @field_validator("order_by")
    @classmethod
    def _order(cls, value: list[str]) -> list[str]:
        import re

        for term in value:
            if not re.match(_ORDER, term):
                raise ValueError(f"bad order term {term!r}: a column name, optionally after + or -")
        return value


class CatalogPage(BaseModel):
    """Datasets a principal may discover, matching a search."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "count": 0,
                    "datasets": [],
                    "meta": {
                        "federated": True,
                        "complete": False,
                        "sites": {
                            "aurora": {"status": "ok", "count": 0},
                            "borealis": {"status": "timeout", "detail": "no answer within 5 s"},
                        },
                    },
                }
            ]
        }
    )

    count: int = Field(description="How many datasets matched.")
    datasets: list[Dataset] = Field(description="The matching datasets; each has its id.")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Warnings and federation status."
    )


class Provenance(BaseModel):
    """A slice's manifest and the node's signature over it (compact JWS)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "manifest": {
                        "request_id": "5f0c3a7e9b1d4c2a8e6f1a2b3c4d5e6f",
                        "dataset": "aurora/ni-superalloys",
                        "purpose": "research",
                        "rows": 100,
                        "sha256": "9f86d081884c7d659a2feaa0c55ad015...",
                    },
                    "signature": "eyJhbGciOiJFZERTQSJ9...",
                }
            ]
        }
    )

    manifest: dict[str, Any] = Field(
        description="Request id, node, dataset and version, query, policy version, purpose, "
        "principal, rows, content hash, licence and obligations, upstream manifests."
    )
    signature: str | None = Field(
        description="The node's signature over the manifest (compact JWS; verify it with the "
        "node's JWKS)."
    )


class NodeInfo(BaseModel):
    """Who this node is."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "institution": "aurora",
                    "title": "Aurora Materials Lab",
                    "url": "https://aurora.example",
                    "issuer": "https://aurora.example",
                    "jwks_uri": "https://aurora.example/.well-known/jwks.json",
                    "version": "0.1.0",
                }
            ]
        }
    )

    institution: str = Field(description="The institution this node serves (its domain).")
    title: str = Field(description="The node's human-readable name.")
    url: str = Field(description="The node's public base URL.")
    issuer: str = Field(description="The issuer (iss) of the tokens this node mints.")
    jwks_uri: str = Field(description="Where the node's public keys are.")
    version: str = Field(description="The matgate version the node runs.")


class PolicyEdit(BaseModel):
    """Policy lines and role assignments to add and to remove (see ``policies.lines``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "add": [
                        {
                            "role": "partner",
                            "domain": "aurora",
                            "dataset": "expt-gap",
                            "action": "read",
                            "purpose": "education",
                        }
                    ],
                    "remove": [],
                }
            ]
        },
    )

    add: list[Annotated[dict[str, Any], Field(max_length=32)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Policy lines and role assignments to add (see the policy reference).",
    )
    remove: list[Annotated[dict[str, Any], Field(max_length=32)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Lines and assignments to remove, written as they were added.",
    )


class PrincipalRef(BaseModel):
    """Someone whose access a steward wants explained."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200, description="Their user name (sub).")
    institution: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Their home institution."
    )
    namespace: str | None = Field(
        default=None,
        pattern=r"^([a-z0-9][a-z0-9_.-]{0,63}|https?://[^\s#]{1,200})$",
        description="Namespace of their issuer (their id is namespace:subject); default: "
        "the institution.",
    )
    roles: list[Name] = Field(
        default_factory=list, max_length=100, description="Their roles, e.g. member, partner."
    )


class ExplainBody(BaseModel):
    """A question for the policy: may this principal do this, and why?"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": "aurora/ni-superalloys",
                    "action": "read",
                    "purpose": "research",
                    "principal": {"subject": "pablo", "institution": "borealis", "roles": []},
                }
            ]
        },
    )

    dataset: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Dataset id, institution/name.",
    )
    action: Action = Field(description="discover, read, train, manage or audit.")
    purpose: str = Field(min_length=1, max_length=64, description="Declared use.")
    columns: list[Name] | None = Field(
        default=None, max_length=1000, description="Columns asked for; omitted: all."
    )
    principal: PrincipalRef | None = Field(default=None, description="Default: yourself.")


class RunBody(BaseModel):
    """A training run: the signed manifests it consumed and the model it produced."""

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "manifests": ["eyJhbGciOiJFZERTQSJ9..."],
                    "model_name": "ys-forest",
                    "model_version": "1",
                    "model_hash": "sha256:2c26b46b68ffc68ff99b453c1d304134...",
                    "metrics": {"r2": 0.91, "mae_mpa": 38.5},
                    "purpose": "ml-training",
                }
            ]
        },
    )

    manifests: list[Annotated[str, Field(min_length=1, max_length=32_768)]] = Field(
        min_length=1, max_length=1000, description="Signed manifests (JWS)."
    )
    model_name: str = Field(min_length=1, max_length=200, description="The model's name.")
    model_version: str = Field(
        default="1", min_length=1, max_length=100, description="The model's version."
    )
    model_hash: str = Field(
        default="", max_length=200, description="e.g. sha256 of the saved model"
    )
    metrics: dict[Name, float] = Field(
        default_factory=dict, max_length=MAX_METRICS, description="Metric name -> value."
    )
    purpose: str = Field(default="", max_length=64, description="What the model is for.")


class TrainBody(BaseModel):
    """A compute-to-data job: what to learn from a dataset's permitted slice."""

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "target": "yield_strength_mpa",
                    "purpose": "ml-training",
                    "estimator": "gaussian_process",
                    "filter": "test_temperature_c >= 600",
                    "model_name": "ys-gp",
                }
            ]
        },
    )

    target: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="Property column.")
    purpose: str = Field(
        default="ml-training", min_length=1, max_length=64, description="Declared use."
    )
    inputs: list[Name] | None = Field(
        default=None, max_length=1000, description="Default: by role."
    )
    roles: list[Name] = Field(
        default_factory=lambda: ["processing", "structure", "condition"],
        max_length=6,
        description="PSPP roles whose columns are the inputs (when inputs is omitted).",
    )
    columns: list[Name] | None = Field(
        default=None, max_length=1000, description="Columns of the slice to train on."
    )
    filter: str | None = Field(
        default=None, max_length=20_000, description="OPTIMADE filter: the rows to train on."
    )
    estimator: Literal["random_forest", "gradient_boosting", "ridge", "gaussian_process"] = Field(
        default="random_forest", description="The scikit-learn model to fit."
    )
    cv: int | None = Field(
        default=5, ge=2, le=20, description="Cross-validation folds (null: none)."
    )
    random_state: int | None = Field(default=0, description="Seed, for reproducible runs.")
    model_name: str | None = Field(
        default=None, max_length=200, description="Name of the registered model."
    )
    model_version: str = Field(
        default="1", min_length=1, max_length=100, description="Its version."
    )


_Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Cell = float | int | bool | Annotated[str, Field(max_length=1000)] | None
Row = Annotated[dict[_Name, Cell], Field(max_length=1000)]


class PredictBody(BaseModel):
    """Rows of inputs for a model kept on the node; answered with rounded predictions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rows": [{"ni_wt_pct": 60.1, "cr_wt_pct": 19.5, "test_temperature_c": 760}],
                    "return_std": True,
                }
            ]
        },
    )

    rows: list[Row] = Field(
        min_length=1, max_length=10_000, description="One object per candidate: input -> value."
    )
    return_std: bool = Field(default=True, description="Also the model's spread, where it has one.")


class ScreenBody(BaseModel):
    """Inverse screening with a model kept on the node (see ``training.screening.screen``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "grid": {"test_temperature_c": [700, 800, 900]},
                    "fixed": {"ni_wt_pct": 60.0},
                    "constraints": {"pred_std": [None, 80]},
                    "maximize": True,
                    "top": 5,
                }
            ]
        },
    )

    candidates: list[Row] | None = Field(
        default=None, max_length=10_000, description="Candidates to rank, one object each."
    )
    grid: dict[_Name, Annotated[list[Cell], Field(max_length=1000)]] | None = Field(
        default=None, max_length=50, description="Input -> values; every combination is built."
    )
    ranges: dict[_Name, tuple[float, float]] | None = Field(
        default=None, max_length=50, description="Input -> (low, high), sampled by Latin hypercube."
    )
    samples: int = Field(
        default=0, ge=0, le=200_000, description="How many candidates to sample from ranges."
    )
    fixed: Row | None = Field(default=None, description="Inputs set alike for every candidate.")
    balance: _Name | None = Field(
        default=None, description="Weight-percent input set to 100 - rest."
    )
    constraints: dict[_Name, tuple[float | None, float | None]] | None = Field(
        default=None, max_length=50, description="Input or pred_mean/pred_std -> (low, high)."
    )
    maximize: bool = Field(default=True, description="Highest first (false: lowest first).")
    top: int = Field(default=20, ge=1, le=100, description="How many candidates to return.")
    acquisition: Literal["mean", "ei"] = Field(
        default="mean", description="Rank by predicted mean or by expected improvement."
    )
    best_so_far: float | None = Field(
        default=None, description="Your best value, for expected improvement (required with 'ei')."
    )
    random_state: int | None = Field(default=0, description="Seed of the sampling.")


_DATASET_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$"


class FederatedQueryBody(BaseModel):
    """One filter over compatible datasets of several sites, unioned with a ``site`` column."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "datasets": ["aurora/expt-gap", "cygnus/halide-gaps"],
                    "columns": ["formula", "band_gap_ev"],
                    "filter": "band_gap_ev > 2",
                    "purpose": "research",
                    "format": "json",
                }
            ]
        },
    )

    datasets: list[Annotated[str, Field(pattern=_DATASET_ID)]] = Field(
        min_length=1, max_length=50, description="Dataset ids, 'institution/name'."
    )
    columns: list[Name] | None = Field(
        default=None,
        max_length=1000,
        description="Columns to union (same name, PSPP role, type and unit everywhere); "
        "omitted: every column, and then the schemas must agree entirely.",
    )
    filter: str | None = Field(
        default=None, description="OPTIMADE filter syntax.", max_length=20_000
    )
    purpose: str = Field(min_length=1, max_length=64, description="Declared use.")
    require_all: bool = Field(default=False, description="A partial result is an error.")
    limit: int | None = Field(default=None, ge=0, le=1_000_000_000, description="Rows per site.")
    deadline: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds for the whole query (default: peers')."
    )
    format: Literal["arrow", "json"] = Field(default="arrow", description="Response format.")
