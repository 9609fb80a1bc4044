"""The neutral filter tree to a ``pyarrow.compute.Expression``, for pyarrow datasets.

Same semantics as ``sqlcompile``: Kleene logic (``&``, ``|`` and ``~`` on expressions are
``and_kleene``, ``or_kleene`` and ``invert``, all null-propagating), case-sensitive code-point
string comparisons, literal CONTAINS/STARTS/ENDS. The dataset scanner keeps only rows where the
expression is true, so unknown drops the row exactly as a SQL WHERE does.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.filters import (
    And,
    Compare,
    CompareOp,
    Filter,
    Known,
    Match,
    MatchOp,
    Not,
    Or,
    Value,
)

__all__ = ["compile_arrow"]

_COMPARE = {
    CompareOp.EQ: operator.eq,
    CompareOp.NE: operator.ne,
    CompareOp.LT: operator.lt,
    CompareOp.LE: operator.le,
    CompareOp.GT: operator.gt,
    CompareOp.GE: operator.ge,
}
_MATCH = {
    MatchOp.CONTAINS: pc.match_substring,
    MatchOp.STARTS: pc.starts_with,
    MatchOp.ENDS: pc.ends_with,
}


def _scalar(field: str, value: Value, schema: pa.Schema | None) -> Any:
    # Dates and timestamps arrive as ISO text (the filter language has no time literal).
    if schema is None or not isinstance(value, str) or schema.get_field_index(field) < 0:
        return value
    kind = schema.field(field).type
    if pa.types.is_timestamp(kind):
        moment = dt.datetime.fromisoformat(value)
        if kind.tz is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return pa.scalar(moment, kind)
    if pa.types.is_date(kind):
        return pa.scalar(dt.date.fromisoformat(value), kind)
    return value


def compile_arrow(node: Filter, schema: pa.Schema | None = None) -> pc.Expression:
    """The Arrow expression of a filter tree; ``schema`` turns ISO text into time scalars."""
    if isinstance(node, And):
        parts = [compile_arrow(i, schema) for i in node.items]
        return functools.reduce(operator.and_, parts) if parts else pc.scalar(True)
    if isinstance(node, Or):
        parts = [compile_arrow(i, schema) for i in node.items]
        return functools.reduce(operator.or_, parts) if parts else pc.scalar(False)
    if isinstance(node, Not):
        return ~compile_arrow(node.item, schema)
    column = pc.field(node.field)
    if isinstance(node, Known):
        return column.is_valid() if node.known else column.is_null()
    if isinstance(node, Match):
        return _MATCH[node.op](column, node.value)
    assert isinstance(node, Compare)
    result: pc.Expression = _COMPARE[node.op](column, _scalar(node.field, node.value, schema))
    return result
