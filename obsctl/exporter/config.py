"""The exporter's YAML config: validated strictly, secrets from env or files, errors for people."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from obsctl.configfile import (
    StrictModel,
    describe_validation_error,
    host_port,
    load_model,
    set_path,
)
from obsctl.exporter.leader import LeaderConfig
from obsctl.exporter.probes.bullmq import BullMQConfig
from obsctl.exporter.probes.business_config import BusinessConfig
from obsctl.exporter.probes.cos import COSConfig
from obsctl.exporter.probes.mysql import MySQLConfig
from obsctl.exporter.probes.provider import ProviderConfig
from obsctl.exporter.probes.provider_config import UNRESOLVED
from obsctl.exporter.probes.provider_headers import (
    resolve_header_references,
    without_header_values,
)
from obsctl.exporter.probes.redis import RedisConfig
from obsctl.httpserve import ServerLimits

# Environment variables that override (or supply) a key of the file: VAR -> key path.
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], ...]] = {
    "OBSCTL_LISTEN": (("listen",),),
    "OBSCTL_MYSQL_DSN": (("mysql", "dsn"),),
    "OBSCTL_REDIS_URL": (("redis", "url"), ("bullmq", "url")),
    "OBSCTL_COS_ENDPOINT": (("cos", "endpoint"),),
    "OBSCTL_COS_BUCKET": (("cos", "bucket"),),
    "OBSCTL_COS_ACCESS_KEY": (("cos", "access_key"),),
    "OBSCTL_COS_SECRET_KEY": (("cos", "secret_key"),),
    "OBSCTL_COS_REGION": (("cos", "region"),),
    "OBSCTL_SENTRY_DSN": (("sentry", "dsn"),),
}


class SentryConfig(StrictModel):
    """Where the exporter's own errors go (off without a DSN)."""

    dsn: SecretStr | None = None
    environment: str = "local"


class TracingConfig(StrictModel):
    """OpenTelemetry spans for every probe run, exported over OTLP/HTTP when an endpoint is set."""

    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    service_name: str = "obsctl-exporter"


class HealthConfig(StrictModel):
    """How /health judges the latest results."""

    # A result older than this many intervals means the probe itself is stuck: do not trust it.
    # Keep it equal to thresholds.exporter_stale_intervals of the mixin config, which pages on
    # the same staleness (`obsctl validate` checks that they agree).
    stale_after_intervals: int = Field(default=3, ge=2, le=20)


class ExporterConfig(StrictModel):
    """Everything the exporter does; each dependency section is optional."""

    listen: str = "127.0.0.1:18310"
    server: ServerLimits = Field(default_factory=ServerLimits)
    mysql: MySQLConfig | None = None
    business: BusinessConfig | None = None
    redis: RedisConfig | None = None
    bullmq: BullMQConfig | None = None
    cos: COSConfig | None = None
    providers: list[ProviderConfig] = Field(default_factory=list)
    sentry: SentryConfig = Field(default_factory=SentryConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    leader: LeaderConfig = Field(default_factory=LeaderConfig)

    _listen_is_host_port = field_validator("listen")(host_port)

    @field_validator("providers")
    @classmethod
    def _provider_names_unique(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        names = [p.name for p in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"provider names must be unique, repeated: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _probes_are_configured(self) -> ExporterConfig:
        if self.business is not None and self.mysql is None:
            raise ValueError("business reads through the mysql probe's pool: add a mysql section")
        if self.leader.enabled and self.lease_url is None:
            raise ValueError(
                "leader.enabled needs leader.url or a redis section to keep the lease in"
            )
        sections = ("mysql", "business", "redis", "bullmq", "cos")
        if not self.providers and all(getattr(self, name) is None for name in sections):
            raise ValueError(
                "no probe is configured: add at least one of mysql, business, redis, bullmq, "
                "cos or providers (an exporter that probes nothing reports nothing)"
            )
        return self

    @property
    def lease_url(self) -> SecretStr | None:
        """The Redis the leader lease lives in: leader.url, else the redis probe's."""
        if self.leader.url is not None:
            return self.leader.url
        return self.redis.url if self.redis is not None else None

    @property
    def host_port(self) -> tuple[str, int]:
        """listen split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def load(path: Path, environ: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read, resolve and validate a config file; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    return load_model(path, ExporterConfig, environ, _prepare, _explain)


def _prepare(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Apply the OBSCTL_* overrides, then resolve the references inside header values."""
    for var, paths in ENV_OVERRIDES.items():
        value = environ.get(var)
        if not value:
            continue
        for path in paths:
            set_path(raw, path, value)
    resolve_header_references(raw, environ)


def _explain(error: Any, raw: dict[str, Any]) -> str:
    """One problem as the loader says it, with no provider header value ever quoted."""
    if error.get("type") == UNRESOLVED:
        return str(error.get("msg"))
    return describe_validation_error(error, without_header_values(raw))
