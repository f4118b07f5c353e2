"""The mixin config: every threshold, `for`, severity, team, link and receiver, in one place.

`obsctl/mixin/mixin.yaml` is the shipped config; `obsctl generate` renders alert-rules/,
alertmanager/ (and dashboards/) from it. Change a threshold there, regenerate, commit.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from obsctl.exporter.config import ConfigError, describe_validation_error
from obsctl.exporter.config_types import Duration

DEFAULT_CONFIG = Path(__file__).resolve().parent / "mixin.yaml"

Ratio = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[float, Field(gt=0)]
TeamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class Severity(StrEnum):
    """How urgent an alert is; routing and inhibition key on it."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertName(StrEnum):
    """Every alert the mixin generates; names are an interface (routes, silences, runbooks)."""

    API_HIGH_ERROR_RATE = "ApiHighErrorRate"
    API_HIGH_LATENCY_P95 = "ApiHighLatencyP95"
    QUEUE_BACKLOG_HIGH = "QueueBacklogHigh"
    QUEUE_STALLED = "QueueStalled"
    DEPENDENCY_DOWN = "DependencyDown"
    PROVIDER_DOWN = "ProviderDown"
    MYSQL_PROBE_SLOW = "MySQLProbeSlow"
    DB_POOL_SATURATED = "DBPoolSaturated"
    CACHE_HIT_RATIO_LOW = "CacheHitRatioLow"
    TASK_PASS_RATE_LOW = "TaskPassRateLow"
    EXPORTER_DOWN = "ExporterDown"
    WATCHDOG = "Watchdog"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Selectors(_Strict):
    """PromQL label matchers (without braces) that find each source of metrics."""

    api: str = 'job="demo-app"'
    exporter: str = 'job="obsctl-exporter"'


class Thresholds(_Strict):
    """The numbers on-call engineers are paged on; dashboards draw the same lines."""

    # 5xx share of API requests (seed: > 1 %), only when the API sees real traffic.
    api_error_ratio: Ratio = 0.01
    api_min_request_rate: Positive = 0.5  # requests/s below which error ratios are noise
    api_latency_p95_seconds: Positive = 0.2  # seed: P95 > 200 ms
    queue_backlog_jobs: Annotated[int, Field(ge=1)] = 500  # seed: waiting jobs > 500
    queue_stalled_seconds: Positive = 300.0  # oldest waiting job age while workers exist
    mysql_probe_latency_seconds: Positive = 0.05  # seed: DB probe latency > 50 ms
    db_connections_ratio: Ratio = 0.8  # threads_connected / max_connections
    cache_hit_ratio: Ratio = 0.85  # seed: Redis keyspace hit ratio < 85 %
    task_pass_rate: Ratio = 0.9  # succeeded / (succeeded + failed) per feature or provider
    task_min_finished_rate: Positive = 0.05  # tasks/s below which pass rates are noise
    exporter_stale_intervals: Annotated[int, Field(ge=2, le=20)] = 3  # probe results this old


class AlertPolicy(_Strict):
    """Who is paged and how soon for one alert."""

    severity: Severity
    team: TeamName
    for_: Duration | None = Field(default=None, alias="for")


def _default_alerts() -> dict[AlertName, AlertPolicy]:
    def policy(severity: str, team: str, for_: str | None) -> AlertPolicy:
        return AlertPolicy.model_validate({"severity": severity, "team": team, "for": for_})

    return {
        AlertName.API_HIGH_ERROR_RATE: policy("critical", "platform", "30s"),
        AlertName.API_HIGH_LATENCY_P95: policy("warning", "platform", "5m"),
        AlertName.QUEUE_BACKLOG_HIGH: policy("warning", "ai", "2m"),
        AlertName.QUEUE_STALLED: policy("critical", "ai", "2m"),
        AlertName.DEPENDENCY_DOWN: policy("critical", "sre", "1m"),
        AlertName.PROVIDER_DOWN: policy("critical", "ai", "1m"),
        AlertName.MYSQL_PROBE_SLOW: policy("warning", "sre", "5m"),
        AlertName.DB_POOL_SATURATED: policy("warning", "sre", "5m"),
        AlertName.CACHE_HIT_RATIO_LOW: policy("warning", "sre", "15m"),
        AlertName.TASK_PASS_RATE_LOW: policy("warning", "ai", "10m"),
        AlertName.EXPORTER_DOWN: policy("critical", "sre", "2m"),
        AlertName.WATCHDOG: policy("info", "sre", None),
    }


class Links(_Strict):
    """Where alerts point people: Grafana dashboards by UID, and runbooks."""

    grafana_url: str = Field(default="http://127.0.0.1:3000", pattern=r"^https?://")
    runbook_url_pattern: str = Field(
        default="https://github.com/obsctl/obsctl/blob/main/docs/runbooks/{alert}.md",
        pattern=r"\{alert\}",
    )
    dashboard_uids: dict[str, str] = Field(
        default_factory=lambda: {
            "api": "obsctl-api",
            "business": "obsctl-business",
            "queues": "obsctl-queues",
            "dependencies": "obsctl-dependencies",
            "database": "obsctl-database",
        }
    )


class Email(_Strict):
    """Alertmanager's SMTP settings and addresses."""

    smarthost: str = Field(default="127.0.0.1:18303", pattern=r"^[^:\s]+:\d{1,5}$")
    sender: str = Field(default="obsctl-alertmanager@example.com", alias="from")
    oncall_to: str = "oncall@example.com"
    require_tls: bool = False


class Routing(_Strict):
    """How Alertmanager groups, repeats and delivers."""

    relay_url: str = Field(default="http://127.0.0.1:18311", pattern=r"^https?://")
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "severity", "team"])
    group_wait: Duration = 10.0
    group_interval: Duration = 30.0
    repeat_interval_critical: Duration = 3600.0
    repeat_interval_warning: Duration = 4 * 3600.0
    watchdog_repeat_interval: Duration = 60.0
    email: Email = Field(default_factory=Email)


class MixinConfig(_Strict):
    """The whole mixin config."""

    selectors: Selectors = Field(default_factory=Selectors)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    teams: list[TeamName] = Field(default_factory=lambda: ["platform", "ai", "sre"])
    alerts: dict[AlertName, AlertPolicy] = Field(default_factory=_default_alerts)
    links: Links = Field(default_factory=Links)
    routing: Routing = Field(default_factory=Routing)

    @model_validator(mode="after")
    def _every_alert_known_and_owned(self) -> MixinConfig:
        missing = sorted(set(AlertName) - set(self.alerts))
        if missing:
            raise ValueError(f"alerts: missing policy for {', '.join(missing)}")
        unknown_teams = sorted({p.team for p in self.alerts.values()} - set(self.teams))
        if unknown_teams:
            raise ValueError(f"alerts: team(s) {', '.join(unknown_teams)} not listed in teams")
        return self

    def policy(self, alert: AlertName) -> AlertPolicy:
        """The policy of one alert."""
        return self.alerts[alert]

    def runbook_url(self, alert: AlertName) -> str:
        """The runbook link of one alert."""
        return self.links.runbook_url_pattern.format(alert=alert.value)

    def dashboard_url(self, board: str) -> str:
        """The Grafana link of one dashboard by its key in links.dashboard_uids."""
        return f"{self.links.grafana_url.rstrip('/')}/d/{self.links.dashboard_uids[board]}"


def load(path: Path = DEFAULT_CONFIG) -> MixinConfig:
    """Read and validate a mixin config; ConfigError lists every problem with its key path."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["the top level must be a mapping"])
    try:
        return MixinConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [describe_validation_error(err, raw) for err in exc.errors()]
        raise ConfigError(str(path), problems) from None
