"""Request and response bodies of the HTTP API (what OpenAPI publishes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.datasets import Dataset
from gateway.formats import Format
from policies.decisions import Action

__all__ = [
    "CatalogPage",
    "FederatedQueryBody",
    "Name",
    "NodeInfo",
    "PredictBody",
    "Problem",
    "Provenance",
    "ScreenBody",
    "SliceBody",
]

_ORDER = r"^[+-]?[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Every list and string of a request is bounded (and every body too: see gateway.limits).
Name = Annotated[str, Field(min_length=1, max_length=128)]
"""A column (or role) name as a request may carry it; unknown ones are refused later."""
MAX_ORDER_TERMS = 16
MAX_METRICS = 100


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class SliceBody(BaseModel):
    """What to pull from a dataset."""

    model_config = ConfigDict(extra="forbid")

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
    limit: int | None = Field(default=None, ge=0, le=1_000_000_000)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
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
    """One page of the datasets a principal may discover that match a search, by id."""

    count: int = Field(description="Datasets on this page.")
    datasets: list[Dataset]
    next: str | None = Field(
        default=None,
        description="Cursor of the next page (pass it as `cursor`); null on the last page.",
    )
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Warnings and federation status."
    )


class Provenance(BaseModel):
    """A slice's manifest and the node's signature over it (compact JWS)."""

    manifest: dict[str, Any]
    signature: str | None


class NodeInfo(BaseModel):
    """Who this node is."""

    institution: str
    title: str
    url: str
    issuer: str
    jwks_uri: str
    version: str


class PolicyEdit(BaseModel):
    """Policy lines and role assignments to add and to remove (see ``policies.lines``)."""

    model_config = ConfigDict(extra="forbid")

    add: list[Annotated[dict[str, Any], Field(max_length=32)]] = Field(
        default_factory=list, max_length=1000
    )
    remove: list[Annotated[dict[str, Any], Field(max_length=32)]] = Field(
        default_factory=list, max_length=1000
    )


class PrincipalRef(BaseModel):
    """Someone whose access a steward wants explained."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200)
    institution: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    namespace: str | None = Field(
        default=None,
        pattern=r"^([a-z0-9][a-z0-9_.-]{0,63}|https?://[^\s#]{1,200})$",
        description="Namespace of their issuer (their id is namespace:subject); default: "
        "the institution.",
    )
    roles: list[Name] = Field(default_factory=list, max_length=100)


class ExplainBody(BaseModel):
    """A question for the policy: may this principal do this, and why?"""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$")
    action: Action
    purpose: str = Field(min_length=1, max_length=64)
    columns: list[Name] | None = Field(default=None, max_length=1000)
    principal: PrincipalRef | None = Field(default=None, description="Default: yourself.")


class RunBody(BaseModel):
    """A training run: the signed manifests it consumed and the model it produced."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    manifests: list[Annotated[str, Field(min_length=1, max_length=32_768)]] = Field(
        min_length=1, max_length=1000, description="Signed manifests (JWS)."
    )
    model_name: str = Field(min_length=1, max_length=200)
    model_version: str = Field(default="1", min_length=1, max_length=100)
    model_hash: str = Field(
        default="", max_length=200, description="e.g. sha256 of the saved model"
    )
    metrics: dict[Name, float] = Field(default_factory=dict, max_length=MAX_METRICS)
    purpose: str = Field(default="", max_length=64)


class TrainBody(BaseModel):
    """A compute-to-data job: what to learn from a dataset's permitted slice."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    target: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="Property column.")
    purpose: str = Field(default="ml-training", min_length=1, max_length=64)
    inputs: list[Name] | None = Field(
        default=None, max_length=1000, description="Default: by role."
    )
    roles: list[Name] = Field(
        default_factory=lambda: ["processing", "structure", "condition"], max_length=6
    )
    columns: list[Name] | None = Field(default=None, max_length=1000)
    filter: str | None = Field(default=None, max_length=20_000)
    estimator: Literal["random_forest", "gradient_boosting", "ridge", "gaussian_process"] = (
        "random_forest"
    )
    cv: int | None = Field(default=5, ge=2, le=20)
    random_state: int | None = 0
    model_name: str | None = Field(default=None, max_length=200)
    model_version: str = Field(default="1", min_length=1, max_length=100)


_Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Cell = float | int | bool | Annotated[str, Field(max_length=1000)] | None
Row = Annotated[dict[_Name, Cell], Field(max_length=1000)]


class PredictBody(BaseModel):
    """Rows of inputs for a model kept on the node; answered with rounded predictions."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(
        min_length=1, max_length=10_000, description="One object per candidate: input -> value."
    )
    return_std: bool = Field(default=True, description="Also the model's spread, where it has one.")


class ScreenBody(BaseModel):
    """Inverse screening with a model kept on the node (see ``training.screening.screen``)."""

    model_config = ConfigDict(extra="forbid")

    candidates: list[Row] | None = Field(default=None, max_length=10_000)
    grid: dict[_Name, Annotated[list[Cell], Field(max_length=1000)]] | None = Field(
        default=None, max_length=50, description="Input -> values; every combination is built."
    )
    ranges: dict[_Name, tuple[float, float]] | None = Field(
        default=None, max_length=50, description="Input -> (low, high), sampled by Latin hypercube."
    )
    samples: int = Field(default=0, ge=0, le=200_000)
    fixed: Row | None = Field(default=None, description="Inputs set alike for every candidate.")
    balance: _Name | None = Field(
        default=None, description="Weight-percent input set to 100 - rest."
    )
    constraints: dict[_Name, tuple[float | None, float | None]] | None = Field(
        default=None, max_length=50, description="Input or pred_mean/pred_std -> (low, high)."
    )
    maximize: bool = True
    top: int = Field(default=20, ge=1, le=100)
    acquisition: Literal["mean", "ei"] = "mean"
    best_so_far: float | None = Field(
        default=None, description="Your best value, for expected improvement (required with 'ei')."
    )
    random_state: int | None = 0


_DATASET_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$"


class FederatedQueryBody(BaseModel):
    """One filter over compatible datasets of several sites, unioned with a ``site`` column."""

    model_config = ConfigDict(extra="forbid")

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
