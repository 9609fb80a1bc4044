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
    "NodeInfo",
    "Problem",
    "Provenance",
    "SliceBody",
]

_ORDER = r"^[+-]?[A-Za-z_][A-Za-z0-9_]{0,127}$"


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
    columns: list[str] | None = Field(
        default=None,
        description="Columns to return; omitted: every column you may have.",
        max_length=1000,
    )
    filter: str | None = Field(
        default=None, description="OPTIMADE filter syntax.", max_length=20_000
    )
    order_by: list[str] = Field(
        default_factory=list, description="Columns to sort by; '-' before a name: descending."
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
    """Datasets a principal may discover, matching a search."""

    count: int
    datasets: list[Dataset]
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

    add: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    remove: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


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
    roles: list[str] = Field(default_factory=list, max_length=100)


class ExplainBody(BaseModel):
    """A question for the policy: may this principal do this, and why?"""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$")
    action: Action
    purpose: str = Field(min_length=1, max_length=64)
    columns: list[str] | None = Field(default=None, max_length=1000)
    principal: PrincipalRef | None = Field(default=None, description="Default: yourself.")


class RunBody(BaseModel):
    """A training run: the signed manifests it consumed and the model it produced."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    manifests: list[str] = Field(
        min_length=1, max_length=1000, description="Signed manifests (JWS)."
    )
    model_name: str = Field(min_length=1, max_length=200)
    model_version: str = Field(default="1", min_length=1, max_length=100)
    model_hash: str = Field(
        default="", max_length=200, description="e.g. sha256 of the saved model"
    )
    metrics: dict[str, float] = Field(default_factory=dict)
    purpose: str = Field(default="", max_length=64)


class TrainBody(BaseModel):
    """A compute-to-data job: what to learn from a dataset's permitted slice."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    target: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="Property column.")
    purpose: str = Field(default="ml-training", min_length=1, max_length=64)
    inputs: list[str] | None = Field(default=None, max_length=1000, description="Default: by role.")
    roles: list[str] = Field(
        default_factory=lambda: ["processing", "structure", "condition"], max_length=6
    )
    columns: list[str] | None = Field(default=None, max_length=1000)
    filter: str | None = Field(default=None, max_length=20_000)
    estimator: Literal["random_forest", "gradient_boosting", "ridge", "gaussian_process"] = (
        "random_forest"
    )
    cv: int | None = Field(default=5, ge=2, le=20)
    random_state: int | None = 0
    model_name: str | None = Field(default=None, max_length=200)
    model_version: str = Field(default="1", min_length=1, max_length=100)


_DATASET_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$"


class FederatedQueryBody(BaseModel):
    """One filter over compatible datasets of several sites, unioned with a ``site`` column."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[Annotated[str, Field(pattern=_DATASET_ID)]] = Field(
        min_length=1, max_length=50, description="Dataset ids, 'institution/name'."
    )
    columns: list[str] | None = Field(
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
