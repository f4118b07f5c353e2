"""The exporter's YAML config: validated strictly, secrets from env or files, errors for people."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from obsctl.exporter.business import BusinessConfig
from obsctl.exporter.probes.bullmq import BullMQConfig
from obsctl.exporter.probes.cos import COSConfig
from obsctl.exporter.probes.mysql import MySQLConfig
from obsctl.exporter.probes.provider import ProviderConfig
from obsctl.exporter.probes.redis import RedisConfig

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
_REFERENCE = re.compile(
    r"^\$\{(?:(?P<file>file:)(?P<path>[^}]+)|(?P<var>[A-Za-z_][A-Za-z0-9_]*))\}$"
)
_LISTEN = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists each one with where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid config:\n  " + "\n  ".join(problems))


class SentryConfig(BaseModel):
    """Where the exporter's own errors go (off without a DSN)."""

    model_config = ConfigDict(extra="forbid")

    dsn: SecretStr | None = None
    environment: str = "local"


class TracingConfig(BaseModel):
    """OpenTelemetry spans for every probe run, exported over OTLP/HTTP when an endpoint is set."""

    model_config = ConfigDict(extra="forbid")

    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    service_name: str = "obsctl-exporter"


class ExporterConfig(BaseModel):
    """Everything the exporter does; each dependency section is optional."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:18310"
    mysql: MySQLConfig | None = None
    business: BusinessConfig | None = None
    redis: RedisConfig | None = None
    bullmq: BullMQConfig | None = None
    cos: COSConfig | None = None
    providers: list[ProviderConfig] = Field(default_factory=list)
    sentry: SentryConfig = Field(default_factory=SentryConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:18310, found {value!r}")
        return value

    @field_validator("providers")
    @classmethod
    def _provider_names_unique(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        names = [p.name for p in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"provider names must be unique, repeated: {', '.join(duplicates)}")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        """listen split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def load(path: Path, environ: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read, resolve and validate a config file; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(source, [f"not valid YAML at {where}: {exc}"]) from None
    if not path.exists():
        raise ConfigError(source, ["file not found"])
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"the top level must be a mapping, found {type(raw).__name__}"])
    problems: list[str] = []
    resolved = _resolve_references(raw, (), environ, problems)
    _apply_env_overrides(resolved, environ)
    if problems:
        raise ConfigError(source, problems)
    try:
        return ExporterConfig.model_validate(resolved)
    except ValidationError as exc:
        problems = [describe_validation_error(err, resolved) for err in exc.errors()]
        raise ConfigError(source, problems) from None


def _resolve_references(
    node: Any, where: tuple[str | int, ...], environ: Mapping[str, str], problems: list[str]
) -> Any:
    """Replace "${VAR}" and "${file:/path}" strings by their values, collecting what is missing."""
    if isinstance(node, dict):
        return {k: _resolve_references(v, (*where, k), environ, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_references(v, (*where, i), environ, problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    match = _REFERENCE.match(node.strip())
    if not match:
        return node
    key = _dotted(where)
    if match.group("var"):
        name = match.group("var")
        if name not in environ:
            problems.append(f"{key}: environment variable {name} is not set")
            return None
        return environ[name]
    secret_path = Path(match.group("path"))
    try:
        return secret_path.read_text().strip()
    except OSError as exc:
        problems.append(f"{key}: cannot read secret file {secret_path}: {exc.strerror}")
        return None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var, paths in ENV_OVERRIDES.items():
        value = environ.get(var)
        if not value:
            continue
        for path in paths:
            node = raw
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[path[-1]] = value


_SECRET_HINTS = ("dsn", "url", "key", "secret", "password", "token")


def describe_validation_error(error: Any, raw: dict[str, Any]) -> str:
    """'mysql.interval: expected ..., found ...' with secrets never echoed."""
    loc = tuple(error.get("loc", ()))
    key = _dotted(loc) or "(top level)"
    message = error.get("msg", "invalid")
    if error.get("type") == "extra_forbidden":
        return f"{key}: unknown key"
    if error.get("type") == "missing":
        return f"{key}: required key is missing"
    found = _redacted(_lookup(raw, loc), str(loc[-1]) if loc else "")
    return f"{key}: {message} (found {found!r})"


def _redacted(value: Any, key: str) -> Any:
    """value with anything under a secret-looking key replaced, however deep."""
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if isinstance(value, str) and any(hint in key.lower() for hint in _SECRET_HINTS):
        return "<redacted>"
    return value


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    node = raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _dotted(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
