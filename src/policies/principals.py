"""Who is asking: the principal a validated token stands for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ANONYMOUS", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A subject of a home institution with roles; ``actor`` is the node speaking for them."""

    subject: str
    institution: str
    roles: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    actor: str | None = None
    anonymous: bool = False

    @property
    def id(self) -> str:
        """``subject@institution``: unique across the federation (``anonymous`` without a token)."""
        return "anonymous" if self.anonymous else f"{self.subject}@{self.institution}"


ANONYMOUS = Principal(subject="anonymous", institution="", anonymous=True)
"""A caller without a token: matches the policy's ``public`` lines and nothing else."""
