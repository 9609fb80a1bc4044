"""compile_arrow: Kleene logic and literal string matching on a pyarrow dataset."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from connectors.arrowcompile import compile_arrow
from connectors.filterparser import parse

TABLE = pa.table(
    {
        "id": [0, 1, 2, 3, 4],
        "x": [1, None, 3, 7, 5],
        "s": ["a%b", None, "A", "xa", "a_b"],
        "t": pa.array([0, 1_000_000, None, 3_000_000, 4_000_000], pa.timestamp("us")),
    }
)


def ids(text: str) -> list[int]:
    """Ids kept by the filter."""
    expression = compile_arrow(parse(text), TABLE.schema)
    return ds.dataset(TABLE).to_table(filter=expression).column("id").to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x > 2", [2, 3, 4]),
        ("NOT x > 2", [0]),
        ('NOT (x > 2 AND s = "A")', [0, 3, 4]),
        ("x > 2 OR s IS UNKNOWN", [1, 2, 3, 4]),
        ("x IS UNKNOWN", [1]),
        ('s CONTAINS "%"', [0]),
        ('s CONTAINS "_"', [4]),
        ('s STARTS "a"', [0, 4]),
        ('s ENDS "A"', [2]),
        ('s < "a"', [2]),
        ('t > "1970-01-01T00:00:02"', [3, 4]),
        ("x = 2.5 OR x = 3", [2]),
    ],
)
def test_filters(text: str, expected: list[int]) -> None:
    """Unknown drops the row; matches are literal and case-sensitive."""
    assert ids(text) == expected
