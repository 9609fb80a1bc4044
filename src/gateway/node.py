"""A node: everything one institution's gateway holds, built once by the app factory."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from audit.checkpoints import Notary, origin_of
from audit.keys import Signer
from audit.lineage import Lineage
from audit.log import AuditLog
from audit.manifests import sign_manifest
from audit.provenance import LineageEmitter
from audit.ratelimit import DenialLimiter, FailureLimiter
from connectors.netguard import NetPolicy, guarded_client
from gateway.access import recorder, recorder_many
from gateway.assertions import MemoryReplayCache, RedisReplayCache, ReplayCache
from gateway.catalog import Catalog
from gateway.config import ConfigError, IssuerConfig, NodeConfig, PeerConfig
from gateway.db import create_engine
from gateway.errors import MatgateError, Unauthorized
from gateway.identity import Authenticator, TokenIssuer
from gateway.jobs import Jobs
from gateway.kept import Budgets, KeptModels
from gateway.keys import ALGORITHM, MaskSecret, NodeKey, mask_secret_for
from gateway.memory import bulk
from gateway.migrations import migrate
from gateway.peers import Peers, check_address, peer_policy
from gateway.provenance import ProvenanceStore
from gateway.records import job_event, policy_event, registration_event
from gateway.settings import Settings
from gateway.stores import Stores
from gateway.witness import Witness
from gateway.witnessing import Cosigners
from policies import Governance
from policies.config import PolicyConfig
from policies.principals import Principal
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
        network = config.network.policy()
        self.stores = Stores(config.stores, network=network)
        self.stores.check_drivers()  # a store this node cannot open stops it here, in one line
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(settings.resolved_database_url())
        migrate(self.engine)
        self.key = NodeKey.load_or_create(settings.resolved_key_file())
        # the log first: every state change below, start-up's included, commits with its entry
        self.audit = AuditLog(
            self.engine, Signer(self.key.private, self.key.kid), node=self.institution, clock=clock
        )
        config_actor = f"config@{self.institution}"
        self.issuer = TokenIssuer(
            key=self.key,
            issuer=self.public_url,
            audience=self.public_url,
            institution=self.institution,
        )
        # Seen assertion ids are shared through Redis when replicas share one (see assertions).
        self.replay: ReplayCache = (
            RedisReplayCache(settings.policy_sync_url, prefix=f"matgate:jti:{self.institution}:")
            if settings.policy_sync_url
            else MemoryReplayCache()
        )
        self.auth = Authenticator(
            [self.issuer.as_trusted(), *config.issuers, *map(self._peer_issuer, config.peers)],
            default_audience=self.public_url,
            peers={p.issuer: p.institution for p in config.peers},
            replay=self.replay,
            guards={p.issuer: _guard(p, network) for p in config.peers},
            http=guarded_client(
                _identity_policy(config, network), timeout=5.0, follow_redirects=False
            ),
            own_issuer=self.issuer.issuer,
        )
        self.peers = Peers(
            config.peers,
            key=self.key,
            issuer=self.public_url,
            institution=self.institution,
            network=network,
        )
        self.catalog = Catalog(self.engine, self.stores)
        with bulk():  # every configured dataset is read or written here, and all of them stay
            self.catalog.sync(
                config.datasets,
                by=config_actor,
                record=recorder_many(
                    self, partial(registration_event, self.institution, config_actor)
                ),
            )
        self.watcher = (
            RedisWatcher(settings.policy_sync_url, channel=f"matgate:policy:{self.institution}")
            if settings.policy_sync_url
            else None
        )
        policy = PolicyConfig.model_validate(config.policy)
        self.mask = _mask_secret(settings, policy)
        self.governance = Governance(
            self.engine,
            policy,
            clock=clock,
            watcher=self.watcher,
            mask_key=self.mask.key,
            mask_key_id=self.mask.kid,
        )
        if self.catalog.count():  # policy lines may then name only datasets of the catalog
            self.governance.govern(self.catalog.by_domain(), self.catalog.licences())
        self.governance.seed(
            (),
            record=recorder(self, partial(policy_event, self.institution, config_actor)),
        )
        # the log's checkpoints as C2SP notes; this node witnessing its peers, and they it
        self.notary = Notary(self.engine, self.audit.signer, origin_of(self.institution))
        witness_key = _load_key(settings.resolved_key_file().with_name("witness_key.pem"))
        self.witness = Witness(
            self.engine,
            witness_key.private,
            f"matgate/{self.institution}/witness",
            audit=self.audit,
            clock=clock,
        )
        self.service = Principal(subject="witness", institution=self.institution)
        self.cosigners = Cosigners(self.peers, self.audit, self.notary, self.service)
        self.auth_failures = FailureLimiter(clock=clock)
        self.denials = DenialLimiter(
            burst=settings.denial_burst,
            window_seconds=settings.denial_window_seconds,
            clock=clock,
        )
        self.jobs = Jobs(
            self.engine,
            workers=config.limits.train_workers,
            record=recorder(self, partial(job_event, self.institution)),
        )
        self.kept_models = KeptModels()
        self.budgets = Budgets()
        self.lineage = Lineage(self.engine, self.audit)
        self.openlineage = (
            LineageEmitter(
                settings.openlineage_url,
                endpoint=settings.openlineage_endpoint,
                api_key=settings.openlineage_api_key,
                timeout=settings.openlineage_timeout,
            )
            if settings.openlineage_url
            else None
        )
        self.provenance = ProvenanceStore(
            self.lineage,
            sign=lambda manifest: sign_manifest(manifest, self.key.private, self.key.kid),
            emitter=self.openlineage,
        )

    def _peer_issuer(self, peer: PeerConfig) -> IssuerConfig:
        """A peer node as the issuer of on-behalf-of assertions addressed to this node."""
        return IssuerConfig(
            issuer=peer.issuer,
            institution=None,  # read from the assertion, then held to the peer's own
            audience=self.public_url,
            jwks_url=peer.jwks_url,
            jwks=peer.jwks,
            algorithms=(ALGORITHM,),
        )

    def close(self) -> None:
        """Release stores, HTTP clients and database connections."""
        if self.openlineage is not None:
            self.openlineage.close(timeout=5.0)
        if isinstance(self.replay, RedisReplayCache):
            self.replay.close()
        self.jobs.close()
        self.governance.close()
        self.stores.close()
        self.auth.close()
        self.engine.dispose()


def _mask_secret(settings: Settings, policy: PolicyConfig) -> MaskSecret:
    """The key of the node's hash masks; a node without one does not start."""
    shared = {k.name: k.env for k in policy.shared_mask_keys}
    path = settings.resolved_mask_secret_file()
    try:
        return mask_secret_for(policy.mask_key, shared, path, os.environ)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"policy.mask_key: {exc}") from exc


def _identity_policy(config: NodeConfig, network: NetPolicy) -> NetPolicy:
    """Where JWKS may be fetched from: the node's policy, and peers allowed to be private."""
    for peer in config.peers:
        network = peer_policy(peer, network)
    return network


def _guard(peer: PeerConfig, network: NetPolicy) -> Callable[[str], None]:
    """The SSRF check of a peer's JWKS URL, failing as an authentication error."""

    def check(url: str) -> None:
        try:
            check_address(url, allow_private=peer.allow_private_network, network=network)
        except MatgateError as exc:
            raise Unauthorized(f"cannot fetch the keys of peer {peer.institution!r}") from exc

    return check


def _load_key(path: Path) -> NodeKey:
    """The key at ``path``, made if missing; a replica that loses the race to make it reads
    the one the other made."""
    try:
        return NodeKey.load_or_create(path)
    except FileExistsError:
        return NodeKey.load_or_create(path)
