"""The project's config, `obsctl.yaml`: every threshold, `for`, severity, team, link, receiver.

It is the one file a team edits about their platform (see obsctl.project); `obsctl generate`
renders alert-rules/, alertmanager/, dashboards/ and the rest of the project from it. Change a
threshold there, regenerate, commit.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from obsctl.config_types import Duration
from obsctl.configfile import ConfigError, describe_validation_error, read_mapping

Ratio = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[float, Field(gt=0)]
TeamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
# A target of the DingTalk relay (a robot; alertmanager/relay.yaml names each one).
RelayTarget = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# The Alertmanager receiver that delivers nowhere (alerts stay visible in Alertmanager).
BLACKHOLE = "blackhole"


class Severity(StrEnum):
    """How urgent an alert is; routing and inhibition key on it."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertName(StrEnum):
    """Every alert the mixin generates; names are an interface (routes, silences, runbooks)."""

    API_DOWN = "ApiDown"
    API_HIGH_ERROR_RATE = "ApiHighErrorRate"
    API_ERROR_BUDGET_BURN = "ApiErrorBudgetBurn"
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
    cache_min_lookup_rate: Positive = 1.0  # lookups/s below which a hit ratio is noise
    task_pass_rate: Ratio = 0.9  # succeeded / (succeeded + failed) per feature or provider
    task_min_finished_rate: Positive = 0.05  # tasks/s below which pass rates are noise
    exporter_stale_intervals: Annotated[int, Field(ge=2, le=20)] = 3  # probe results this old


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class BurnWindow(_Strict):
    """One window pair of a multi-window burn-rate alert (Google SRE workbook, "Alerting on SLOs").

    It fires when the error ratio over both windows exceeds burn_rate x the error budget: the
    long window proves the burn is significant, the short one that it is still going on (so the
    alert resolves minutes, not hours, after the errors stop).
    """

    long: Duration
    short: Duration
    burn_rate: Positive
    severity: Severity
    for_: Duration | None = Field(default=None, alias="for")

    @model_validator(mode="after")
    def _short_inside_long(self) -> BurnWindow:
        if self.short >= self.long:
            raise ValueError(
                f"short: must be shorter than long ({self.short:g}s >= {self.long:g}s)"
            )
        return self


def _default_burn_windows() -> list[BurnWindow]:
    def window(long: str, short: str, rate: float, severity: str, for_: str) -> BurnWindow:
        fields = {"long": long, "short": short, "burn_rate": rate, "severity": severity}
        return BurnWindow.model_validate({**fields, "for": for_})

    # 14.4x for 1h spends 2 % of a 30-day budget (page); 6x for 6h spends 5 % (ticket).
    return [window("1h", "5m", 14.4, "critical", "2m"), window("6h", "30m", 6, "warning", "15m")]


class Slo(_Strict):
    """The API availability SLO that ApiErrorBudgetBurn defends."""

    # Share of API requests (over period_days) that must not answer 5xx; 99.9 % leaves a 0.1 %
    # error budget, so the 1 % fixed threshold of ApiHighErrorRate is a 10x burn.
    api_availability: Annotated[float, Field(ge=0.5, lt=1)] = 0.999
    period_days: Annotated[int, Field(ge=1, le=365)] = 30
    api_burn_windows: Annotated[list[BurnWindow], Field(min_length=1)] = Field(
        default_factory=_default_burn_windows
    )

    @model_validator(mode="after")
    def _every_window_can_fire(self) -> Slo:
        budget = 1 - self.api_availability
        for index, window in enumerate(self.api_burn_windows):
            if window.burn_rate * budget >= 1:
                raise ValueError(
                    f"api_burn_windows[{index}].burn_rate: {window.burn_rate:g} x the error budget "
                    f"{budget:.4g} is an error ratio >= 100 %, so the alert could never fire"
                )
        return self

    def most_severe(self) -> Severity:
        """The highest severity among the burn windows."""
        return max((w.severity for w in self.api_burn_windows), key=_SEVERITY_RANK.__getitem__)


class AlertPolicy(_Strict):
    """Who is paged and how soon for one alert."""

    severity: Severity
    team: TeamName
    for_: Duration | None = Field(default=None, alias="for")


def _default_alerts() -> dict[AlertName, AlertPolicy]:
    def policy(severity: str, team: str, for_: str | None) -> AlertPolicy:
        return AlertPolicy.model_validate({"severity": severity, "team": team, "for": for_})

    return {
        AlertName.API_DOWN: policy("critical", "platform", "1m"),
        AlertName.API_HIGH_ERROR_RATE: policy("critical", "platform", "20s"),
        # severity and `for` of each burn-rate window live in slo.api_burn_windows
        AlertName.API_ERROR_BUDGET_BURN: policy("critical", "platform", None),
        AlertName.API_HIGH_LATENCY_P95: policy("warning", "platform", "30s"),
        AlertName.QUEUE_BACKLOG_HIGH: policy("warning", "ai", "20s"),
        AlertName.QUEUE_STALLED: policy("critical", "ai", "2m"),
        AlertName.DEPENDENCY_DOWN: policy("critical", "sre", "20s"),
        AlertName.PROVIDER_DOWN: policy("critical", "ai", "20s"),
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
            "overview": "obsctl-overview",
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


class Receiver(_Strict):
    """Where alerts of one kind are delivered: a relay target, and email or not."""

    relay_target: RelayTarget
    email: bool = False
    # One Alertmanager receiver per team, `<relay_target>-<team>`, chosen by the team label.
    per_team: bool = False
    send_resolved: bool = True


def _default_receivers() -> dict[Severity, Receiver]:
    return {
        Severity.CRITICAL: Receiver(relay_target="oncall", email=True),
        Severity.WARNING: Receiver(relay_target="team", per_team=True),
    }


class Routing(_Strict):
    """How Alertmanager groups, repeats and delivers."""

    relay_url: str = Field(default="http://127.0.0.1:18311", pattern=r"^https?://")
    # Alertmanager reads the relay's bearer token from this file (never inline in the config).
    relay_token_file: str = "/etc/alertmanager/secrets/relay-token"
    group_by: list[str] = Field(
        default_factory=lambda: ["alertname", "severity", "team", "dependency", "provider"]
    )
    group_wait: Duration = 5.0
    group_interval: Duration = 15.0
    repeat_interval_critical: Duration = 3600.0
    repeat_interval_warning: Duration = 4 * 3600.0
    watchdog_repeat_interval: Duration = 60.0
    # Alerts per notification to the relay; Alertmanager counts the rest in truncatedAlerts,
    # which the message states. A DingTalk group gains nothing from a thousand items, and
    # Alertmanager drops a notification the relay refuses for its size.
    max_alerts_per_message: int = Field(default=100, ge=1, le=10_000)
    email: Email = Field(default_factory=Email)
    # Severity -> delivery; a severity without a receiver (info) is delivered nowhere.
    receivers: dict[Severity, Receiver] = Field(default_factory=_default_receivers)
    # The Watchdog's delivery: the dead man's switch, repeated every watchdog_repeat_interval.
    heartbeat: Receiver = Field(
        default_factory=lambda: Receiver(relay_target="heartbeat", send_resolved=False)
    )

    def relay_targets(self) -> list[str]:
        """Every relay target the routing delivers to, each once."""
        targets = [r.relay_target for r in self.receivers.values()]
        return list(dict.fromkeys([*targets, self.heartbeat.relay_target]))


class MixinConfig(_Strict):
    """The whole mixin config."""

    selectors: Selectors = Field(default_factory=Selectors)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    slo: Slo = Field(default_factory=Slo)
    teams: list[TeamName] = Field(default_factory=lambda: ["platform", "ai", "sre"])
    alerts: dict[AlertName, AlertPolicy] = Field(default_factory=_default_alerts)
    links: Links = Field(default_factory=Links)
    routing: Routing = Field(default_factory=Routing)

    @model_validator(mode="after")
    def _every_alert_known_and_owned(self) -> MixinConfig:
        # One "key.path: problem" per line; load() turns each line into one ConfigError problem.
        problems = [
            f"alerts.{name}: required key is missing"
            for name in AlertName
            if name not in self.alerts
        ]
        problems += [
            f"alerts.{name}.team: {policy.team!r} is not listed in teams ({', '.join(self.teams)})"
            for name, policy in self.alerts.items()
            if policy.team not in self.teams
        ]
        burn = self.alerts.get(AlertName.API_ERROR_BUDGET_BURN)
        if burn is not None and burn.severity != self.slo.most_severe():
            problems.append(
                f"alerts.ApiErrorBudgetBurn.severity: must be {self.slo.most_severe()}, the most "
                f"severe of slo.api_burn_windows (found {burn.severity})"
            )
        if burn is not None and burn.for_ is not None:
            problems.append(
                "alerts.ApiErrorBudgetBurn.for: set `for` per window in slo.api_burn_windows"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def policy(self, alert: AlertName) -> AlertPolicy:
        """The policy of one alert."""
        return self.alerts[alert]

    def delivery(self, alert: AlertName) -> Receiver | None:
        """Where an alert is delivered (None: nowhere); the Watchdog goes to the heartbeat."""
        if alert is AlertName.WATCHDOG:
            return self.routing.heartbeat
        return self.routing.receivers.get(self.policy(alert).severity)

    def receiver_name(self, alert: AlertName) -> str:
        """The Alertmanager receiver an alert reaches."""
        receiver = self.delivery(alert)
        if receiver is None:
            return BLACKHOLE
        if receiver.per_team:
            return f"{receiver.relay_target}-{self.policy(alert).team}"
        return receiver.relay_target

    def channels(self, alert: AlertName) -> list[str]:
        """Where people see an alert: `dingtalk:<relay target>`, and `email` if it is mailed."""
        receiver = self.delivery(alert)
        if receiver is None:
            return []
        return [f"dingtalk:{receiver.relay_target}", *(["email"] if receiver.email else [])]

    def runbook_url(self, alert: AlertName) -> str:
        """The runbook link of one alert."""
        return self.links.runbook_url_pattern.format(alert=alert.value)

    def dashboard_url(self, board: str) -> str:
        """The Grafana link of one dashboard by its key in links.dashboard_uids."""
        return f"{self.links.grafana_url.rstrip('/')}/d/{self.links.dashboard_uids[board]}"


def load(path: Path) -> MixinConfig:
    """Read and validate a mixin config; ConfigError lists every problem with its key path."""
    raw = read_mapping(path)
    try:
        return MixinConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [line for err in exc.errors() for line in _describe(err, raw)]
        raise ConfigError(str(path), problems) from None


def _describe(error: Any, raw: dict[str, Any]) -> list[str]:
    """Problems of one validation error; cross-field checks name their own relative key path."""
    loc = tuple(error.get("loc", ()))
    if len(loc) == 3 and loc[0] == "alerts" and loc[-1] == "[key]":
        where = ".".join(str(part) for part in loc[:-1])
        return [f"{where}: unknown key; expected one of {', '.join(a.value for a in AlertName)}"]
    if error.get("type") != "value_error":
        return [describe_validation_error(error, raw)]
    prefix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = str(error.get("ctx", {}).get("error", error.get("msg", "invalid")))
    return [f"{prefix}.{line}" if prefix else line for line in message.splitlines()]
