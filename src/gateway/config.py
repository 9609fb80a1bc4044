"""A node's config file (TOML): its institution, stores, datasets, trusted issuers and peers.

Validated on load; an error names the file, the line and the key that is wrong::

    [node]
    institution = "alpha"

    [network]
    allow = ["127.0.0.1", "idp.internal", "10.20.0.0/16"]   # beyond the public internet

    [stores.lab]
    kind = "sql"                      # or "files", "optimade", "spark"
    url = "sqlite:///stores/lab.db"   # relative paths are relative to this file
    schemas = ["main"]                # what registration may reach (default: the default schema)

    [stores.lake]
    kind = "spark"                    # tables of a Spark catalog, through Spark Connect
    url = "sc://spark.internal:15002"
    schemas = ["lake"]                # the Spark databases datasets may use (default: default)

    [[issuers]]
    issuer = "https://idp.alpha.example"
    discovery = true                  # or jwks_url = "...", or jwks = { keys = [...] }
    namespace = "alpha"               # its users are alpha:<sub>
    institution = "alpha"
    roles_claim = "realm_access.roles"

    [[datasets]]
    name = "ni-superalloys"
    title = "..."
    license = "Apache-2.0"
    location = { store = "lab", table = "ni_superalloys" }
    columns = [ { name = "yield_strength_mpa", type = "float", unit = "MPa", pspp = "property" } ]
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.datasets import Dataset
from connectors.netguard import NetPolicy, parse_allow
from gateway.claims import parse_claim_path
from gateway.memory import bulk
from policies.lines import ROLE
from policies.principals import NAMESPACE, split_principal_id

__all__ = [
    "ConfigError",
    "IssuerConfig",
    "Limits",
    "NetworkConfig",
    "NodeConfig",
    "NodeInfo",
    "OptimadeConfig",
    "OptimadeMapping",
    "PeerConfig",
    "ShareConfig",
    "StoreConfig",
    "load_config",
]


class ConfigError(ValueError):
    """A node config file is unreadable or invalid; the message names file, line and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeInfo(_Model):
    """Who this node is."""

    institution: str = Field(description="The institution (Casbin domain) this node serves.")
    title: str = Field(default="", description="Human-readable name of the institution.")
    public_url: str | None = Field(default=None, description="URL under which others reach it.")
    description: str = Field(default="", description="What the node's catalog holds (DCAT).")
    contact: str | None = Field(
        default=None,
        description="Where to ask about the data: an e-mail address or an https URL (DCAT).",
        pattern=r"^(https?://\S+|[^@\s]+@[^@\s]+)$",
    )


_IDENT = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"
_QUALIFIED = r"^(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$"


class StoreConfig(_Model):
    """One store the node fronts."""

    kind: Literal["sql", "files", "optimade", "spark"] = Field(
        description=(
            "Kind of store: a SQL database, a folder of CSV/Parquet files, an OPTIMADE provider, "
            "or the tables of a Spark catalog (Parquet, Delta, ...) reached through Spark Connect."
        )
    )
    url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL (sql), base URL (optimade), or Spark Connect URL (spark: "
            "sc://host:port, with options as Spark Connect takes them, e.g. ;token=...)."
        ),
    )
    path: str | None = Field(default=None, description="Folder of CSV/Parquet files (files).")
    schemas: tuple[Annotated[str, Field(pattern=_IDENT)], ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "sql: the schemas whose tables and views datasets may use (databases on MariaDB, "
            "attached database names on SQLite); default: the connection's default schema only "
            "(current_schema() on PostgreSQL, the URL's database on MariaDB, main on SQLite). "
            "spark: the catalog databases whose tables datasets may use (views are never "
            "served); default: default."
        ),
    )
    tables: tuple[Annotated[str, Field(pattern=_QUALIFIED)], ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "sql and spark: if set, only these tables (name, or schema.name) may back "
            "datasets; they must lie in the allowed schemas."
        ),
    )

    @model_validator(mode="after")
    def _target(self) -> StoreConfig:
        if self.kind == "files" and not self.path:
            raise ValueError("a 'files' store needs 'path'")
        if self.kind in ("sql", "optimade", "spark") and not self.url:
            raise ValueError(f"a '{self.kind}' store needs 'url'")
        if self.kind == "spark" and not (self.url or "").startswith("sc://"):
            raise ValueError("a 'spark' store's url is a Spark Connect URL, sc://host:port")
        if self.kind not in ("sql", "spark") and (
            self.schemas is not None or self.tables is not None
        ):
            raise ValueError("'schemas' and 'tables' apply to 'sql' and 'spark' stores only")
        return self

    @property
    def target(self) -> str:
        """URL or path, whichever the kind uses."""
        return self.path if self.kind == "files" else self.url  # type: ignore[return-value]


# Asymmetric algorithms only: a shared-secret (HS*) issuer invites alg confusion with public keys.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
    | {"Ed25519"}
)


class IssuerConfig(_Model):
    """A token issuer this node trusts (an institution's IdP, or a peer node).

    Its users' principal ids are qualified by ``namespace`` (``aurora:alice``), or by the issuer
    URL without one (``https://idp.example#alice``), so two issuers' ``alice`` never meet.
    """

    issuer: str = Field(description="Exact `iss` value.")
    namespace: str | None = Field(
        default=None,
        description="Short name qualifying its users' ids ('aurora' gives 'aurora:alice'); "
        "default: the issuer URL ('https://idp.example#alice').",
    )
    institution: str | None = Field(
        default=None, description="Institution of its users; None: taken from `institution_claim`."
    )
    audience: str | None = Field(default=None, description="Expected `aud`; default: node's URL.")
    discovery: bool = Field(
        default=False,
        description="Read `jwks_uri` from the issuer's /.well-known/openid-configuration, "
        "whose `issuer` must equal this one exactly.",
    )
    jwks_url: str | None = Field(default=None, description="Where to fetch its JWKS.")
    jwks: dict[str, Any] | None = Field(default=None, description="Inline JWKS.")
    algorithms: tuple[str, ...] = Field(
        default=("EdDSA", "RS256", "ES256"), description="Signing algorithms accepted (pinned)."
    )
    access_tokens_only: bool = Field(
        default=False,
        description="Accept only RFC 9068 access tokens (header typ 'at+jwt'), never ID tokens.",
    )
    roles_claim: tuple[str, ...] = Field(
        default=("roles",),
        description="Claim path(s) of the user's roles, e.g. 'realm_access.roles', "
        "'resource_access.<client>.roles', 'scope', '[\"https://example.org/roles\"]'.",
    )
    groups_claim: str | None = Field(
        default=None, description="Claim path of the user's IdP groups (mapped by group_roles)."
    )
    group_roles: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="IdP group -> matgate roles it confers."
    )
    institution_claim: str = Field(default="institution", description="Claim path naming it.")
    max_token_lifetime: int = Field(
        default=86400,
        gt=0,
        le=30 * 86400,
        description="Longest accepted lifetime in seconds (exp - iat, and exp - now).",
    )
    leeway: int = Field(default=30, ge=0, le=300, description="Clock skew allowed, seconds.")

    @field_validator("roles_claim", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _keys(self) -> IssuerConfig:
        given = sum(x is not None for x in (self.jwks_url, self.jwks))
        if self.discovery and given:
            raise ValueError("with 'discovery' the keys come from the issuer: no 'jwks_url'/'jwks'")
        if not self.discovery and given != 1:
            raise ValueError("give exactly one of 'jwks_url', 'jwks' or 'discovery = true'")
        if self.discovery and not self.issuer.startswith(("https://", "http://")):
            raise ValueError("discovery needs an http(s) issuer URL")
        if "none" in {a.lower() for a in self.algorithms}:
            raise ValueError("algorithm 'none' is never accepted")
        if not self.algorithms or not set(self.algorithms) <= SIGNING_ALGORITHMS:
            raise ValueError(
                f"algorithms must be among {sorted(SIGNING_ALGORITHMS)} (no shared-secret HS*)"
            )
        if self.namespace is not None and not NAMESPACE.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} must be a slug (a-z, 0-9, '_.-')")
        for path in (*self.roles_claim, self.groups_claim, self.institution_claim):
            if path is not None:
                parse_claim_path(path)
        if self.group_roles and self.groups_claim is None:
            raise ValueError("'group_roles' needs 'groups_claim'")
        for group, roles in self.group_roles.items():
            bad = [r for r in roles if not ROLE.match(r)]
            if bad:
                raise ValueError(f"group_roles[{group!r}]: {bad} are not role names")
        return self

    @property
    def qualifier(self) -> str:
        """What its users' ids are qualified by: the namespace, or the issuer URL."""
        return self.namespace or self.issuer


class PeerConfig(_Model):
    """Another node of the federation, trusted to speak for its own institution's users only."""

    institution: str = Field(description="The peer's institution id.")
    url: str = Field(description="The peer's base URL.")
    public_url: str | None = Field(
        default=None,
        description="The peer's public URL: `iss` of its assertions, `aud` of ours (default: url).",
    )
    jwks_url: str | None = Field(default=None, description="The peer node's JWKS URL.")
    jwks: dict[str, Any] | None = Field(default=None, description="The peer node's inline JWKS.")
    allow_private_network: bool = Field(
        default=False,
        description=(
            "Allow this peer's own host (url, jwks_url) although it resolves to a loopback or "
            "private address; [network] allow is the node-wide form. Metadata addresses stay "
            "refused."
        ),
    )
    connect_timeout: float = Field(default=3.0, gt=0, description="Seconds to connect.")
    read_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for any byte.")
    deadline: float = Field(
        default=30.0, gt=0, description="Overall seconds for a catalog, metadata or query call."
    )
    slice_deadline: float = Field(
        default=900.0, gt=0, description="Overall seconds for relaying one slice."
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Retries of idempotent calls (GET), with jitter."
    )
    max_json_bytes: int = Field(
        default=16 * 2**20, gt=0, description="Largest JSON answer accepted from the peer."
    )
    max_slice_bytes: int = Field(
        default=64 * 2**30, gt=0, description="Largest slice relayed from the peer."
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the peer's circuit."
    )
    breaker_cooldown: float = Field(
        default=30.0, gt=0, description="Seconds an open circuit waits before one trial call."
    )

    @model_validator(mode="after")
    def _keys(self) -> PeerConfig:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError("give exactly one of 'jwks_url' or 'jwks'")
        for name in ("url", "public_url", "jwks_url"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http(s) URL")
        return self

    @property
    def base_url(self) -> str:
        """The URL calls go to, without a trailing slash."""
        return self.url.rstrip("/")

    @property
    def issuer(self) -> str:
        """The peer's public URL: what its assertions name as `iss`, ours as `aud`."""
        return (self.public_url or self.url).rstrip("/")


class NetworkConfig(_Model):
    """Where the node may send requests besides the public internet (see connectors.netguard)."""

    allow: tuple[str, ...] = Field(
        default=(),
        description=(
            "Host names, IP addresses or CIDR networks that OPTIMADE stores, peers and JWKS URLs "
            "may resolve to although they are loopback, private or link-local; a cloud metadata "
            "address passes only when listed as that exact address."
        ),
    )

    @model_validator(mode="after")
    def _entries(self) -> NetworkConfig:
        for i, entry in enumerate(self.allow):
            try:
                parse_allow(entry)
            except ValueError as exc:
                raise ValueError(f"allow[{i}]: {exc}") from None
        return self

    def policy(self) -> NetPolicy:
        """The allow-list as the policy every outbound client checks."""
        return NetPolicy.from_entries(self.allow)


class Limits(_Model):
    """Bounds on the work a node does for one request."""

    train_max_rows: int = Field(default=200_000, gt=0, description="Rows a training job may use.")
    train_max_seconds: float = Field(
        default=300.0, gt=0, description="Wall time of a training job."
    )
    train_workers: int = Field(default=1, ge=1, le=16, description="Training jobs run at once.")


class NodeConfig(_Model):
    """A node's whole configuration."""

    node: NodeInfo = Field(description="Who this node is.")
    stores: dict[str, StoreConfig] = Field(
        default_factory=dict, description="The stores this node fronts, by name."
    )
    issuers: tuple[IssuerConfig, ...] = Field(default=(), description="Trusted token issuers.")
    datasets: tuple[Dataset, ...] = Field(default=(), description="Datasets this node serves.")
    peers: tuple[PeerConfig, ...] = Field(default=(), description="Other nodes of the federation.")
    policy: dict[str, Any] = Field(default_factory=dict, description="Policy seed (see policies).")
    limits: Limits = Field(default_factory=Limits, description="Bounds on one request's work.")
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="Private addresses outbound calls may reach."
    )
    optimade: OptimadeConfig = Field(
        default_factory=lambda: OptimadeConfig(), description="Datasets served at /optimade."
    )
    shares: tuple[ShareConfig, ...] = Field(default=(), description="Delta Sharing shares.")

    @model_validator(mode="before")
    @classmethod
    def _own_datasets(cls, data: Any) -> Any:
        # Datasets in a node's file belong to the node: fill in the institution.
        if isinstance(data, dict):
            inst = (data.get("node") or {}).get("institution")
            datasets = data.get("datasets") or []
            if inst and isinstance(datasets, list):
                data = {
                    **data,
                    "datasets": [
                        {"institution": inst, **d} if isinstance(d, dict) else d for d in datasets
                    ],
                }
        return data

    @model_validator(mode="after")
    def _references(self) -> NodeConfig:
        for i, ds in enumerate(self.datasets):
            if ds.institution != self.node.institution:
                raise ValueError(f"datasets[{i}]: institution must be {self.node.institution!r}")
            if ds.location.store not in self.stores:
                raise ValueError(f"datasets[{i}].location.store: no store {ds.location.store!r}")
        ids = [d.id for d in self.datasets]
        if len(ids) != len(set(ids)):
            raise ValueError("dataset names must be unique")
        _check_faces(self)
        peers = [p.institution for p in self.peers]
        if len(peers) != len(set(peers)) or self.node.institution in peers:
            raise ValueError("peers: one entry per other institution, never this node's own")
        return self

    @model_validator(mode="after")
    def _issuer_namespaces(self) -> NodeConfig:
        # Two issuers may never give the same principal id to two different people.
        institutions = {self.node.institution, *(p.institution for p in self.peers)}
        seen_iss = {p.issuer for p in self.peers}
        if len(seen_iss) != len(self.peers):
            raise ValueError("peers: two peers share a public URL (the issuer of their assertions)")
        seen_ns: set[str] = set()
        for i, issuer in enumerate(self.issuers):
            if issuer.issuer in seen_iss:
                raise ValueError(f"issuers[{i}].issuer: {issuer.issuer!r} is trusted twice")
            seen_iss.add(issuer.issuer)
            ns = issuer.namespace
            if ns is None:
                continue
            if ns in seen_ns:
                raise ValueError(f"issuers[{i}].namespace: {ns!r} is another issuer's already")
            seen_ns.add(ns)
            if ns in institutions and issuer.institution != ns:
                raise ValueError(
                    f"issuers[{i}].namespace: {ns!r} names an institution of the federation; "
                    f"only an issuer of its own users (institution = {ns!r}) may use it"
                )
        return self


_SHARE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class OptimadeMapping(_Model):
    """A dataset served as OPTIMADE structures: which column is the formula, which the id."""

    dataset: str = Field(description="Name of one of this node's datasets.")
    formula: str = Field(
        description="Column holding the chemical formula (-> chemical_formula_descriptive, "
        "and from it chemical_formula_reduced, elements, nelements, elements_ratios)."
    )
    id_column: str | None = Field(
        default=None, description="Column whose value names an entry (default: the formula)."
    )
    purpose: str = Field(default="research", description="Purpose declared for OPTIMADE reads.")


class OptimadeConfig(_Model):
    """The OPTIMADE face: its datasets, each a source of ``structures`` entries."""

    structures: tuple[OptimadeMapping, ...] = Field(default=(), description="Mapped datasets.")


class ShareConfig(_Model):
    """A Delta Sharing share: datasets a steward offers to named recipients, for one purpose."""

    name: str = Field(description="Share name (lower-case letters, digits, '_', '-').")
    datasets: tuple[str, ...] = Field(min_length=1, description="Names of this node's datasets.")
    users: tuple[str, ...] = Field(
        default=(), description="Recipients, by issuer-qualified id ('namespace:subject')."
    )
    institutions: tuple[str, ...] = Field(default=(), description="Every user of these.")
    purpose: str = Field(default="research", description="Purpose declared for the share's reads.")

    @model_validator(mode="after")
    def _shape(self) -> ShareConfig:
        if not _SHARE_NAME.match(self.name):
            raise ValueError(f"share name {self.name!r} must be lower-case letters, digits, _ -")
        if not (self.users or self.institutions):
            raise ValueError("a share names at least one recipient (users or institutions)")
        for user in self.users:
            split_principal_id(user)
        return self


def _check_faces(config: NodeConfig) -> None:
    """The faces' datasets and columns exist; share names are unique."""
    by_name = {d.name: d for d in config.datasets}
    for i, m in enumerate(config.optimade.structures):
        ds = by_name.get(m.dataset)
        if ds is None:
            raise ValueError(f"optimade.structures[{i}].dataset: no dataset {m.dataset!r}")
        for key in ("formula", "id_column"):
            col = getattr(m, key)
            if col is not None and col not in ds.column_names:
                raise ValueError(f"optimade.structures[{i}].{key}: {m.dataset} has no {col!r}")
    names = [s.name for s in config.shares]
    if len(names) != len(set(names)):
        raise ValueError("shares: names must be unique")
    for i, share in enumerate(config.shares):
        for name in share.datasets:
            if name not in by_name:
                raise ValueError(f"shares[{i}].datasets: no dataset {name!r}")


def load_config(path: Path) -> NodeConfig:
    """Read and validate a node config file; relative store paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw = _resolve_paths(raw, path.parent)
    try:
        with bulk():  # every dataset of the config is validated, and all of them are kept
            return NodeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _locate(text, loc)
            where = f"{path}:{line}" if line else str(path)
            key = _dotted(loc) or "(top level)"
            problems.append(f"{where}: {key}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from exc


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    stores = raw.get("stores")
    if not isinstance(stores, dict):
        return raw
    resolved = {}
    for name, store in stores.items():
        if isinstance(store, dict):
            store = dict(store)
            if isinstance(store.get("path"), str) and not Path(store["path"]).is_absolute():
                store["path"] = str((base / store["path"]).resolve())
            url = store.get("url")
            if (
                isinstance(url, str)
                and url.startswith("sqlite:///")
                and not url.startswith("sqlite:////")
            ):
                rel = url.removeprefix("sqlite:///")
                if rel and not rel.startswith(":memory:"):
                    store["url"] = f"sqlite:///{(base / rel).resolve()}"
        resolved[name] = store
    return {**raw, "stores": resolved}


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += ("." if out else "") + str(part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")


def _locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best effort: the line of the deepest table header or key that ``loc`` names."""
    keys = [str(p) for p in loc if not str(p).startswith("function-")]
    counters: dict[str, int] = {}
    arrays: dict[str, list[str]] = {}  # array-of-tables name -> path of its latest element
    table: list[str] = []
    best: tuple[int, int] | None = None  # (depth matched, line)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = header.group(2).replace('"', "").split(".")
            table = _concrete(parts, arrays)
            if header.group(1) == "[[":
                name = ".".join(table)
                counters[name] = counters.get(name, -1) + 1
                table = [*table, str(counters[name])]
                arrays[".".join(parts)] = table
            path = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            path = [*table, key.group(1).replace('"', "")]
        depth = _prefix(path, keys)
        if depth and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best else None


def _concrete(parts: list[str], arrays: dict[str, list[str]]) -> list[str]:
    """``datasets.columns`` -> ``datasets.2.columns`` inside the third ``[[datasets]]``."""
    for k in range(len(parts) - 1, 0, -1):
        parent = arrays.get(".".join(parts[:k]))
        if parent is not None:
            return [*parent, *parts[k:]]
    return list(parts)


def _prefix(path: list[str], keys: list[str]) -> int:
    n = 0
    for a, b in zip(path, keys, strict=False):
        if a != b:
            break
        n += 1
    return n
