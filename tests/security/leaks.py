"""Looking for a training set's values in what a node sends back.

A value "appears" when a number in the answer equals it as stored (float64 or float32) or
rounded to 2..6 decimals, the ways a model file, a JSON answer or a printed card could carry it.
Numbers written as floats are gathered from JSON (also inside strings; integers are counts,
sizes and indices, while a value taken from a float column is written as a float) and from skops
files, whose arrays are loaded from the zip (structured arrays field by field; integer fields
are node indices, counts and bin numbers, not values).

Only values that say something are looked for: those with at least three significant digits
(``1076.3``, ``0.0125``, not ``1000`` or ``0.5``, which any file holds by chance), and a rounded
form counts only while it keeps three significant digits (``0.0003`` rounded to two decimals is
``0.0``, which proves nothing).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "appearing",
    "distinct_informative",
    "informative",
    "numbers_in_json",
    "numbers_in_skops",
    "share_appearing",
]

_MIN_DIGITS = 3
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _key(value: float) -> float:
    """Ten significant digits: the same number whichever way it was computed or printed."""
    return float(f"{value:.10g}")


def _significant(value: float) -> int:
    """Significant digits of ``value`` as ``repr`` would print it at ten digits."""
    digits = f"{abs(value):.10e}".split("e")[0].replace(".", "").rstrip("0")
    return len(digits)


def informative(value: float) -> bool:
    """Whether finding ``value`` means something: finite, with three significant digits."""
    return math.isfinite(value) and value != 0 and _significant(value) >= _MIN_DIGITS


def _forms(value: float) -> set[float]:
    forms = {_key(value), _key(float(np.float32(value)))}
    for digits in range(2, 7):
        rounded = round(value, digits)
        if rounded != 0 and _significant(rounded) >= _MIN_DIGITS:
            forms.add(_key(rounded))
    return forms


def _finite(values: Iterable[Any]) -> set[float]:
    found: set[float] = set()
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            found.add(_key(number))
    return found


def numbers_in_json(value: Any) -> set[float]:
    """Every number written as a float in a JSON value, also inside its strings (a string
    holding JSON, as skops schemas do, is read as JSON)."""
    if isinstance(value, bool | int):
        return set()  # counts, sizes, indices: a float value is written as a float
    if isinstance(value, float):
        return _finite([value])
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            inner = None
        if inner is not None and not isinstance(inner, str):
            return numbers_in_json(inner)
        return _finite(t for t in _NUMBER.findall(value) if "." in t or "e" in t.lower())
    if isinstance(value, dict):
        return set().union(set(), *(numbers_in_json(v) for v in [*value.keys(), *value.values()]))
    if isinstance(value, list | tuple):
        return set().union(set(), *(numbers_in_json(v) for v in value))
    return set()


def _array_numbers(array: np.ndarray) -> set[float]:
    if array.dtype.names:
        return set().union(*(_array_numbers(array[name]) for name in array.dtype.names))
    # integer arrays of a model are its structure (node indices, counts, bin numbers); the
    # values a model learns from reach it as floats
    if array.dtype.kind == "f":
        return _finite(np.asarray(array, dtype=float).ravel().tolist())
    return set()


def numbers_in_skops(data: bytes) -> set[float]:
    """Every number in a skops file: its arrays loaded, its schema read as JSON."""
    found: set[float] = set()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.namelist():
            raw = archive.read(member)
            if member.endswith(".npy"):
                found |= _array_numbers(np.load(io.BytesIO(raw), allow_pickle=False))
            else:
                text = raw.decode("utf-8", "replace")
                try:
                    found |= numbers_in_json(json.loads(text))
                except ValueError:
                    found |= numbers_in_json(text)
    return found


def distinct_informative(values: Iterable[Any]) -> set[float]:
    """The distinct informative values among ``values``."""
    return {float(x) for x in values if informative(float(x))}


def appearing(values: Iterable[Any], numbers: set[float]) -> set[float]:
    """The informative training values of which some form is among ``numbers``."""
    return {v for v in distinct_informative(values) if _forms(v) & numbers}


def share_appearing(values: Iterable[Any], numbers: set[float]) -> float:
    """The share (0..1) of the distinct informative training values found among ``numbers``."""
    distinct = distinct_informative(values)
    return len(appearing(distinct, numbers)) / len(distinct) if distinct else 0.0
