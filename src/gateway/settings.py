"""Process settings: environment variables with the ``MATGATE_`` prefix (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """How this process runs a node; what the node serves is in its config file."""

    model_config = SettingsConfigDict(env_prefix="MATGATE_", env_file=".env", extra="ignore")

    config: Path | None = Field(
        default=None, description="Path of the node's TOML config file (institution, stores, ...)."
    )
    data_dir: Path = Field(
        default=Path(".matgate"), description="Folder for the node's key and embedded database."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the node database; default SQLite in data_dir/node.db.",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    public_url: str | None = Field(
        default=None, description="URL under which peers and clients reach this node."
    )
    key_file: Path | None = Field(
        default=None, description="PEM file of the node's Ed25519 signing key (made if missing)."
    )
    token_ttl_seconds: int = Field(
        default=3600, gt=0, description="Lifetime of tokens minted by the development issuer."
    )
    batch_rows: int = Field(
        default=65536, gt=0, le=4_000_000, description="Rows per Arrow record batch streamed out."
    )
    whole_slice_bytes: int = Field(
        default=1 << 20,
        ge=0,
        le=1 << 30,
        description=(
            "A slice that ends within this many bytes is sent as one response: its decision and "
            "completion are written to the audit log in one commit before any byte leaves. "
            "Larger slices stream, their decision written before the first byte."
        ),
    )
    max_rows: int | None = Field(
        default=None, gt=0, description="Upper bound on rows one slice may return (None: no bound)."
    )
    log_level: str = Field(default="INFO", description="Logging level.")
    log_json: bool = Field(default=True, description="Log as JSON lines (one per event).")
    policy_sync_url: str | None = Field(
        default=None,
        description="Redis URL that carries policy changes between replicas sharing a database; "
        "without it each request checks the stored policy version.",
    )
    predict_window_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Window of the per-principal budget of calls to models kept on this node.",
    )
    predict_calls_per_window: int = Field(
        default=200, gt=0, description="Prediction and screening calls one principal may make."
    )
    predict_rows_per_window: int = Field(
        default=20_000, gt=0, description="Rows (candidates) one principal may have predicted."
    )
    predict_max_rows: int = Field(
        default=100, gt=0, le=10_000, description="Rows one prediction call may carry."
    )
    screen_max_candidates: int = Field(
        default=5000, gt=0, le=200_000, description="Candidates one screening call may build."
    )
    predict_min_distance: float = Field(
        default=0.05,
        ge=0,
        description="Candidates whose numeric inputs are nearer than this to a training row's "
        "(root mean square of the differences in units of each input's spread) are refused as "
        "probes, as are those the model sees exactly as a training row.",
    )
    predict_digits: int = Field(
        default=2,
        ge=1,
        le=15,
        description="Significant digits of the predictions answered (two: about a forward "
        "model's accuracy, too coarse to read a stored value back).",
    )
    audit_checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="How often the audit log's tree head is signed."
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        le=1 << 30,
        description="Largest request body of a route without a limit of its own (bytes).",
    )
    body_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Body limits per route template, overriding the built-in ones, as JSON: "
        '{"/catalog": 2097152}. See gateway/limits.py for the defaults.',
    )
    mask_secret_file: Path | None = Field(
        default=None,
        description="File of the node's hash-mask secret (made, mode 0600, if missing); "
        "default: mask_secret beside the signing key.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token a Prometheus scraper may present at /metrics (besides the "
        "node's auditors and operators).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve /metrics on this separate port only, without authentication "
        "(keep it on a private interface: metrics_host).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the separate metrics listener."
    )
    denial_burst: int = Field(
        default=20,
        gt=0,
        description="Denials recorded one by one per principal and window; more are counted.",
    )
    denial_window_seconds: float = Field(
        default=60.0, gt=0, description="Window of the per-principal denial limit."
    )

    openlineage_url: str | None = Field(
        default=None,
        description="Base URL of an OpenLineage endpoint (Marquez or any compatible receiver) "
        "to push run events of slices and training runs to; none: events are not pushed.",
    )
    openlineage_endpoint: str = Field(
        default="api/v1/lineage", description="Path of the OpenLineage endpoint under its URL."
    )
    openlineage_api_key: str | None = Field(
        default=None, description="Bearer API key for the OpenLineage endpoint, if it needs one."
    )
    openlineage_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds per OpenLineage request (then retried)."
    )

    def resolved_database_url(self) -> str:
        """The node database URL, defaulting to SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'node.db').resolve()}"

    def resolved_key_file(self) -> Path:
        """The signing key's path, defaulting to ``data_dir/node_key.pem``."""
        return self.key_file or self.data_dir / "node_key.pem"

    def resolved_mask_secret_file(self) -> Path:
        """The hash-mask secret's path, defaulting to ``mask_secret`` beside the signing key."""
        return self.mask_secret_file or self.resolved_key_file().with_name("mask_secret")
