"""Canonical JSON (RFC 8785 style): the one byte form that is hashed and signed.

Keys are sorted, there is no insignificant whitespace, strings are UTF-8 without ``\\u`` escapes
for non-ASCII, integral floats are written as integers and NaN/Infinity are refused. Two known
departures from RFC 8785, both deterministic: keys sort by code point rather than UTF-16 unit
(they differ only for characters above U+FFFF against U+E000..U+FFFF), and a float outside
1e-6..1e21 keeps Python's exponent form (``1e-07`` rather than ``1e-7``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

__all__ = ["canonical_json", "encode_plain", "jsonable"]

_MAX_EXACT = 2**53

_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


_PLAIN = frozenset({str, int, bool, type(None)})


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: tuples and sets become lists, enums their values."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:  # the common case, without a call per plain key and value
        out = {}
        for k, v in value.items():
            out[k if type(k) is str else _key(k)] = v if type(v) in _PLAIN else jsonable(v)
        return out
    if kind is tuple or kind is list:
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"canonical JSON refuses {value!r}")
        return int(value) if value.is_integer() and abs(value) < _MAX_EXACT else value
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _key(key: Any) -> str:
    if type(key) is str:
        return key
    if isinstance(key, Enum):
        key = key.value
    if not isinstance(key, str):
        raise TypeError(f"object keys must be strings, not {type(key).__name__}")
    return key


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 bytes of ``obj``; raises ``ValueError`` on NaN or Infinity."""
    return _encode(jsonable(obj)).encode("utf-8")


def encode_plain(obj: Any) -> bytes:
    """Canonical bytes of a value already made of plain JSON types (``jsonable`` output)."""
    return _encode(obj).encode("utf-8")
