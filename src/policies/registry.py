"""The closed registry of purposes a data request may name."""

from __future__ import annotations

__all__ = ["BASE_PURPOSES"]

BASE_PURPOSES = frozenset({"research", "ml-training", "education", "publication", "commercial"})
