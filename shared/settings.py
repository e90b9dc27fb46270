"""Validated configuration, read from ``SEG_*`` environment variables and ``.env``.

Why pydantic-settings: a wrong value must stop the process before it touches a
broker, with a message naming the variable. Secrets are ``SecretStr`` so they never
appear in logs or reprs. Nested sections use ``__``:
``SEG_KAFKA__BOOTSTRAP_SERVERS``, ``SEG_REDIS__URL``, ``SEG_TOPICS__INVOICES``.

Each component (producer, worker, bootstrapper) adds its own section class next
to its code with :func:`section_config`, so all variables share the one prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.exceptions import ConfigError
from shared.redaction import has_credentials, redact_url

ENV_PREFIX = "SEG_"


def section_config(section: str | None = None) -> SettingsConfigDict:
    """Settings config for a top-level section: ``SEG_<SECTION>_<FIELD>``."""
    prefix = f"{ENV_PREFIX}{section.upper()}_" if section else ENV_PREFIX
    return SettingsConfigDict(
        env_prefix=prefix,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )


class KafkaSettings(BaseModel):
    """How to reach the broker, including TLS and SASL."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port…]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    client_id: str = "segments"
    request_timeout_ms: int = Field(30_000, ge=1_000)
    delivery_timeout_ms: int = Field(
        120_000, ge=2_000, description="a sent record is acknowledged or failed within this (retries included)"
    )
    # Group-membership timeouts. Kafka's defaults make a group join take ~20 s on
    # small brokers; these values keep failover and startup fast.
    session_timeout_ms: int = Field(6_000, ge=1_000)
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    max_poll_interval_ms: int = Field(60_000, ge=1_000)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_have_ports(cls, value: str) -> str:
        if "@" in value:
            raise ValueError(
                "holds credentials (user:password@); list host:port only and set "
                "SEG_KAFKA__SASL_USERNAME / SEG_KAFKA__SASL_PASSWORD"
            )
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"'{server}' is not host:port (e.g. 127.0.0.1:9092)")
        return value

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        sasl_complete = self.sasl_mechanism and self.sasl_username and self.sasl_password
        if self.security_protocol.startswith("SASL") and not sasl_complete:
            raise ValueError(
                "SASL needs sasl_mechanism, sasl_username and sasl_password "
                "(SEG_KAFKA__SASL_MECHANISM, SEG_KAFKA__SASL_USERNAME, SEG_KAFKA__SASL_PASSWORD)"
            )
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        if self.delivery_timeout_ms < self.request_timeout_ms + 1_000:
            raise ValueError(
                "delivery_timeout_ms must exceed request_timeout_ms by at least 1000 "
                "(SEG_KAFKA__DELIVERY_TIMEOUT_MS, SEG_KAFKA__REQUEST_TIMEOUT_MS)"
            )
        return self


class RedisSettings(BaseModel):
    """How to reach Redis, including AUTH and TLS (use a ``rediss://`` URL for TLS)."""

    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: SecretStr | None = None
    ssl_ca_certs: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    key_prefix: str = Field("seg:", min_length=1, description="namespace of every key we write")
    socket_timeout_s: float = Field(10.0, gt=0)
    cluster: bool = Field(
        False,
        description="the URL names one node of a Redis Cluster: keys are spread over its shards by their hash "
        "tags (one partition's keys stay together, so each commit is one atomic script on one shard)",
    )

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(f"'{value}' contains a brace: keys carry their own hash tags ({{p3}}, {{model}})")
        return value

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"'{redact_url(value)}' must start with redis://, rediss:// or unix://")
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "url" else value

    @model_validator(mode="after")
    def _credentials_in_one_place(self) -> RedisSettings:
        if (self.password or self.username) and has_credentials(self.url):
            raise ValueError(
                "credentials are set twice, in the URL and in SEG_REDIS__USERNAME/SEG_REDIS__PASSWORD "
                "(the URL's would win); keep one of them"
            )
        return self


class TopicSettings(BaseModel):
    """Topic names and how missing topics are created."""

    invoices: str = "invoices"
    dead_letter: str = "invoices-dlq"
    segment_changes: str = "segment-changes"
    drift_alerts: str = "drift-alerts"
    drift_observations: str = Field(
        "drift-observations", description="internal: what workers report to the drift monitor (one partition)"
    )
    partitions: int = Field(6, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1, le=7)


class Settings(BaseSettings):
    """Connection settings shared by every component."""

    model_config = section_config()

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    topics: TopicSettings = TopicSettings()


def isolated_settings(
    bootstrap_servers: str, redis_url: str, label: str, partitions: int = 3, cluster: bool = False
) -> Settings:
    """Settings whose topics, Redis keys and client id are unique to one run.

    For runs that share a broker and a Redis (tests, benchmarks): nothing one run
    writes can be read by another.
    """
    tag = f"{label}-{uuid.uuid4().hex[:8]}"
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers, client_id=tag),
        redis=RedisSettings(url=redis_url, key_prefix=f"{tag}:", cluster=cluster),
        topics=TopicSettings(
            invoices=f"invoices-{tag}",
            dead_letter=f"invoices-dlq-{tag}",
            segment_changes=f"segment-changes-{tag}",
            drift_alerts=f"drift-alerts-{tag}",
            drift_observations=f"drift-observations-{tag}",
            partitions=partitions,
        ),
    )


def as_environment(settings: Settings) -> dict[str, str]:
    """``SEG_*`` variables that rebuild ``settings`` in a child process (tests, benchmarks)."""
    env = {}
    for section in ("kafka", "redis", "topics"):
        for name, value in getattr(settings, section):
            if value is not None:
                secret = value.get_secret_value() if isinstance(value, SecretStr) else value
                env[f"{ENV_PREFIX}{section.upper()}__{name.upper()}"] = str(secret)
    return env


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Build a settings object or raise :class:`ConfigError` naming what to fix."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = []
        for error in exc.errors():
            path = "__".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {prefix}{path}: {error['msg']}")
        raise ConfigError("invalid configuration; fix these variables:\n" + "\n".join(lines)) from None
