"""CSV cells that a spreadsheet would run as formulas, neutralised for people who open them.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their full-width
forms, which some spreadsheets also accept) is prefixed with a single quote, as OWASP's "CSV
Injection" guidance says, so that a subject, dataset name or reason chosen by an attacker is
shown as text instead of run (``=HYPERLINK(...)``, ``=cmd|...``). Numbers such as ``-3.2`` or
``+1e5`` are left as they are: they cannot run, and they should stay numbers.

Used for CSV meant for people (audit exports). Data CSV for machines (slices) is not altered:
it must round-trip and match the content hash in its manifest (see docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["neutralise", "neutralise_row"]

_TRIGGERS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(cell: str) -> str:
    """``cell`` with a leading quote if a spreadsheet would read it as a formula."""
    if cell and cell[0] in _TRIGGERS and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def neutralise_row(cells: Iterable[Any]) -> list[Any]:
    """Each text cell of a row neutralised; other values unchanged."""
    return [neutralise(c) if isinstance(c, str) else c for c in cells]
