"""Configuration, read once from the environment (see the README's table)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestration.base.policy import MAX_ATTEMPTS, CookPolicy
from orchestration.base.tools import BUILTIN_TOOLS
from orchestration.catalog.layer_tool import TOOL_ID as LAYERS_TOOL_ID
from orchestration.generators.providers import ProviderConfig, parse_providers
from orchestration.notifications.addresses import parse_networks
from orchestration.notifications.config import NotificationConfig
from orchestration.notifications.schedule import RetrySchedule
from schema.query_cost import QueryLimits
from schema.rate_limits import LIMITABLE_SUBSCRIPTIONS, OPERATION_LIMITS, parse_limit

# RFC 8725: asymmetric algorithms only, so an HMAC secret can never stand in for a public key.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class MediaStoreKind(StrEnum):
    GRIDFS = "gridfs"  # in the database: replicas share nothing else
    FILESYSTEM = "filesystem"  # under COOK_DATA_DIR/media: one machine


class Settings(BaseSettings):
    """Every setting of the service. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_prefix="COOK_", extra="ignore", frozen=True, populate_by_name=True
    )

    env: Environment = Environment.DEVELOPMENT
    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "COOK_MONGODB_URI")
    )
    db_name: str = Field(default="cook", pattern=r"^[A-Za-z0-9_-]{1,60}$")
    data_dir: Path = Path(".cook-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object a line (observability)
    # /metrics in production needs "Authorization: Bearer <this>"; unset there, no /metrics.
    metrics_token: SecretStr | None = None
    metrics: bool = True  # false: no HTTP, GraphQL or database metrics and no /metrics

    jwt_issuer: str = "cook-dev"
    jwt_audience: str = "cook"
    jwt_algorithms: Annotated[list[str], NoDecode] = ["EdDSA"]
    jwt_public_key: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_key_id: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)

    db_timeout_ms: int = Field(default=5000, ge=100, le=120_000)

    max_concurrent_cap: int = Field(default=32, ge=1, le=256)
    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    backoff_base_seconds: float = Field(default=1.0, ge=0.001, le=3600)
    backoff_cap_seconds: float = Field(default=60.0, ge=0.001, le=86_400)
    lease_seconds: float = Field(default=60.0, ge=0.1, le=86_400)
    tick_seconds: float = Field(default=0.5, ge=0.01, le=60)
    scheduler: bool = True

    # Where images and export archives live (docs/media.md). Unset: files under COOK_DATA_DIR
    # with the embedded database (one machine), GridFS with MONGODB_URI (a cluster).
    media_store: MediaStoreKind | None = None
    # Processes composing the ``layers`` tool's images; 0: one per core.
    compose_workers: int = Field(default=0, ge=0, le=256)
    media_gc_grace_seconds: float = Field(default=3600.0, ge=0.1, le=30 * 86_400)
    media_gc_every_seconds: float = Field(default=600.0, ge=0.05, le=86_400)

    # Generation providers: a JSON list (see orchestration/generators/providers.py and the README).
    providers: str = ""
    public_url: str | None = None  # where providers send webhooks; default http://host:port

    progress_poll_seconds: float = Field(default=0.25, ge=0.01, le=10)
    ws_max_subscriptions: int = Field(default=10, ge=1, le=100)
    allowed_origins: Annotated[list[str], NoDecode] = []
    # Abuse limits (see the README's "Limits" section).
    rate_limit_storage_uri: str = "memory://"
    # The longest a request waits on that storage; then its limits are open (docs/deployment.md).
    rate_limit_timeout_ms: int = Field(default=250, ge=10, le=10_000)
    http_rate_limit: str = "1200/minute"
    operation_rate_limits: dict[str, str] = {}
    max_query_depth: int = Field(default=10, ge=2, le=50)
    max_query_aliases: int = Field(default=15, ge=0, le=1000)
    max_query_tokens: int = Field(default=5000, ge=50, le=1_000_000)
    max_query_cost: int = Field(default=250_000, ge=1, le=100_000_000)

    # Outbound webhooks (docs/webhooks.md).
    webhook_allowed_networks: Annotated[list[str], NoDecode] = []
    webhook_max_endpoints: int = Field(default=10, ge=1, le=100)
    webhook_retry_base_seconds: float = Field(default=60.0, ge=0.001, le=86_400)
    webhook_retry_cap_seconds: float = Field(default=7200.0, ge=0.001, le=7 * 86_400)
    webhook_max_attempts: int = Field(default=12, ge=1, le=50)
    webhook_disable_after_failed: int = Field(default=5, ge=1, le=1000)
    webhook_rotation_overlap_seconds: float = Field(default=86_400.0, ge=0, le=30 * 86_400)
    webhook_connect_timeout_seconds: float = Field(default=3.0, ge=0.05, le=30)
    webhook_timeout_seconds: float = Field(default=10.0, ge=0.05, le=60)
    webhook_send_rate_limit: str = "120/minute"
    webhook_lease_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    # Trusted documents (docs/graphql-clients.md): optional, required or record.
    trusted_documents: Literal["optional", "required", "record"] = "optional"
    trusted_documents_manifest: Path | None = None  # besides the studio's own
    trusted_documents_record_file: Path | None = None  # default: data_dir/recorded-documents.json

    def policy(self) -> CookPolicy:
        return CookPolicy(
            max_concurrent_cap=self.max_concurrent_cap,
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_cap_seconds=self.backoff_cap_seconds,
            lease_seconds=self.lease_seconds,
            tick_seconds=self.tick_seconds,
        )

    def notification_config(self) -> NotificationConfig:
        return NotificationConfig(
            public_url=self.base_url,
            require_https=not self.is_development,
            allowed_networks=tuple(parse_networks(self.webhook_allowed_networks)),
            max_endpoints=self.webhook_max_endpoints,
            schedule=RetrySchedule(
                self.webhook_retry_base_seconds,
                self.webhook_retry_cap_seconds,
                self.webhook_max_attempts,
            ),
            disable_after_failed=self.webhook_disable_after_failed,
            rotation_overlap_seconds=self.webhook_rotation_overlap_seconds,
            connect_timeout_seconds=self.webhook_connect_timeout_seconds,
            timeout_seconds=self.webhook_timeout_seconds,
            send_rate_limit=self.webhook_send_rate_limit,
            rate_limit_storage_uri=self.rate_limit_storage_uri,
            # A claimed delivery must not be due again while its request may still run.
            lease_seconds=max(self.webhook_lease_seconds, 2 * self.webhook_timeout_seconds),
            tick_seconds=self.tick_seconds,
        )

    def query_limits(self) -> QueryLimits:
        return QueryLimits(
            max_depth=self.max_query_depth,
            max_aliases=self.max_query_aliases,
            max_tokens=self.max_query_tokens,
            max_cost=self.max_query_cost,
        )

    def operation_limits(self) -> dict[str, str]:
        """The per-operation table with this deployment's overrides applied."""
        return {**OPERATION_LIMITS, **self.operation_rate_limits}

    @field_validator("http_rate_limit")
    @classmethod
    def _one_limit(cls, value: str) -> str:
        parse_limit(value, "COOK_HTTP_RATE_LIMIT")
        return value

    @field_validator("webhook_send_rate_limit")
    @classmethod
    def _send_limit(cls, value: str) -> str:
        parse_limit(value, "COOK_WEBHOOK_SEND_RATE_LIMIT")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"COOK_WEBHOOK_ALLOWED_NETWORKS: {exc}") from exc
        return value

    @field_validator("operation_rate_limits")
    @classmethod
    def _known_operations(cls, value: dict[str, str]) -> dict[str, str]:
        for field, limit in value.items():
            if field not in OPERATION_LIMITS and field not in LIMITABLE_SUBSCRIPTIONS:
                known = ", ".join(sorted({*OPERATION_LIMITS, *LIMITABLE_SUBSCRIPTIONS}))
                raise ValueError(f"{field!r} has no per-operation limit (known: {known})")
            parse_limit(limit, f"COOK_OPERATION_RATE_LIMITS[{field}]")
        return value

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if value.startswith("async+"):
            raise ValueError("give the plain URI (memory://, redis://...): async+ is added")
        return value

    @field_validator(
        "mongodb_uri",
        "jwt_public_key",
        "jwt_jwks_url",
        "jwt_key_id",
        "public_url",
        "media_store",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("jwt_algorithms", "allowed_origins", "webhook_allowed_networks", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _only_asymmetric(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is required")
        refused = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if refused:
            raise ValueError(
                f"only asymmetric algorithms are accepted, not {', '.join(refused)} "
                f"(allowed: {', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
            )
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _https_jwks(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("https://", "http://127.0.0.1", "http://localhost")
        ):
            raise ValueError("the JWKS URL must use https (plain http only on loopback)")
        return value

    @field_validator("providers")
    @classmethod
    def _valid_providers(cls, value: str) -> str:
        configs = parse_providers(value)  # a ValidationError names the bad field
        ids = [c.id for c in configs]
        if len(set(ids)) != len(ids) or set(ids) & {LAYERS_TOOL_ID, *(t.id for t in BUILTIN_TOOLS)}:
            raise ValueError("provider ids must be unique and differ from the built-in tools'")
        return value

    def provider_configs(self) -> list[ProviderConfig]:
        return parse_providers(self.providers)

    @property
    def base_url(self) -> str:
        """Where this deployment is reached from outside."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def callback_url(self, provider_id: str) -> str:
        return f"{self.base_url}/webhooks/{provider_id}"

    @property
    def media_store_kind(self) -> MediaStoreKind:
        """The store in use: ``COOK_MEDIA_STORE`` if set, else the deployment's default."""
        if self.media_store is not None:
            return self.media_store
        return MediaStoreKind.FILESYSTEM if self.mongodb_uri is None else MediaStoreKind.GRIDFS

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
