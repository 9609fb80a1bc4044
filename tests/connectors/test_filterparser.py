"""The OPTIMADE filter language: every construct, precedence, errors with positions, round trips."""

from __future__ import annotations

import pytest

from connectors.datasets import ColumnType
from connectors.errors import FilterSyntaxError, FilterTypeError, UnknownColumnError
from connectors.filterparser import check, parse, unparse
from connectors.filters import And, Compare, CompareOp, Known, Match, MatchOp, Not, Or

GT, EQ = CompareOp.GT, CompareOp.EQ


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("x = 1", Compare("x", EQ, 1)),
        ("x != -2.5", Compare("x", CompareOp.NE, -2.5)),
        ("x < 1e3", Compare("x", CompareOp.LT, 1000.0)),
        ("x <= 0", Compare("x", CompareOp.LE, 0)),
        ("x >= 7", Compare("x", CompareOp.GE, 7)),
        ('name = "Ni"', Compare("name", EQ, "Ni")),
        ("ok = TRUE", Compare("ok", EQ, True)),
        ("ok != FALSE", Compare("ok", CompareOp.NE, False)),
        ("5 < x", Compare("x", GT, 5)),
        ("5 >= x", Compare("x", CompareOp.LE, 5)),
        ('"Ni" = name', Compare("name", EQ, "Ni")),
        ("x IS KNOWN", Known("x", True)),
        ("x IS UNKNOWN", Known("x", False)),
        ('s CONTAINS "a"', Match("s", MatchOp.CONTAINS, "a")),
        ('s STARTS "a"', Match("s", MatchOp.STARTS, "a")),
        ('s STARTS WITH "a"', Match("s", MatchOp.STARTS, "a")),
        ('s ENDS WITH "a"', Match("s", MatchOp.ENDS, "a")),
        ('s = "q\\"uote \\\\ back"', Compare("s", EQ, 'q"uote \\ back')),
        ("MendeleevNumber > 3", Compare("MendeleevNumber", GT, 3)),
        ("NOT x = 1", Not(Compare("x", EQ, 1))),
        ("NOT (x = 1 OR y = 2)", Not(Or((Compare("x", EQ, 1), Compare("y", EQ, 2))))),
    ],
)
def test_constructs(text: str, tree: object) -> None:
    """Each construct parses to its neutral node."""
    assert parse(text) == tree


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    """a OR NOT b AND c is a OR ((NOT b) AND c)."""
    a, b, c = (Compare(n, EQ, 1) for n in "abc")
    assert parse("a = 1 OR NOT b = 1 AND c = 1") == Or((a, And((Not(b), c))))
    assert parse("(a = 1 OR b = 1) AND c = 1") == And((Or((a, b)), c))


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("x = = 1", 4, "unexpected '='"),
        ("x = 1 AND", 9, "end of filter"),
        ("(x = 1", 6, "expected ')'"),
        ("x ~ 1", 2, "character '~'"),
        ("x = 1 y = 2", 6, "AND or OR"),
        ("", 0, "empty"),
        ("a.b = 1", 0, "nested property"),
        ("x HAS 1", 2, "HAS"),
        ("x HAS ALL 1, 2", 2, "HAS"),
        ("x LENGTH 3", 2, "LENGTH"),
        ("x = y", 4, "two columns"),
        ("1 = 2", 0, "two constants"),
        ('s = "a\\n"', 6, "escape"),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, position: int, words: str) -> None:
    """Unsupported or broken text raises FilterSyntaxError with the offending offset."""
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    assert caught.value.position == position
    assert words in str(caught.value)


def test_match_needs_a_string_value() -> None:
    """CONTAINS 5 is a type error at the value."""
    with pytest.raises(FilterTypeError) as caught:
        parse("s CONTAINS 5")
    assert caught.value.position == 11


def test_deep_nesting_is_refused_cleanly() -> None:
    """Absurd nesting is a syntax error, not a crash."""
    with pytest.raises(FilterSyntaxError):
        parse("(" * 3000 + "x = 1" + ")" * 3000)


@pytest.mark.parametrize(
    "text",
    [
        "x = 1",
        'NOT s CONTAINS "%_\\\\" AND (x > 1 OR y IS UNKNOWN)',
        "NOT (NOT a = 1)",
        "(a = 1 AND b = 2) AND c = 3",
        "a = 1 OR (b = 2 OR c = 3)",
        "x = 1e+16 AND ok = FALSE",
    ],
)
def test_unparse_round_trips(text: str) -> None:
    """unparse gives text that parses back to the same tree."""
    tree = parse(text)
    assert parse(unparse(tree)) == tree


COLUMNS = {
    "yield_strength_mpa": ColumnType.FLOAT,
    "count": ColumnType.INTEGER,
    "alloy": ColumnType.STRING,
    "ok": ColumnType.BOOLEAN,
    "tested": ColumnType.DATE,
}


def test_unknown_column_suggests_the_nearest() -> None:
    """A misspelt column names the position and the likely column."""
    text = "yield_strengh > 5"
    with pytest.raises(UnknownColumnError) as caught:
        check(parse(text), COLUMNS, text)
    assert str(caught.value) == (
        "unknown column 'yield_strengh' at 0; did you mean 'yield_strength_mpa'?"
    )
    assert caught.value.position == 0


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("alloy > 5", 0),
        ('count = 1 AND yield_strength_mpa = "high"', 14),
        ('count CONTAINS "1"', 0),
        ("ok = 1", 0),
        ("ok > FALSE", 0),
        ('tested > "yesterday"', 0),
        ("count > 99999999999999999999", 0),
    ],
)
def test_type_mismatches(text: str, position: int) -> None:
    """Strings against numbers, CONTAINS on numbers, ordering booleans, bad dates are refused."""
    with pytest.raises(FilterTypeError) as caught:
        check(parse(text), COLUMNS, text)
    assert caught.value.position == position


def test_well_typed_filters_pass() -> None:
    """Numbers across int/float, strings, booleans and ISO dates are accepted."""
    text = 'count > 1.5 AND alloy STARTS "Ni" AND ok = TRUE AND tested >= "2024-01-31"'
    check(parse(text), COLUMNS, text)
