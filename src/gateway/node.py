"""A node: everything one institution's gateway holds, built once by the app factory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from audit.manifests import sign_manifest

from audit.keys import Signer
from audit.lineage import Lineage
from audit.ratelimit import FailureLimiter
from audit.log import AuditLog
from gateway.catalog import Catalog
from gateway.config import NodeConfig
from gateway.db import create_engine
from gateway.identity import Authenticator, TokenIssuer
from gateway.jobs import Jobs
from gateway.keys import NodeKey
from gateway.migrations import migrate
from gateway.provenance import ProvenanceStore
from gateway.settings import Settings
from gateway.stores import Stores
from policies import Governance
from policies.config import PolicyConfig
from policies.watcher import RedisWatcher

__all__ = ["Node"]

Clock = Callable[[], dt.datetime]


class Node:
    """The services of one node: catalog, stores, identity, governance, audit, provenance."""

    def __init__(
        self, settings: Settings, config: NodeConfig, *, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.config = config
        self.institution = config.node.institution
        self.title = config.node.title or config.node.institution
        self.public_url = (
            settings.public_url
            or config.node.public_url
            or f"http://{settings.host}:{settings.port}"
        ).rstrip("/")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(settings.resolved_database_url())
        migrate(self.engine)
        self.key = NodeKey.load_or_create(settings.resolved_key_file())
        self.issuer = TokenIssuer(
            key=self.key,
            issuer=self.public_url,
            audience=self.public_url,
            institution=self.institution,
        )
        self.auth = Authenticator(
            [self.issuer.as_trusted(), *config.issuers], default_audience=self.public_url
        )
        self.stores = Stores(config.stores)
        self.catalog = Catalog(self.engine, self.stores)
        self.catalog.sync(config.datasets, by=f"config@{self.institution}")
        self.watcher = (
            RedisWatcher(settings.policy_sync_url, channel=f"matgate:policy:{self.institution}")
            if settings.policy_sync_url
            else None
        )
        self.governance = Governance(
            self.engine,
            PolicyConfig.model_validate(config.policy),
            clock=clock,
            watcher=self.watcher,
        )
        self.governance.seed(self.catalog.all())
        self.audit = AuditLog(
            self.engine, Signer(self.key.private, self.key.kid), node=self.institution, clock=clock
        )
        self.auth_failures = FailureLimiter(clock=clock)
        self.jobs = Jobs(workers=config.limits.train_workers)
        self.lineage = Lineage(self.engine, self.audit)
        self.provenance = ProvenanceStore(
            self.lineage,
            sign=lambda manifest: sign_manifest(manifest, self.key.private, self.key.kid),
        )

    def close(self) -> None:
        """Release stores, HTTP clients and database connections."""
        self.jobs.close()
        self.governance.close()
        self.stores.close()
        self.auth.close()
        self.engine.dispose()
