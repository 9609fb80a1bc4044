"""The stores a node fronts, opened lazily by name."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from connectors.base import Connector, open_store
from gateway.config import StoreConfig
from gateway.errors import NotFound

__all__ = ["Stores"]


class Stores:
    """Named connectors, each opened on first use and shared by all requests."""

    def __init__(self, configs: Mapping[str, StoreConfig]) -> None:
        self._configs = dict(configs)
        self._open: dict[str, Connector] = {}
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def get(self, name: str) -> Connector:
        """The connector of store ``name``."""
        with self._lock:
            if name not in self._open:
                config = self._configs.get(name)
                if config is None:
                    raise NotFound(f"no store {name!r} on this node")
                self._open[name] = open_store(config.kind, config.target)
            return self._open[name]

    def close(self) -> None:
        """Close every opened connector."""
        with self._lock:
            for connector in self._open.values():
                connector.close()
            self._open.clear()
