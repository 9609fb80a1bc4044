"""The stores a node fronts, opened lazily by name, each within the scope its config gives it.

SQL and Spark stores reach only their configured schemas and tables (``connectors.sqlscope``,
``connectors.spark``), file stores
only their folder, OPTIMADE stores only hosts the node's network policy allows
(``connectors.netguard``). ``check_drivers`` runs at start-up: a store whose driver is not
installed stops the node with one line naming the store and the extra to install.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from connectors.base import Connector
from connectors.netguard import NetPolicy
from gateway.config import StoreConfig
from gateway.errors import NotFound, ServiceUnavailable

__all__ = ["StoreDriverError", "Stores", "driver_problem", "open_configured"]


class StoreDriverError(ServiceUnavailable):
    """A configured store cannot be opened: its driver is not installed on this node."""


def driver_problem(name: str, config: StoreConfig) -> str | None:
    """One line saying which driver store ``name`` lacks and how to add it, or None."""
    if config.kind == "spark":
        from connectors.spark import missing_spark

        problem = missing_spark()
        return f"store {name!r}: {problem}" if problem else None
    if config.kind != "sql":
        return None  # files and OPTIMADE stores need nothing beyond the core install
    from connectors.sql import missing_driver

    problem = missing_driver(config.target)
    return f"store {name!r}: {problem}" if problem else None


def open_configured(config: StoreConfig, network: NetPolicy) -> Connector:
    """A connector for ``config``, confined to its scope."""
    if config.kind == "sql":
        from connectors.sql import SQLConnector
        from connectors.sqlscope import Scope

        return SQLConnector(config.target, scope=Scope(config.schemas, config.tables))
    if config.kind == "files":
        from connectors.files import FilesConnector

        return FilesConnector(Path(config.target))
    if config.kind == "spark":
        from connectors.spark import SparkConnector

        return SparkConnector(config.target, schemas=config.schemas, tables=config.tables)
    from connectors.optimade import OptimadeConnector

    return OptimadeConnector(config.target, network=network)


class Stores:
    """Named connectors, each opened on first use and shared by all requests."""

    def __init__(
        self, configs: Mapping[str, StoreConfig], network: NetPolicy | None = None
    ) -> None:
        self._configs = dict(configs)
        self._network = network or NetPolicy()
        self._open: dict[str, Connector] = {}
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def check_drivers(self) -> None:
        """Refuse to start (StoreDriverError) if a configured store's driver is missing."""
        problems = [
            p for name, c in sorted(self._configs.items()) if (p := driver_problem(name, c))
        ]
        if problems:
            raise StoreDriverError("; ".join(problems))

    def get(self, name: str) -> Connector:
        """The connector of store ``name``."""
        with self._lock:
            if name not in self._open:
                config = self._configs.get(name)
                if config is None:
                    raise NotFound(f"no store {name!r} on this node")
                problem = driver_problem(name, config)
                if problem is not None:
                    raise StoreDriverError(problem)
                self._open[name] = open_configured(config, self._network)
            return self._open[name]

    def close(self) -> None:
        """Close every opened connector."""
        with self._lock:
            for connector in self._open.values():
                connector.close()
            self._open.clear()
