"""OPTIMADE filter text to the neutral filter tree, back to text, and checks against a schema.

The grammar is OPTIMADE's own (``grammar/optimade-v1.2.0.lark``, copied unchanged from
optimade-python-tools), with one widening applied when it is loaded: identifiers may contain
upper-case letters, because dataset columns may (``MendeleevNumber``). Constructs that the neutral
tree cannot express (``HAS``, ``LENGTH``, dotted properties and relationships, comparisons between
two properties or two constants) parse, and are then refused with a ``FilterSyntaxError`` that
points at them.
"""

from __future__ import annotations

import builtins
import datetime as dt
import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from connectors.datasets import ColumnType
from connectors.errors import FilterSyntaxError, FilterTypeError, UnknownColumnError
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

__all__ = ["MAX_FILTER_LENGTH", "check", "parse", "unparse"]

MAX_FILTER_LENGTH = 10_000
GRAMMAR = Path(__file__).parent / "grammar" / "optimade-v1.2.0.lark"
_WIDENING = """
%override IDENTIFIER: _IDSTART ( _IDSTART | DIGIT )*
_IDSTART: "_" | LCASE_LETTER | UCASE_LETTER
%import common.UCASE_LETTER
"""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_FLIPPED = {
    CompareOp.EQ: CompareOp.EQ,
    CompareOp.NE: CompareOp.NE,
    CompareOp.LT: CompareOp.GT,
    CompareOp.LE: CompareOp.GE,
    CompareOp.GT: CompareOp.LT,
    CompareOp.GE: CompareOp.LE,
}
_READABLE = {
    "OPERATOR": "a comparison operator",
    "IDENTIFIER": "a column name",
    "ESCAPED_STRING": "a string",
    "SIGNED_INT": "a number",
    "SIGNED_FLOAT": "a number",
    "TRUE": "TRUE",
    "FALSE": "FALSE",
    "LPAR": "'('",
    "RPAR": "')'",
    "_AND": "AND",
    "_OR": "OR",
    "$END": "the end of the filter",
}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_WORDS = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*', re.DOTALL)


@functools.cache
def _parser() -> Lark:
    # Built once per process: parsing sits on every request's path, building the tables does not.
    text = GRAMMAR.read_text(encoding="utf-8") + _WIDENING
    return Lark(text, parser="lalr", maybe_placeholders=False, propagate_positions=True)


@dataclass(frozen=True, slots=True)
class _Property:
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Value
    position: int


def _unescape(token: Token) -> str:
    inner = str(token)[1:-1]

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char in ('"', "\\"):
            return char
        at = (token.start_pos or 0) + 1 + match.start()
        raise FilterSyntaxError(f"unknown escape '\\{char}' at {at}; only \\\" and \\\\", at)

    return _ESCAPE.sub(replace, inner)


def _refuse(what: str, position: int | None) -> FilterSyntaxError:
    return FilterSyntaxError(f"{what} at {position} is not supported by this gateway", position)


class _ToFilter(Transformer[Token, Any]):
    """Turns the OPTIMADE parse tree into the neutral filter tree, refusing what it cannot hold."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    @v_args(meta=True)
    def property(self, meta: Any, children: list[Token]) -> _Property:
        if len(children) > 1:
            raise _refuse(f"nested property '{'.'.join(children)}'", meta.start_pos)
        return _Property(str(children[0]), meta.start_pos)

    @v_args(inline=True)
    def string(self, token: Token) -> _Literal:
        return _Literal(_unescape(token), token.start_pos or 0)

    @v_args(inline=True)
    def number(self, token: Token) -> _Literal:
        value = int(token) if token.type == "SIGNED_INT" else float(token)
        return _Literal(value, token.start_pos or 0)

    @v_args(meta=True)
    def bool(self, meta: Any, children: list[Token]) -> _Literal:
        # "TRUE"/"FALSE" are anonymous tokens that lark drops; the source text tells which.
        return _Literal(self._text[meta.start_pos : meta.end_pos] == "TRUE", meta.start_pos)

    @v_args(inline=True)
    def _pass(self, item: Any) -> Any:
        return item

    value = constant = non_string_value = not_implemented_string = comparison = _pass

    @v_args(inline=True)
    def value_op_rhs(self, op: Token, value: Any) -> tuple[str, CompareOp, Any]:
        return ("compare", CompareOp(str(op)), value)

    def known_op_rhs(self, children: list[Token]) -> tuple[str, builtins.bool]:
        return ("known", children[-1].type == "KNOWN")

    def fuzzy_string_op_rhs(self, children: list[Any]) -> tuple[str, MatchOp, Any]:
        return ("match", MatchOp(str(children[0])), children[-1])

    @v_args(meta=True)
    def set_op_rhs(self, meta: Any, children: list[Any]) -> None:
        raise _refuse("HAS", meta.start_pos)

    @v_args(meta=True)
    def set_zip_op_rhs(self, meta: Any, children: list[Any]) -> None:
        raise _refuse("HAS on zipped properties", meta.start_pos)

    @v_args(meta=True)
    def length_op_rhs(self, meta: Any, children: list[Any]) -> None:
        raise _refuse("LENGTH", meta.start_pos)

    @v_args(inline=True)
    def property_first_comparison(self, prop: _Property, rhs: tuple[Any, ...]) -> Filter:
        kind = rhs[0]
        if kind == "known":
            return Known(prop.name, rhs[1])
        value = rhs[-1]
        if isinstance(value, _Property):
            raise _refuse(f"comparing two columns ({prop.name}, {value.name})", value.position)
        if kind == "match":
            if not isinstance(value.value, str):
                shown = unparse_value(value.value)
                at = value.position
                raise FilterTypeError(f"{rhs[1]} at {at} needs a string, not {shown}", at)
            return Match(prop.name, rhs[1], value.value)
        return Compare(prop.name, rhs[1], value.value)

    @v_args(inline=True)
    def constant_first_comparison(self, const: _Literal, op: Token, other: Any) -> Filter:
        if isinstance(other, _Literal):
            raise _refuse("comparing two constants", const.position)
        return Compare(other.name, _FLIPPED[CompareOp(str(op))], const.value)

    def expression_phrase(self, children: list[Any]) -> Filter:
        if isinstance(children[0], Token):  # the optional NOT
            return Not(children[1])
        return children[0]

    def expression_clause(self, children: list[Filter]) -> Filter:
        return children[0] if len(children) == 1 else And(tuple(children))

    def expression(self, children: list[Filter]) -> Filter:
        return children[0] if len(children) == 1 else Or(tuple(children))


def _syntax_error(text: str, exc: UnexpectedInput) -> FilterSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        # The lexer's "allowed" set names grammar terminals nobody can act on: leave it out.
        at, expected = exc.pos_in_stream or 0, set()
        found = f"character {text[at]!r}"
    elif isinstance(exc, UnexpectedToken):
        at = exc.token.start_pos if exc.token.type != "$END" else len(text)
        at = len(text) if at is None else at
        expected = exc.expected
        found = "end of filter" if exc.token.type == "$END" else repr(str(exc.token))
    else:
        at, expected, found = len(text), set(), "end of filter"
    wanted = sorted({_READABLE.get(name, name) for name in expected or ()})
    hint = f"; expected {', '.join(wanted)}" if wanted else ""
    return FilterSyntaxError(f"unexpected {found} at {at}{hint}", at)


def parse(text: str) -> Filter:
    """Parse OPTIMADE filter text into the neutral filter tree."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(f"filter longer than {MAX_FILTER_LENGTH} characters", None)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    expressions = tree.children if isinstance(tree, Tree) else []
    if not expressions:
        raise FilterSyntaxError("empty filter", 0)
    if len(expressions) > 1:
        second = expressions[1]
        at = second.meta.start_pos if isinstance(second, Tree) else None
        raise FilterSyntaxError(f"expected AND or OR before the expression at {at}", at)
    try:
        root = expressions[0]
        assert isinstance(root, Tree)
        tree_out: Filter = _ToFilter(text).transform(root)
        return tree_out
    except VisitError as exc:
        if isinstance(exc.orig_exc, FilterSyntaxError | FilterTypeError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise FilterSyntaxError("filter is nested too deeply", None) from None


def unparse_value(value: Value) -> str:
    """A value as filter text: a quoted string, TRUE/FALSE or a number."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterTypeError(f"{value} cannot be written in a filter", None)
    return repr(value)


def unparse(node: Filter) -> str:
    """Filter text that parses back to ``node``."""
    if isinstance(node, Compare):
        return f"{node.field} {node.op.value} {unparse_value(node.value)}"
    if isinstance(node, Known):
        return f"{node.field} IS {'KNOWN' if node.known else 'UNKNOWN'}"
    if isinstance(node, Match):
        return f"{node.field} {node.op.value} {unparse_value(node.value)}"
    if isinstance(node, Not):
        inner = unparse(node.item)
        return (
            f"NOT {inner}" if isinstance(node.item, Compare | Known | Match) else f"NOT ({inner})"
        )
    # Parentheses keep the tree's own grouping, so parse(unparse(tree)) gives the same tree.
    if isinstance(node, And):
        return " AND ".join(
            f"({unparse(i)})" if isinstance(i, And | Or) else unparse(i) for i in node.items
        )
    return " OR ".join(f"({unparse(i)})" if isinstance(i, Or) else unparse(i) for i in node.items)


def _positions(text: str | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for word in _WORDS.finditer(text or ""):
        if not word.group().startswith('"'):
            found.setdefault(word.group(), word.start())
    return found


def _suggest(name: str, columns: Mapping[str, ColumnType]) -> str | None:
    folded = {c.lower(): c for c in columns}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.6)
    return close[0] if close else None


def _check_value(field: str, kind: ColumnType, op: CompareOp, value: Value, at: int | None) -> None:
    shown = unparse_value(value) if not isinstance(value, float) or math.isfinite(value) else value
    mismatch = FilterTypeError(
        f"column {field!r} at {at} is {kind.value}; cannot compare with {shown}", at
    )
    if kind in (ColumnType.INTEGER, ColumnType.FLOAT):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch
        if isinstance(value, float) and not math.isfinite(value):
            raise mismatch
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise FilterTypeError(f"{value} at {at} is outside the 64-bit integer range", at)
    elif kind is ColumnType.STRING:
        if not isinstance(value, str):
            raise mismatch
    elif kind is ColumnType.BOOLEAN:
        if not isinstance(value, bool):
            raise mismatch
        if op not in (CompareOp.EQ, CompareOp.NE):
            raise FilterTypeError(f"boolean column {field!r} at {at} allows only = and !=", at)
    else:
        parse_time = dt.date.fromisoformat if kind is ColumnType.DATE else dt.datetime.fromisoformat
        try:
            parse_time(value) if isinstance(value, str) else None
        except ValueError:
            raise mismatch from None
        if not isinstance(value, str):
            raise mismatch


def check(node: Filter, columns: Mapping[str, ColumnType], text: str | None = None) -> None:
    """Refuse unknown columns and type mismatches; ``text`` (the parsed source) adds positions."""
    positions = _positions(text)
    stack: list[Filter] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, And | Or):
            stack.extend(reversed(item.items))
            continue
        if isinstance(item, Not):
            stack.append(item.item)
            continue
        at = positions.get(item.field)
        if item.field not in columns:
            raise UnknownColumnError(item.field, _suggest(item.field, columns), at)
        kind = columns[item.field]
        if isinstance(item, Match) and kind is not ColumnType.STRING:
            raise FilterTypeError(
                f"{item.op.value} needs a string column; {item.field!r} at {at} is {kind.value}", at
            )
        if isinstance(item, Compare):
            _check_value(item.field, kind, item.op, item.value, at)
