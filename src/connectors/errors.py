"""The exceptions of the connectors room.

The tree::

    ConnectorError
    ├── FilterError            .position: 0-based character offset into the filter text, or None
    │   ├── FilterSyntaxError  the text is not a filter this gateway can run
    │   ├── UnknownColumnError the filter names a column the dataset does not have
    │   └── FilterTypeError    a value or operator does not fit the column's type
    ├── QueryError             a Query is malformed (unknown column, negative limit or offset)
    ├── TableError             a table name is malformed, escapes its store, or does not exist
    ├── SchemaMismatchError    a dataset's declared schema does not match the store; .problems
    └── StoreError             a store cannot be reached or fails a query

The gateway maps ``FilterError`` and ``QueryError`` to 400, ``TableError`` and
``SchemaMismatchError`` to 422, ``StoreError`` to 503. None of these import a web framework.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConnectorError",
    "FilterError",
    "FilterSyntaxError",
    "FilterTypeError",
    "QueryError",
    "SchemaMismatchError",
    "StoreError",
    "TableError",
    "UnknownColumnError",
]


class ConnectorError(Exception):
    """Base of every error raised by a connector or by the filter language."""


class FilterError(ConnectorError):
    """A filter cannot be run; ``position`` points into the filter text when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class FilterSyntaxError(FilterError):
    """The filter text does not parse, or uses a construct this gateway does not support."""


class UnknownColumnError(FilterError):
    """The filter names a column that the dataset does not have."""

    def __init__(self, column: str, suggestion: str | None, position: int | None = None) -> None:
        where = f" at {position}" if position is not None else ""
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown column {column!r}{where}{hint}", position)
        self.column = column
        self.suggestion = suggestion


class FilterTypeError(FilterError):
    """A value or an operator does not fit the type of the column it is applied to."""


class QueryError(ConnectorError):
    """A Query is malformed: unknown columns, negative limit or offset, bad masks."""


class TableError(ConnectorError):
    """A table name is malformed, escapes its store, or names nothing in the store."""


class SchemaMismatchError(ConnectorError):
    """A dataset's declared schema does not match the store; ``problems`` lists each one."""

    def __init__(self, dataset: str, problems: Sequence[str]) -> None:
        self.dataset = dataset
        self.problems = tuple(problems)
        listed = "; ".join(self.problems)
        super().__init__(f"dataset {dataset!r} does not match its store: {listed}")


class StoreError(ConnectorError):
    """A store cannot be reached, or fails while running a query."""
