"""Chemical formulas as compositions: ``Fe0.62C0.00095Mn0.00052``, ``Ag(W3Br7)2``, ``CuSO4·5H2O``.

Grammar (whitespace between tokens is ignored)::

    formula  := part (("·" | "•" | "*") [amount] part)*     hydrates and adducts
    part     := item+
    item     := (ELEMENT | "(" part ")" | "[" part "]" | "{" part "}") [amount]
    amount   := digits ["." digits] | "." digits

A "." is always a decimal point (``Fe0.5``), never a hydrate separator: ``CuSO4.5H2O`` would be
ambiguous, so hydrates use the middle dot or ``*``.
"""

from __future__ import annotations

import functools
import re

from training.elements import ELEMENTS
from training.errors import FormulaError

__all__ = ["fractions", "parse_formula"]

_SYMBOLS = frozenset(ELEMENTS)
_AMOUNT = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_SYMBOL = re.compile(r"[A-Z][a-z]*")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())
_ADDUCT = frozenset("·•*")


class _Parser:
    """Recursive descent over one formula string, tracking the position for errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, reason: str, position: int | None = None) -> FormulaError:
        return FormulaError(self.text, self.pos if position is None else position, reason)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def amount(self) -> float | None:
        if self.peek() == "-":
            raise self.fail("negative amount")
        match = _AMOUNT.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return float(match.group())

    def formula(self) -> dict[str, float]:
        if not self.text.strip():
            raise self.fail("empty formula", 0)
        total = self.part()
        while self.peek() in _ADDUCT:
            self.pos += 1
            factor = self.amount()
            for symbol, n in self.part().items():
                total[symbol] = total.get(symbol, 0.0) + n * (1.0 if factor is None else factor)
        if self.peek():
            char = self.text[self.pos]
            if char in _CLOSE:
                raise self.fail(f"unmatched {char!r}")
            raise self.fail(f"unexpected character {char!r}")
        return total

    def part(self, closer: str = "") -> dict[str, float]:
        counts: dict[str, float] = {}
        while True:
            char = self.peek()
            if char == "" or char in _CLOSE or char in _ADDUCT:
                break
            for symbol, n in self.item().items():
                counts[symbol] = counts.get(symbol, 0.0) + n
        if not counts:
            if closer and char == closer:
                raise self.fail("empty group")
            if char == "":
                raise self.fail("unexpected end of formula")
            raise self.fail(f"unexpected {char!r}, expected an element or '('")
        return counts

    def item(self) -> dict[str, float]:
        char = self.peek()
        at = self.pos
        if char in _OPEN:
            self.pos += 1
            closer = _OPEN[char]
            inner = self.part(closer)
            if self.peek() != closer:
                if self.peek() == "":
                    raise self.fail(f"unclosed {char!r}", at)
                raise self.fail(f"expected {closer!r} to close {char!r} at {at}")
            self.pos += 1
            factor = self.amount()
            return {s: n * (1.0 if factor is None else factor) for s, n in inner.items()}
        match = _SYMBOL.match(self.text, self.pos)
        if match is None:
            if char == "-" or char.isdigit() or char == ".":
                if char == "-":
                    raise self.fail("negative amount")
                raise self.fail("amount without an element")
            if char.isalpha():
                raise self.fail(f"unexpected {char!r} (element symbols start with a capital)")
            raise self.fail(f"unexpected character {char!r}")
        symbol = match.group()
        if symbol not in _SYMBOLS:
            raise self.fail(f"unknown element {symbol!r}")
        self.pos = match.end()
        amount = self.amount()
        return {symbol: 1.0 if amount is None else amount}


@functools.lru_cache(maxsize=65536)
def _parse(text: str) -> tuple[tuple[str, float], ...]:
    counts = _Parser(text).formula()
    kept = tuple((s, n) for s, n in counts.items() if n > 0.0)
    if not kept:
        raise FormulaError(text, 0, "amounts sum to zero")
    return kept


def parse_formula(text: str) -> dict[str, float]:
    """Element amounts of a formula, in order of first appearance; ``FormulaError`` if invalid."""
    if not isinstance(text, str):
        raise FormulaError(str(text), 0, f"expected a string, got {type(text).__name__}")
    return dict(_parse(text))


def fractions(text: str) -> dict[str, float]:
    """Atomic fractions (summing to 1) of a formula."""
    counts = _parse(text) if isinstance(text, str) else parse_formula(text).items()
    total = sum(n for _, n in counts)
    return {s: n / total for s, n in counts}
