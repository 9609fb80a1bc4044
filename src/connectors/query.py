"""The neutral query a connector runs: projection, masks, filter, order and paging."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from connectors.filters import Filter

__all__ = ["Mask", "MaskKind", "Query"]


class MaskKind(StrEnum):
    """How a withheld column is replaced when a policy masks rather than drops it."""

    NULL = "null"
    REDACT = "redact"
    HASH = "hash"


@dataclass(frozen=True, slots=True)
class Mask:
    """A mask on one column; ``HASH`` is an HMAC under ``key`` (named by ``key_id``), so values
    join wherever the same key is used and cannot be recovered by hashing guesses without it."""

    kind: MaskKind
    key: bytes = field(default=b"", repr=False)
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class Query:
    """What to read from one table: every part already validated and permitted.

    ``columns`` is the output projection in order; ``masks`` replaces some of those columns;
    ``filter`` is the user's filter ANDed with the policy's row filter; ``order_by`` holds
    ``(column, descending)`` pairs.
    """

    table: str
    columns: tuple[str, ...]
    filter: Filter | None = None
    masks: Mapping[str, Mask] = field(default_factory=lambda: MappingProxyType({}))
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    offset: int = 0
