"""What a dataset is: FAIR metadata and a PSPP-labelled column schema.

These are the closed vocabularies of the catalog (column types, PSPP roles, sensitivities) and the
validated records built from them. They live in ``connectors`` because every room needs them:
connectors check them against the stores, policies decide over them, the gateway serves them.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

__all__ = ["Column", "ColumnType", "Dataset", "PSPPRole", "Sensitivity", "Store"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ColumnType(StrEnum):
    """Logical column types that every connector maps to and from."""

    INTEGER = "integer"
    FLOAT = "float"
    STRING = "string"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"


class PSPPRole(StrEnum):
    """Where a column stands in the processing-structure-property-performance chain."""

    PROCESSING = "processing"
    STRUCTURE = "structure"
    PROPERTY = "property"
    PERFORMANCE = "performance"
    CONDITION = "condition"
    IDENTIFIER = "identifier"


class Sensitivity(StrEnum):
    """How carefully a column must be handled."""

    PUBLIC = "public"
    PERSONAL = "personal"
    CONFIDENTIAL = "confidential"


class Column(BaseModel):
    """One column of a dataset's schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Column name as the store has it.", pattern=_COLUMN.pattern)
    type: ColumnType = Field(description="Logical type.")
    unit: str | None = Field(
        default=None, max_length=64, description="Unit of measure (SI or customary), if any."
    )
    pspp: PSPPRole = Field(description="PSPP role of the column.")
    sensitivity: Sensitivity = Field(default=Sensitivity.PUBLIC, description="Handling class.")
    description: str = Field(default="", max_length=5_000, description="What the column holds.")
    synthetic: bool = Field(
        default=False, description="True when the column was added for demonstration, not measured."
    )
    nullable: bool = Field(
        default=True,
        description="False when every row has a value: files then declare the field not null.",
    )


class Store(BaseModel):
    """Where a dataset's rows live: a named store of the node and the table or file in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str = Field(description="Name of a store configured on the node.")
    table: str = Field(
        description=(
            "Table name (SQL: name or schema.name, within the store's configured scope), "
            "file or folder path relative to the store."
        ),
        min_length=1,
        max_length=1024,
    )


class Dataset(BaseModel):
    """A dataset registered in the catalog: FAIR metadata plus its column schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    institution: str = Field(
        description="Owning institution (the node's domain).", pattern=_NAME.pattern
    )
    name: str = Field(
        description="Dataset name, unique within the institution.", pattern=_NAME.pattern
    )
    # Bounded like every string of a request (registration is one): generous, never unbounded.
    title: str = Field(max_length=500, description="Short human-readable title.")
    description: str = Field(
        default="", max_length=50_000, description="What the dataset holds and how it was made."
    )
    creators: tuple[Annotated[str, Field(max_length=500)], ...] = Field(
        default=(), max_length=500, description="People or groups who made it."
    )
    created: dt.date | None = Field(default=None, description="Date the data was created.")
    modified: dt.date | None = Field(default=None, description="Date of its last change.")
    keywords: tuple[Annotated[str, Field(max_length=200)], ...] = Field(
        default=(), max_length=200, description="Words the catalog search finds."
    )
    method: str | None = Field(default=None, max_length=2_000, description="Method or instrument.")
    version: str = Field(
        default="1", max_length=100, description="Version of the data, in the manifest."
    )
    persistent_id: str | None = Field(
        default=None, max_length=500, description="DOI or other persistent id."
    )
    license: str = Field(max_length=200, description="SPDX licence id or LicenseRef-...")
    source: str | None = Field(
        default=None, max_length=5_000, description="Where the data comes from."
    )
    citation: str | None = Field(
        default=None, max_length=5_000, description="How to cite the data."
    )
    embargo_until: dt.datetime | None = Field(
        default=None, description="Before this instant only the owner (and named roles) may read."
    )
    embargo_column: str | None = Field(
        default=None,
        max_length=128,
        description="Timestamp column: a row is embargoed until its value.",
    )
    location: Store = Field(description="Store and table (or file) that hold the rows.")
    columns: tuple[Column, ...] = Field(
        min_length=1, max_length=10_000, description="Column schema: name, type, unit, PSPP role."
    )

    @model_validator(mode="before")
    @classmethod
    def _derived_id(cls, data: Any) -> Any:
        """``id`` is read-only: derived from institution and name, ignored in the input (so an
        entry as the node serves it, its name changed, can be registered as a copy)."""
        if isinstance(data, dict) and "id" in data:
            data = {k: v for k, v in data.items() if k != "id"}
        return data

    @computed_field(  # type: ignore[prop-decorator]
        description="The dataset id, ``institution/name``, as every call takes it (read-only: "
        "derived from institution and name, ignored in a request).",
        examples=["aurora/ni-superalloys"],
    )
    @property
    def id(self) -> str:
        """The dataset id, ``institution/name``."""
        return f"{self.institution}/{self.name}"

    def column(self, name: str) -> Column:
        """The column called ``name``; KeyError if there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in schema order."""
        return tuple(c.name for c in self.columns)

    @model_validator(mode="after")
    def _check_columns(self) -> Dataset:
        names = [c.name for c in self.columns]
        if not names:
            raise ValueError("a dataset needs at least one column")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(dupes)}")
        if self.embargo_column is not None:
            if self.embargo_column not in names:
                raise ValueError(f"embargo_column {self.embargo_column!r} is not a column")
            kind = self.column(self.embargo_column).type
            if kind not in (ColumnType.TIMESTAMP, ColumnType.DATE):
                raise ValueError(f"embargo_column {self.embargo_column!r} must be a timestamp")
        return self
