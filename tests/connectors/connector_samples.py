"""The sample rows every store test reads: ints, floats, hostile strings and NULLs."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

HOSTILE = [
    "",
    "a",
    "A",
    "a ",
    "abc",
    "ABC",
    "O'Brien",
    'say "hi"',
    "back\\slash",
    "\\'",
    "100%",
    "%",
    "_",
    "under_score",
    "a%b_c",
    "--",
    "x'; DROP TABLE samples; --",
    "ünïcødé",
    "日本語",
    "😀 emoji",
    "line\nbreak",
    "tab\tstop",
]
FLOATS = [0.5, -1.25, 3.0, 1e10, -0.0, 2.75]


def sample_frame() -> pd.DataFrame:
    """The reference rows: id, i (int), f (float), s (string), with NULLs in i, f and s."""
    rows = []
    for n in range(120):
        rows.append(
            {
                "id": n,
                "i": None if n % 7 == 3 else (n % 9) - 4,
                "f": None if n % 5 == 1 else FLOATS[n % len(FLOATS)],
                "s": None if n % 11 == 5 else HOSTILE[n % len(HOSTILE)],
            }
        )
    frame = pd.DataFrame(rows)
    return frame.astype({"id": "Int64", "i": "Int64", "f": "Float64", "s": "string"})


def sample_arrow() -> pa.Table:
    """The reference rows as Arrow, in the canonical types."""
    schema = pa.schema(
        [("id", pa.int64()), ("i", pa.int64()), ("f", pa.float64()), ("s", pa.string())]
    )
    return pa.Table.from_pandas(sample_frame(), schema=schema, preserve_index=False)
