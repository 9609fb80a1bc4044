"""Random filters: every store returns the rows a Kleene-logic evaluation in pandas returns."""

from __future__ import annotations

import pandas as pd
import pytest
from connector_samples import FLOATS, HOSTILE, sample_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Connector
from connectors.filterparser import parse, unparse
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
)
from connectors.query import Query

FRAME = sample_frame()
TEXT = st.sampled_from(HOSTILE) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4
)
OPS = st.sampled_from(list(CompareOp))


def leaves() -> st.SearchStrategy[Filter]:
    """Comparisons, IS KNOWN/UNKNOWN and string matches over the sample columns."""
    return st.one_of(
        st.builds(Compare, st.just("i"), OPS, st.integers(-5, 5) | st.sampled_from([0.5, -3.5])),
        st.builds(Compare, st.just("f"), OPS, st.sampled_from(FLOATS) | st.integers(-2, 4)),
        st.builds(Compare, st.just("s"), OPS, TEXT),
        st.builds(Known, st.sampled_from(["i", "f", "s"]), st.booleans()),
        st.builds(Match, st.just("s"), st.sampled_from(list(MatchOp)), TEXT),
    )


FILTERS = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=6,
)


def reference(node: Filter, frame: pd.DataFrame) -> pd.Series:
    """The filter over pandas nullable columns; pandas' boolean dtype is Kleene logic."""
    if isinstance(node, And | Or):
        parts = [reference(i, frame) for i in node.items]
        out = parts[0]
        for part in parts[1:]:
            out = (out & part) if isinstance(node, And) else (out | part)
        return out
    if isinstance(node, Not):
        return ~reference(node.item, frame)
    column = frame[node.field]
    if isinstance(node, Known):
        known = column.notna().astype("boolean")
        return known if node.known else ~known
    if isinstance(node, Match):
        method = {
            MatchOp.CONTAINS: lambda v: column.str.contains(v, regex=False),
            MatchOp.STARTS: column.str.startswith,
            MatchOp.ENDS: column.str.endswith,
        }[node.op]
        return method(node.value).astype("boolean")
    ops = {
        CompareOp.EQ: column.__eq__,
        CompareOp.NE: column.__ne__,
        CompareOp.LT: column.__lt__,
        CompareOp.LE: column.__le__,
        CompareOp.GT: column.__gt__,
        CompareOp.GE: column.__ge__,
    }
    return ops[node.op](node.value).astype("boolean")


def expected_ids(node: Filter) -> list[int]:
    """Ids of the rows where the filter is true (unknown drops the row)."""
    keep = reference(node, FRAME).fillna(False).astype(bool)
    return sorted(int(x) for x in FRAME.loc[keep, "id"])


def ids(connector: Connector, table: str, node: Filter) -> list[int]:
    """Ids the connector returns for the filter."""
    query = Query(table=table, columns=("id",), filter=node)
    return sorted(v for b in connector.batches(query) for v in b.column(0).to_pylist())


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.spark
@pytest.mark.timeout(1200)  # starts the Spark server when first; 60 Spark queries
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(node=FILTERS)
def test_every_store_agrees_with_the_reference(
    node: Filter,
    sqlite_store: Connector,
    pg_store: Connector,
    mariadb_store: Connector,
    files_store: Connector,
    spark_store: Connector,
) -> None:
    """SQLite, PostgreSQL, MariaDB, Parquet and Spark return exactly the reference rows."""
    assert parse(unparse(node)) == node
    want = expected_ids(node)
    for name, connector, table in [
        ("sqlite", sqlite_store, "samples"),
        ("postgresql", pg_store, "samples"),
        ("mariadb", mariadb_store, "samples"),
        ("parquet", files_store, "samples.parquet"),
        ("spark", spark_store, "samples"),
    ]:
        assert ids(connector, table, node) == want, (name, unparse(node))
