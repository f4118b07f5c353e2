"""The project's config, `obsctl.yaml`: every threshold, `for`, severity, team, link, receiver.

It is the one file a team edits about their platform (see obsctl.project); `obsctl generate`
renders alert-rules/, alertmanager/, dashboards/ and the rest of the project from it. Change a
threshold there, regenerate, commit.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from obsctl.config_types import Duration
from obsctl.configfile import ConfigError, describe_validation_error, read_mapping
from obsctl.mixin.maintenance import MaintenanceWindow, WindowName

Ratio = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[float, Field(gt=0)]
TeamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
# A target of the DingTalk relay (a robot; alertmanager/relay.yaml names each one).
RelayTarget = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# The Alertmanager receiver that delivers nowhere (alerts stay visible in Alertmanager).
BLACKHOLE = "blackhole"
# The relay targets that are not a team's robot.
ONCALL = "oncall"
HEARTBEAT = "heartbeat"
# The heartbeat the dead man's switch watches: Alertmanager posts the Watchdog to it.
DEADMAN_HEARTBEAT = "alert-path"
_JOB_SELECTOR = re.compile(r'^\s*job\s*=\s*"([^"]+)"\s*$')
_REFERENCE = re.compile(r"^\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?)\}$")


def _reference(value: str) -> str:
    if not _REFERENCE.match(value):
        raise ValueError(
            "must be a ${ENV_VAR} or ${file:/path} reference, not the value itself: generated "
            "files are committed, and robot URLs hold access tokens"
        )
    return value


# How obsctl.yaml names a secret; it is resolved only by the process that uses it.
SecretReference = Annotated[str, AfterValidator(_reference)]
HttpBase = Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
Mobile = Annotated[str, Field(pattern=r"^\+?[0-9][0-9-]{4,19}$")]
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
Party = Literal["oncall", "team"]


class Severity(StrEnum):
    """How urgent an alert is; routing and inhibition key on it."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertName(StrEnum):
    """Every alert the mixin generates; names are an interface (routes, silences, runbooks)."""

    API_DOWN = "ApiDown"
    API_INSTANCE_DOWN = "ApiInstanceDown"
    API_HIGH_ERROR_RATE = "ApiHighErrorRate"
    API_ERROR_BUDGET_BURN = "ApiErrorBudgetBurn"
    API_HIGH_LATENCY_P95 = "ApiHighLatencyP95"
    # The API's Node.js processes (prom-client's default metrics, PM2 restarts).
    NODE_PROCESS_RESTARTING = "NodeProcessRestarting"
    NODE_HEAP_NEAR_LIMIT = "NodeHeapNearLimit"
    NODE_EVENT_LOOP_LAG_HIGH = "NodeEventLoopLagHigh"
    # The API's rate limiters (SEC-004): one of them refuses a share of its requests.
    RATE_LIMIT_REJECTIONS_HIGH = "RateLimitRejectionsHigh"
    # The API's feature config cache (BE-CACHE-001..003): lookups fall through to MySQL.
    CONFIG_CACHE_HIT_RATIO_LOW = "ConfigCacheHitRatioLow"
    QUEUE_BACKLOG_HIGH = "QueueBacklogHigh"
    QUEUE_STALLED = "QueueStalled"
    # Task jobs whose every attempt failed keep landing in the dead-letter queue (BE-ASYNC-001).
    DEAD_LETTER_JOBS_GROWING = "DeadLetterJobsGrowing"
    REDIS_EVICTION_POLICY_UNSAFE = "RedisEvictionPolicyUnsafe"
    REDIS_MEMORY_HIGH = "RedisMemoryHigh"
    DEPENDENCY_DOWN = "DependencyDown"
    PROVIDER_DOWN = "ProviderDown"
    PROVIDER_DEGRADED = "ProviderDegraded"
    CIRCUIT_BREAKER_OPEN = "CircuitBreakerOpen"
    MYSQL_PROBE_SLOW = "MySQLProbeSlow"
    DB_POOL_SATURATED = "DBPoolSaturated"
    MYSQL_THREADS_RUNNING_HIGH = "MySQLThreadsRunningHigh"
    MYSQL_SLOW_QUERIES = "MySQLSlowQueries"
    TASK_PASS_RATE_LOW = "TaskPassRateLow"
    # The platform's tasks_daily_stats summary (BE-DB-004) falls behind the tasks it counts.
    DAILY_STATS_LAG_HIGH = "DailyStatsLagHigh"
    # ... or counts other tasks than the exporter's own ledger saw finish (double or skipped).
    DAILY_STATS_DRIFT = "DailyStatsDrift"
    EXPORTER_DOWN = "ExporterDown"
    EXPORTER_NO_LEADER = "ExporterNoLeader"
    EXPORTER_TOO_MANY_LEADERS = "ExporterTooManyLeaders"
    WATCHDOG = "Watchdog"
    # The alert path watching itself (kube-prometheus' names where the prometheus- and
    # alertmanager-mixins have the alert).
    PROMETHEUS_RULE_FAILURES = "PrometheusRuleFailures"
    PROMETHEUS_NOT_CONNECTED_TO_ALERTMANAGERS = "PrometheusNotConnectedToAlertmanagers"
    PROMETHEUS_ERROR_SENDING_ALERTS = "PrometheusErrorSendingAlertsToAnyAlertmanager"
    PROMETHEUS_BAD_CONFIG = "PrometheusBadConfig"
    ALERTMANAGER_FAILED_RELOAD = "AlertmanagerFailedReload"
    ALERTMANAGER_CLUSTER_FAILED_TO_SEND_ALERTS = "AlertmanagerClusterFailedToSendAlerts"
    ALERTMANAGER_MEMBERS_INCONSISTENT = "AlertmanagerMembersInconsistent"
    ALERTMANAGER_FAILED_TO_SEND_ALERTS = "AlertmanagerFailedToSendAlerts"
    RELAY_DOWN = "RelayDown"
    RELAY_DELIVERIES_FAILING = "RelayDeliveriesFailing"
    RELAY_BACKLOG_STALE = "RelayBacklogStale"
    DEADMAN_DOWN = "DeadmanDown"  # only with routing.deadman
    DEADMAN_NOTICES_UNSENT = "DeadmanNoticesUnsent"  # only with routing.deadman
    # The host, watched by node_exporter (node-mixin's signals under the names).
    HOST_MEMORY_HIGH = "HostMemoryHigh"
    HOST_DISK_FILLING_UP = "HostDiskFillingUp"
    HOST_CPU_SATURATED = "HostCpuSaturated"
    HOST_EXPORTER_DOWN = "HostExporterDown"


# Alerts about the relay cannot travel through it: Alertmanager mails them to on-call itself.
ABOUT_THE_RELAY = (
    AlertName.RELAY_DOWN,
    AlertName.RELAY_DELIVERIES_FAILING,
    AlertName.RELAY_BACKLOG_STALE,
)
# Alerts about the dead man's switch: generated only for a project with routing.deadman.
ABOUT_THE_DEADMAN = (AlertName.DEADMAN_DOWN, AlertName.DEADMAN_NOTICES_UNSENT)
# The Alertmanager receivers of those: what <severity>-<team> gets, plus that email.
RELAY_BYPASS = "relay-bypass"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


ScrapeJob = Literal["api", "exporter", "relay", "deadman", "alertmanager", "prometheus", "node"]
# The job name of each scrape job obsctl knows; the jobs that have a selector
# follow it (Selectors' defaults are these names).
JOB_NAMES = {
    "relay": "obsctl-relay",
    "deadman": "obsctl-deadman",
    "alertmanager": "alertmanager",
    "prometheus": "prometheus",
    "node": "node",
}


def _job(job: ScrapeJob) -> str:
    return f'job="{JOB_NAMES[job]}"'


class Selectors(_Strict):
    """PromQL label matchers (without braces) that find each source of metrics."""

    api: str = 'job="api"'
    exporter: str = 'job="obsctl-exporter"'
    # The alert path: Prometheus itself, Alertmanager, the relay and the dead man's switch.
    prometheus: str = _job("prometheus")
    alertmanager: str = _job("alertmanager")
    relay: str = _job("relay")
    deadman: str = _job("deadman")
    # The host: node_exporter on each machine of the platform.
    node: str = _job("node")

    def job(self, source: str) -> str | None:
        """The job name a selector matches exactly (`job="x"`), if it is that simple."""
        match = _JOB_SELECTOR.match(getattr(self, source))
        return match.group(1) if match else None


class Thresholds(_Strict):
    """The numbers on-call engineers are paged on; dashboards draw the same lines."""

    # 5xx share of API requests (seed: > 1 %), only when the API sees real traffic.
    api_error_ratio: Ratio = 0.01
    api_min_request_rate: Positive = 0.5  # requests/s below which error ratios are noise
    api_latency_p95_seconds: Positive = 0.2  # seed: P95 > 200 ms
    # The API's Node.js processes. More restarts than this of one instance within the restart
    # window (process_start_time_seconds changing): a crash loop, where one deploy (`pm2
    # reload`) restarts each process once.
    node_process_restarts: Annotated[int, Field(ge=1)] = 2
    # V8 heap used / its limit (--max-old-space-size): near the limit V8 collects garbage
    # almost without pause, then the process dies of "heap out of memory" and PM2 restarts it.
    node_heap_used_ratio: Ratio = 0.85
    # P99 of the event-loop delay between scrapes: every request waits that long before it runs.
    node_eventloop_lag_p99_seconds: Positive = 0.2
    # The API's rate limiters: more than this share of one limiter's checks refused (429) is a
    # client flooding the API or a limit set too low for the traffic; below the request rate
    # (checks/s of that limiter) a few refusals, such as 1 of 2 requests, page nobody.
    rate_limit_rejected_ratio: Ratio = 0.05
    rate_limit_min_request_rate: Positive = 1.0
    # The API's feature config cache (BE-CACHE-001): under this share of lookups answered by
    # the local LRU or Redis (the plan's 85 %) the rest load from MySQL; below the lookup rate
    # (lookups/s of one job) an idle platform's few misses page nobody.
    config_cache_hit_ratio: Ratio = 0.85
    config_cache_min_lookup_rate: Positive = 1.0
    # The plan's average origin (database) load on a miss; a dashboard line, no alert.
    config_cache_origin_latency_seconds: Positive = 0.05
    queue_backlog_jobs: Annotated[int, Field(ge=1)] = 500  # seed: waiting jobs > 500
    queue_stalled_seconds: Positive = 300.0  # oldest waiting job age while workers exist
    # Task jobs of one queue dead-lettered (every attempt failed) within 2 minutes: above a
    # stray one (a provider's rare failure three times in a row), a provider or input failing
    # the feature's tasks for good.
    dead_letter_jobs: Annotated[int, Field(ge=1)] = 5
    mysql_probe_latency_seconds: Positive = 0.05  # seed: DB probe latency > 50 ms
    db_connections_ratio: Ratio = 0.8  # threads_connected / max_connections
    # Statements executing at once; past a few per core MySQL queues them on CPU and locks.
    mysql_threads_running: Annotated[int, Field(ge=1)] = 16
    mysql_slow_queries_per_second: Positive = 0.1  # statements over long_query_time
    # BE-DB-004's aggregationLagSec: the oldest finished task not yet in tasks_daily_stats.
    daily_stats_lag_seconds: Positive = 60.0
    # BE-DB-004's 误差 < 1%: the tasks it folded in over an hour against those the exporter's
    # ledger counted finishing; below the task count an hour's drift is a few tasks, not a bug.
    daily_stats_drift_ratio: Ratio = 0.01
    daily_stats_min_tasks: Annotated[int, Field(ge=1)] = 100
    cache_hit_ratio: Ratio = 0.85  # seed: cache hit ratio < 85 % (dashboards; pages nobody yet)
    cache_min_lookup_rate: Positive = 1.0  # lookups/s below which a hit ratio is noise
    task_pass_rate: Ratio = 0.9  # succeeded / (succeeded + failed) per feature or provider
    task_min_finished_rate: Positive = 0.05  # tasks/s below which pass rates are noise
    exporter_stale_intervals: Annotated[int, Field(ge=2, le=20)] = 3  # probe results this old
    # The alert path. Prometheus -> Alertmanager and Alertmanager -> integrations: the
    # prometheus- and alertmanager-mixins' ratios (3 % of alerts to the best Alertmanager, 1 % of
    # notifications per integration).
    prometheus_notification_error_ratio: Ratio = 0.03
    alertmanager_failed_notification_ratio: Ratio = 0.01
    # Failed DingTalk sends per robot over all send attempts (rate-limit answers left out: the
    # relay waits those out, see relay_oldest_queued_seconds). Every failure is retried, so this
    # is about delay; a wrong secret or keyword fails every attempt.
    relay_failed_send_ratio: Ratio = 0.1
    # Age of the oldest alert a robot's queue holds. Must be above what the relay holds an alert
    # for on purpose (RELAY_LONGEST_NORMAL_WAIT: DingTalk's 10-minute throttle after a rate-limit
    # answer, a full send-budget window and one capped retry), or a throttle alone would page.
    relay_oldest_queued_seconds: Positive = 900.0
    # The host (node_exporter). MemAvailable / MemTotal below this: the kernel is about to
    # reclaim hard or the OOM killer picks a PM2 worker (4 GB host, 3-4 Node processes).
    host_memory_available_ratio: Ratio = 0.1
    # Redis used_memory / maxmemory (a Redis with a limit): at the limit noeviction refuses
    # writes, so queues take no new jobs; any other policy deletes keys.
    redis_memory_used_ratio: Ratio = 0.9
    # A filesystem whose free space, extrapolated from the last 6 hours (predict_linear), runs out
    # within this many hours, while less than host_disk_free_ratio of it is free (node-mixin's
    # warning: 24 h and 40 %; the guard keeps a large, mostly empty disk from paging on a burst).
    host_disk_fill_hours: Positive = 24.0
    host_disk_free_ratio: Ratio = 0.4
    # CPU saturation needs both: the CPUs busy (not idle, iowait or steal) above this share and
    # more runnable work than cores (1-minute load per core above host_load_per_core). Busy alone
    # is a well-used host; a high load alone is often processes blocked on disk.
    host_cpu_busy_ratio: Ratio = 0.9
    host_load_per_core: Positive = 2.0


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
# How long the relay (obsctl.relay) holds an alert on purpose, at most: after DingTalk's "send
# too fast" answer it leaves the robot alone for delivery.rate_limited_backoff (DingTalk's own
# 10-minute throttle); the send budget may then make it wait a whole window (pacing.WINDOW_SECONDS
# + MARGIN_SECONDS), and a failed send waits at most delivery.retry.max. The relay.yaml obsctl
# generates keeps the relay's defaults; tests/mixin/test_alert_path_rules.py pins these to them.
RELAY_THROTTLE_SECONDS = 600.0
RELAY_PACING_SECONDS = 61.0
RELAY_RETRY_CAP_SECONDS = 30.0
RELAY_LONGEST_NORMAL_WAIT = RELAY_THROTTLE_SECONDS + RELAY_PACING_SECONDS + RELAY_RETRY_CAP_SECONDS


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
        # One host of several: the others still serve, so it waits for working hours.
        AlertName.API_INSTANCE_DOWN: policy("warning", "platform", "2m"),
        AlertName.API_HIGH_ERROR_RATE: policy("critical", "platform", "20s"),
        # severity and `for` of each burn-rate window live in slo.api_burn_windows
        AlertName.API_ERROR_BUDGET_BURN: policy("critical", "platform", None),
        AlertName.API_HIGH_LATENCY_P95: policy("warning", "platform", "30s"),
        # The Node processes: warnings for the API's team; the restart count has its own window.
        AlertName.NODE_PROCESS_RESTARTING: policy("warning", "platform", None),
        AlertName.NODE_HEAP_NEAR_LIMIT: policy("warning", "platform", "10m"),
        AlertName.NODE_EVENT_LOOP_LAG_HIGH: policy("warning", "platform", "5m"),
        # A limiter doing its job, seen by the API's team: the clients it refuses notice.
        AlertName.RATE_LIMIT_REJECTIONS_HIGH: policy("warning", "platform", "30s"),
        # The database carries the config reads: slower, not yet down. A minute, because one
        # flush or a deploy refills within seconds.
        AlertName.CONFIG_CACHE_HIT_RATIO_LOW: policy("warning", "platform", "1m"),
        AlertName.QUEUE_BACKLOG_HIGH: policy("warning", "ai", "20s"),
        AlertName.QUEUE_STALLED: policy("critical", "ai", "2m"),
        # Tasks failed for good after their retries, users see them fail: a warning, for the
        # team of the providers, once the dead letters have kept coming for a minute.
        AlertName.DEAD_LETTER_JOBS_GROWING: policy("warning", "ai", "1m"),
        # A configuration mistake that loses jobs only once memory is full: not a 03:00 page.
        AlertName.REDIS_EVICTION_POLICY_UNSAFE: policy("warning", "sre", "5m"),
        # Hours of warning before noeviction refuses writes (BullMQ can enqueue nothing).
        AlertName.REDIS_MEMORY_HIGH: policy("warning", "sre", "5m"),
        AlertName.DEPENDENCY_DOWN: policy("critical", "sre", "20s"),
        AlertName.PROVIDER_DOWN: policy("critical", "ai", "20s"),
        # Answering, but past the seed's 200 ms heartbeat budget most of the time: not a page.
        AlertName.PROVIDER_DEGRADED: policy("warning", "ai", "2m"),
        # The platform's own calls fail and its tasks go to the other providers: a warning,
        # after a minute, so one 30-second open that a good trial call closes pages nobody.
        AlertName.CIRCUIT_BREAKER_OPEN: policy("warning", "ai", "1m"),
        AlertName.MYSQL_PROBE_SLOW: policy("warning", "sre", "5m"),
        AlertName.DB_POOL_SATURATED: policy("warning", "sre", "5m"),
        AlertName.MYSQL_THREADS_RUNNING_HIGH: policy("warning", "sre", "5m"),
        AlertName.MYSQL_SLOW_QUERIES: policy("warning", "sre", "10m"),
        AlertName.TASK_PASS_RATE_LOW: policy("warning", "ai", "10m"),
        # Dashboards and the stats API show old figures; nothing is lost (the cursor resumes).
        AlertName.DAILY_STATS_LAG_HIGH: policy("warning", "platform", "30s"),
        # An hour's counts compared: a real bug drifts for hours, a restart's edge for minutes.
        AlertName.DAILY_STATS_DRIFT: policy("warning", "platform", "15m"),
        AlertName.EXPORTER_DOWN: policy("critical", "sre", "2m"),
        # Longer than a fail-over (one lease, 30 s by default, plus a scrape).
        AlertName.EXPORTER_NO_LEADER: policy("critical", "sre", "1m"),
        AlertName.EXPORTER_TOO_MANY_LEADERS: policy("warning", "sre", "1m"),
        AlertName.WATCHDOG: policy("info", "sre", None),
        # The alert path: kube-prometheus' severities and `for`s where its mixins have the alert.
        AlertName.PROMETHEUS_RULE_FAILURES: policy("critical", "sre", "15m"),
        AlertName.PROMETHEUS_NOT_CONNECTED_TO_ALERTMANAGERS: policy("warning", "sre", "10m"),
        AlertName.PROMETHEUS_ERROR_SENDING_ALERTS: policy("critical", "sre", "15m"),
        AlertName.ALERTMANAGER_FAILED_TO_SEND_ALERTS: policy("warning", "sre", "5m"),
        AlertName.PROMETHEUS_BAD_CONFIG: policy("critical", "sre", "10m"),
        AlertName.ALERTMANAGER_FAILED_RELOAD: policy("critical", "sre", "10m"),
        AlertName.ALERTMANAGER_CLUSTER_FAILED_TO_SEND_ALERTS: policy("critical", "sre", "5m"),
        AlertName.ALERTMANAGER_MEMBERS_INCONSISTENT: policy("warning", "sre", "15m"),
        AlertName.RELAY_DOWN: policy("critical", "sre", "2m"),
        AlertName.RELAY_DELIVERIES_FAILING: policy("critical", "sre", "5m"),
        AlertName.RELAY_BACKLOG_STALE: policy("critical", "sre", "1m"),
        AlertName.DEADMAN_DOWN: policy("warning", "sre", "5m"),
        # The dead man's switch has a page its robot or mail server will not take.
        AlertName.DEADMAN_NOTICES_UNSENT: policy("critical", "sre", "5m"),
        # The host: warnings for sre, long enough that a deploy, a backup or a CI burst is over.
        AlertName.HOST_MEMORY_HIGH: policy("warning", "sre", "5m"),
        AlertName.HOST_DISK_FILLING_UP: policy("warning", "sre", "1h"),
        AlertName.HOST_CPU_SATURATED: policy("warning", "sre", "30m"),
        # The host alerts above are blind without node_exporter.
        AlertName.HOST_EXPORTER_DOWN: policy("warning", "sre", "5m"),
    }


class Links(_Strict):
    """Where alerts point people. A link that is not configured is left out, never invented."""

    # Grafana's external URL: dashboard links are /d/<uid> under it.
    grafana_url: HttpBase | None = None
    # Where the project's runbooks/ are published: a base URL (each runbook is <base>/<Alert>.md)
    # or a pattern holding {alert}. Unset, alerts name the runbook's path in the project.
    runbook_url: str | None = Field(default=None, pattern=r"^https?://")
    # The external URLs people reach Prometheus and Alertmanager at (query and silence links).
    prometheus_url: HttpBase | None = None
    alertmanager_url: HttpBase | None = None
    dashboard_uids: dict[str, str] = Field(
        default_factory=lambda: {
            "overview": "obsctl-overview",
            "api": "obsctl-api",
            "business": "obsctl-business",
            "queues": "obsctl-queues",
            "dependencies": "obsctl-dependencies",
            "database": "obsctl-database",
            "host": "obsctl-host",
        }
    )

    def prefixes(self) -> list[str]:
        """Every configured link base: the relay keeps links under these only."""
        bases = [self.grafana_url, self.prometheus_url, self.alertmanager_url]
        if self.runbook_url:
            bases.append(self.runbook_url.split("{alert}", 1)[0])
        return [base for base in bases if base]


class Robot(_Strict):
    """A DingTalk custom robot; both values are ${ENV} or ${file:} references, never literals.

    Generated files are committed, and the URL holds the robot's access token.
    """

    url: SecretReference
    secret: SecretReference | None = None
    keyword: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class Contact(_Strict):
    """How to reach people: their DingTalk robot, the phones it @-mentions, their email."""

    dingtalk: Robot | None = None
    mobiles: list[Mobile] = Field(default_factory=list)
    email: list[EmailAddress] = Field(default_factory=list)


class Email(_Strict):
    """Alertmanager's SMTP settings."""

    smarthost: str = Field(pattern=r"^[^:\s]+:\d{1,5}$")
    sender: EmailAddress = Field(alias="from")
    require_tls: bool = True


class Receiver(_Strict):
    """Who gets the alerts of one severity: `oncall` (the rota) and/or `team` (the owner)."""

    dingtalk: list[Party] = Field(default_factory=list)
    email: list[Party] = Field(default_factory=list)
    # Whose mobiles the DingTalk message @-mentions while the alert fires.
    mention: list[Party] = Field(default_factory=list)
    send_resolved: bool = True


def _default_receivers() -> dict[Severity, Receiver]:
    return {
        Severity.CRITICAL: Receiver(
            dingtalk=["oncall"], email=["oncall", "team"], mention=["oncall"]
        ),
        Severity.WARNING: Receiver(dingtalk=["team"]),
    }


class Endpoint(_Strict):
    """A server Alertmanager posts to, and the file holding the bearer token it sends."""

    url: HttpBase
    token_file: str


class Routing(_Strict):
    """How Alertmanager groups, repeats and delivers."""

    relay: Endpoint = Field(
        default_factory=lambda: Endpoint(
            url="http://127.0.0.1:18311", token_file="/etc/alertmanager/secrets/relay-token"
        )
    )
    # The dead man's switch (obsctl deadman) also receives the Watchdog, when configured.
    deadman: Endpoint | None = None
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
    email: Email | None = None
    # Severity -> delivery; a severity without a receiver (info) is delivered nowhere.
    receivers: dict[Severity, Receiver] = Field(default_factory=_default_receivers)


class ClaimSettings(_Strict):
    """Claim (认领) links in messages: the relay's page silences the alert in Alertmanager."""

    # The relay's address as on-call phones open it (public, behind a proxy in production).
    url: HttpBase
    # Signs the links (at least 16 characters once resolved).
    key: SecretReference = "${OBSCTL_RELAY_CLAIM_KEY}"
    # The Alertmanager API the relay records claims in; links.alertmanager_url when unset.
    alertmanager_url: HttpBase | None = None
    # The lengths a claimer may choose; the first is preselected.
    durations: list[Duration] = Field(
        default_factory=lambda: [3600.0, 1800.0, 7200.0, 14400.0], min_length=1, max_length=8
    )


class EscalationLevel(_Strict):
    """One step: after how long unclaimed, which robots, who is @-mentioned, mailed, texted."""

    after: Duration
    # `oncall` and/or `team` (the alert's owner), as in routing.receivers.
    dingtalk: list[Party] = Field(min_length=1)
    at_all: bool = False
    mention: list[Party] = Field(default_factory=list)
    email: list[Party] = Field(default_factory=list)
    # Whose mobiles get a text message (needs escalation.sms).
    sms: list[Party] = Field(default_factory=list)


SmsParam = Literal["alertname", "level", "minutes", "severity", "team"]
_DEFAULT_SMS_PARAMS: tuple[SmsParam, ...] = ("alertname", "minutes")


class SmsSettings(_Strict):
    """Tencent Cloud SMS for escalation levels with `sms`: the relay calls SendSms itself."""

    sdk_app_id: str = Field(pattern=r"^14[0-9]{8}$")
    # The approved signature (签名) and template (模板); the template's variables are filled
    # with template_params in order (alertname, level, minutes, severity, team).
    sign_name: str = Field(min_length=1, max_length=32)
    template_id: str = Field(pattern=r"^[0-9]{1,12}$")
    template_params: list[SmsParam] = Field(
        default_factory=lambda: list(_DEFAULT_SMS_PARAMS), max_length=10
    )
    region: str = "ap-guangzhou"
    # A CAM user's API key allowed sms:SendSms only.
    secret_id: SecretReference = "${OBSCTL_RELAY_SMS_SECRET_ID}"
    secret_key: SecretReference = "${OBSCTL_RELAY_SMS_SECRET_KEY}"


class Escalation(_Strict):
    """Alerts nobody claims or resolves are sent again, louder (the relay does it)."""

    severities: list[Severity] = Field(default_factory=lambda: [Severity.CRITICAL])
    levels: list[EscalationLevel] = Field(min_length=1)
    sms: SmsSettings | None = None
    # Per team, levels replacing `levels`.
    teams: dict[TeamName, list[EscalationLevel]] = Field(default_factory=dict)


class RelaySettings(_Strict):
    """How the relay runs (written into alertmanager/relay.yaml)."""

    listen: str = "127.0.0.1:18311"
    token: SecretReference = "${OBSCTL_RELAY_TOKEN}"
    spool_dir: str = "/var/lib/obsctl/relay"
    language: Literal["zh-CN", "en-US"] = "zh-CN"
    timezone: str = "Asia/Shanghai"
    claim: ClaimSettings | None = None


class DeadmanSettings(_Strict):
    """How the dead man's switch runs (written into alertmanager/deadman.yaml)."""

    listen: str = "127.0.0.1:18312"
    token: SecretReference = "${OBSCTL_DEADMAN_TOKEN}"
    state_dir: str = "/var/lib/obsctl/deadman"
    # Three missed Watchdogs: one late repeat is not an outage.
    missed_heartbeats: Annotated[int, Field(ge=2, le=30)] = 3
    reminder: Duration = 1_800.0


HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\[\]:-]+:\d{1,5}$")]


class RemoteWriteQueue(_Strict):
    """How a remote_write target is fed (Prometheus' queue_config)."""

    # Samples buffered per shard: about 10 s of the shard's share at peak, so a store that
    # blips for seconds loses nothing and one that is down costs bounded memory.
    capacity: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    max_shards: Annotated[int, Field(ge=1, le=1_000)] = 50
    max_samples_per_send: Annotated[int, Field(ge=100, le=100_000)] = 2_000
    batch_send_deadline: Duration = 5.0


class BasicAuth(_Strict):
    """HTTP basic auth whose password Prometheus reads from a file on its host."""

    username: str = Field(min_length=1)
    password_file: str = Field(pattern=r"^/")


class RemoteWrite(_Strict):
    """One long-term store Prometheus writes every sample to (Mimir, Thanos Receive, VM, ...)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    url: HttpBase
    # e.g. X-Scope-OrgID for a multi-tenant Mimir.
    headers: dict[str, str] = Field(default_factory=dict)
    basic_auth: BasicAuth | None = None
    bearer_token_file: str | None = Field(default=None, pattern=r"^/")
    queue: RemoteWriteQueue = Field(default_factory=RemoteWriteQueue)

    @model_validator(mode="after")
    def _one_auth(self) -> RemoteWrite:
        if self.basic_auth is not None and self.bearer_token_file is not None:
            raise ValueError("basic_auth and bearer_token_file: give one way to authenticate")
        return self


class PrometheusSettings(_Strict):
    """The Prometheus config of the project (prometheus/prometheus.yml and its targets)."""

    scrape_interval: Duration = 15.0
    evaluation_interval: Duration = 15.0
    external_labels: dict[str, str] = Field(default_factory=dict)
    # Prometheus replicas (HA): the external label naming each replica. Every replica runs the
    # same generated file and sets its own name in REPLICA_ENV; a store deduplicates on the
    # label, and alerts drop it so Alertmanager sees one alert from both replicas.
    replica_label: str | None = Field(default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    remote_write: list[RemoteWrite] = Field(default_factory=list)
    # host:port of each job's targets; each job's list becomes prometheus/targets/<job>.yml,
    # so adding a host touches no rule.
    targets: dict[ScrapeJob, list[HostPort]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _replica_label_free(self) -> PrometheusSettings:
        if self.replica_label is not None and self.replica_label in self.external_labels:
            raise ValueError(
                f"replica_label: {self.replica_label!r} is also in external_labels; each replica"
                " sets it from its environment"
            )
        names = [target.name for target in self.remote_write]
        if len(set(names)) != len(names):
            raise ValueError(f"remote_write: names must differ, got {names}")
        return self


class Deploy(_Strict):
    """Where obsctl runs on the hosts (systemd/ units are generated from these)."""

    # The obsctl command on the host (e.g. a venv's bin/obsctl).
    obsctl: str = Field(default="/usr/local/bin/obsctl", pattern=r"^/")
    # Where this project is checked out on the host: the units run with --project.
    project_dir: str = Field(default="/etc/obsctl", pattern=r"^/")
    # A dedicated system user without a login; create it with `useradd --system obsctl`.
    user: str = Field(default="obsctl", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    # One EnvironmentFile per service holds its secrets: <env_dir>/<service>.env, mode 0600.
    env_dir: str = Field(default="/etc/obsctl/env", pattern=r"^/")


class Retention(_Strict):
    """How long Prometheus keeps samples: at least the SLO period, which the budget spans."""

    local_days: Annotated[int, Field(ge=1, le=3_650)] = 35


class MixinConfig(_Strict):
    """The whole obsctl.yaml."""

    selectors: Selectors = Field(default_factory=Selectors)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    slo: Slo = Field(default_factory=Slo)
    teams: dict[TeamName, Contact] = Field(min_length=1)
    # The on-call rota: paged for what the receivers send to `oncall`.
    oncall: Contact = Field(default_factory=Contact)
    # Where the Watchdog goes through the relay: a robot's group nobody needs to read.
    heartbeat: Contact = Field(default_factory=Contact)
    alerts: dict[AlertName, AlertPolicy] = Field(default_factory=_default_alerts)
    links: Links = Field(default_factory=Links)
    routing: Routing = Field(default_factory=Routing)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    deadman: DeadmanSettings = Field(default_factory=DeadmanSettings)
    retention: Retention = Field(default_factory=Retention)
    deploy: Deploy = Field(default_factory=Deploy)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    # Recurring windows (a nightly backup) that mute the alerts they select.
    maintenance: dict[WindowName, MaintenanceWindow] = Field(default_factory=dict)
    escalation: Escalation | None = None

    @model_validator(mode="after")
    def _every_alert_known_and_owned(self) -> MixinConfig:
        # One "key.path: problem" per line; load() turns each line into one ConfigError problem.
        problems = [
            f"alerts.{name}: required key is missing"
            for name in self.generated_alerts()
            if name not in self.alerts
        ]
        problems += [
            f"alerts.{name}.team: {policy.team!r} is not a team in teams ({', '.join(self.teams)})"
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
        problems += self._reachable()
        problems += [
            f'prometheus.targets.{job}: selectors.{job} must be job="<name>" to name its '
            f"scrape job (found {getattr(self.selectors, job)!r})"
            for job in Selectors.model_fields
            if job in self.prometheus.targets and self.selectors.job(job) is None
        ]
        problems += self._scraped()
        backlog = self.thresholds.relay_oldest_queued_seconds
        if backlog <= RELAY_LONGEST_NORMAL_WAIT:
            problems.append(
                f"thresholds.relay_oldest_queued_seconds: {backlog:g}s is not above the"
                f" {RELAY_LONGEST_NORMAL_WAIT:g}s the relay holds an alert for on purpose"
                f" (DingTalk's {RELAY_THROTTLE_SECONDS:g}s throttle after a rate-limit answer, a"
                f" {RELAY_PACING_SECONDS:g}s send-budget window, a {RELAY_RETRY_CAP_SECONDS:g}s"
                " retry): RelayBacklogStale would page for a throttle the relay waits out"
            )
        claim = self.relay.claim
        if claim is not None and not (claim.alertmanager_url or self.links.alertmanager_url):
            problems.append(
                "relay.claim.alertmanager_url: required key is missing (or set"
                " links.alertmanager_url): claims are silences in Alertmanager"
            )
        problems += self._escalation_problems()
        if self.retention.local_days < self.slo.period_days:
            problems.append(
                f"retention.local_days: {self.retention.local_days} is shorter than the SLO period "
                f"(slo.period_days {self.slo.period_days}): the error budget needs that history"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _scraped(self) -> list[str]:
        """A generated prometheus.yml scrapes every server an alert watches.

        ApiDown, ExporterDown, RelayDown and DeadmanDown also fire on absent(up): a job the
        project's Prometheus does not scrape would page forever. The Prometheus alerts read its
        own metrics; without the Alertmanager job Prometheus sends alerts nowhere.
        """
        if not self.prometheus.targets:
            return []  # the project brings its own Prometheus config
        why = {
            "api": "ApiDown fires while Prometheus scrapes no API target",
            "exporter": "ExporterDown fires while Prometheus does not scrape the exporter",
            "prometheus": "PrometheusRuleFailures and the alerts on sending alerts read"
            " Prometheus' own metrics",
            "alertmanager": "without it Prometheus sends its alerts nowhere",
            "relay": "Alertmanager posts every alert to the relay (routing.relay), and RelayDown"
            " fires while Prometheus does not scrape it",
            "deadman": "routing.deadman is set, and DeadmanDown fires while Prometheus does not"
            " scrape the dead man's switch",
        }
        if self.routing.deadman is None:
            del why["deadman"]
        return [
            f"prometheus.targets.{job}: required key is missing: {reason}"
            for job, reason in why.items()
            if job not in self.prometheus.targets
        ]

    def _escalation_problems(self) -> list[str]:
        """Escalation needs claims: a claim is what stops it. (It mails only with routing.email,
        like everything else; validate fails on a project without it.)"""
        if self.escalation is None:
            return []
        problems = []
        if self.relay.claim is None:
            problems.append("escalation: needs relay.claim (a claim is what stops it)")
        for team in self.escalation.teams:
            if team not in self.teams:
                problems.append(f"escalation.teams.{team}: not a team in teams")
        if self.escalation.sms is None:
            teams = self.escalation.teams
            levels = [("levels", self.escalation.levels)]
            levels += [(f"teams.{team}", team_levels) for team, team_levels in teams.items()]
            problems += [
                f"escalation.{where}.{index}.sms: needs escalation.sms (the Tencent Cloud SMS"
                " app, signature and template to text with)"
                for where, group in levels
                for index, level in enumerate(group)
                if level.sms
            ]
        return problems

    def escalation_levels(self, team: str) -> list[EscalationLevel]:
        """The escalation levels of a team's alerts."""
        if self.escalation is None:
            return []
        return self.escalation.teams.get(team, self.escalation.levels)

    def generated_alerts(self) -> list[AlertName]:
        """Every alert the mixin generates for this project (the deadman's with one only)."""
        return [
            alert
            for alert in AlertName
            if alert not in ABOUT_THE_DEADMAN or self.routing.deadman is not None
        ]

    def _reachable(self) -> list[str]:
        """Everyone a receiver sends to has the robot or the addresses it needs."""
        problems = []
        for severity, receiver in self.routing.receivers.items():
            where = f"routing.receivers.{severity.value}"
            for party in receiver.dingtalk:
                for name, contact in self._contacts(party):
                    if contact.dingtalk is None:
                        problems.append(f"{where}.dingtalk: {name} has no dingtalk robot")
            for party in receiver.email:
                if party == "oncall" and not self.oncall.email:
                    problems.append(f"{where}.email: oncall has no email addresses")
            if receiver.email and self.routing.email is None:
                problems.append(f"{where}.email: routing.email (the SMTP server) is not set")
        if self.heartbeat.dingtalk is None:
            problems.append("heartbeat.dingtalk: the Watchdog needs a robot (its repeats prove "
                            "the alert path works)")  # fmt: skip
        return problems

    def _contacts(self, party: str) -> list[tuple[str, Contact]]:
        if party == "oncall":
            return [("oncall", self.oncall)]
        return [(f"teams.{name}", contact) for name, contact in self.teams.items()]

    def policy(self, alert: AlertName) -> AlertPolicy:
        """The policy of one alert."""
        return self.alerts[alert]

    def delivery(self, alert: AlertName) -> Receiver | None:
        """Where an alert's severity is delivered (None: nowhere; the Watchdog has its own)."""
        return self.routing.receivers.get(self.policy(alert).severity)

    def bypass_email(self, team: str) -> list[str]:
        """Where alerts about the relay are mailed around it: on-call and the owning team."""
        if self.routing.email is None:
            return []
        return list(dict.fromkeys([*self.oncall.email, *self.teams[team].email]))

    def bypasses_relay(self, alert: AlertName) -> bool:
        """Whether Alertmanager also mails an alert directly, because it is about the relay."""
        return alert in ABOUT_THE_RELAY and bool(self.bypass_email(self.policy(alert).team))

    def alert_path_gaps(self) -> list[str]:
        """What the routing cannot deliver when the relay is down (`obsctl validate` fails)."""
        names = ", ".join(alert.value for alert in ABOUT_THE_RELAY)
        lost = (
            f"{names} would reach people only through the relay they are about, so a broken"
            " relay pages nobody"
        )
        if self.routing.email is None:
            return [
                f"routing.email: not set: {lost}; set routing.email (Alertmanager's SMTP"
                " server) and oncall.email"
            ]
        return [
            f"oncall.email: empty, and so is teams.{team}.email: {lost}; add an address"
            for team in sorted({self.policy(alert).team for alert in ABOUT_THE_RELAY})
            if not self.bypass_email(team)
        ]

    def receiver_name(self, alert: AlertName) -> str:
        """The Alertmanager receiver an alert reaches."""
        if alert is AlertName.WATCHDOG:
            return HEARTBEAT
        policy = self.policy(alert)
        if self.bypasses_relay(alert):
            return f"{RELAY_BYPASS}-{policy.severity.value}-{policy.team}"
        if self.delivery(alert) is None:
            return BLACKHOLE
        return f"{policy.severity.value}-{policy.team}"

    def relay_target(self, party: str, team: str) -> str:
        """The relay target (DingTalk robot) of `oncall` or of a team."""
        return ONCALL if party == "oncall" else f"team-{team}"

    def relay_targets(self) -> list[str]:
        """Every relay target the routing can deliver to, each once: on-call, teams, heartbeat."""
        targets = [ONCALL] if self.oncall.dingtalk else []
        targets += [f"team-{name}" for name, team in self.teams.items() if team.dingtalk]
        return [*targets, HEARTBEAT]

    def robot(self, target: str) -> Robot | None:
        """The robot behind a relay target."""
        if target == ONCALL:
            return self.oncall.dingtalk
        if target == HEARTBEAT:
            return self.heartbeat.dingtalk
        return self.teams[target.removeprefix("team-")].dingtalk

    def channels(self, alert: AlertName) -> list[str]:
        """Where people see an alert: `dingtalk:<relay target>` each, and `email` if mailed."""
        if alert is AlertName.WATCHDOG:
            return [f"dingtalk:{HEARTBEAT}"]
        receiver = self.delivery(alert)
        team = self.policy(alert).team
        mailed = self.bypasses_relay(alert)
        if receiver is None:
            return ["email"] if mailed else []
        robots = [f"dingtalk:{self.relay_target(party, team)}" for party in receiver.dingtalk]
        mailed = mailed or bool(self.email_to(receiver, team))
        return [*robots, *(["email"] if mailed else [])]

    def email_to(self, receiver: Receiver, team: str) -> list[str]:
        """The addresses a receiver mails an alert of `team` to."""
        addresses: list[str] = []
        for party in receiver.email:
            addresses += self.oncall.email if party == "oncall" else self.teams[team].email
        return list(dict.fromkeys(addresses))

    def runbook_path(self, alert: AlertName) -> str:
        """Where an alert's runbook lives in the project."""
        return f"runbooks/{alert.value}.md"

    def runbook_url(self, alert: AlertName) -> str | None:
        """The runbook link of one alert, when the project says where runbooks are published."""
        base = self.links.runbook_url
        if base is None:
            return None
        if "{alert}" in base:
            return base.format(alert=alert.value)
        return f"{base.rstrip('/')}/{alert.value}.md"

    def job_name(self, job: ScrapeJob) -> str:
        """The Prometheus job name of a job obsctl knows (its selector's, if it has one)."""
        if job in Selectors.model_fields:
            return self.selectors.job(job) or JOB_NAMES.get(job, job)
        return JOB_NAMES[job]

    def dashboard_url(self, board: str) -> str | None:
        """The Grafana link of one dashboard by its key in links.dashboard_uids, if Grafana is."""
        if self.links.grafana_url is None:
            return None
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
    return [_at(prefix, line) for line in message.splitlines()]


_RELATIVE_KEY = re.compile(r"^[\w\[\]-]+(?:\.[\w\[\]-]+)*: ")


def _at(prefix: str, line: str) -> str:
    """A problem under its key path: a line naming its own relative key continues the path."""
    if not prefix:
        return line
    return f"{prefix}.{line}" if _RELATIVE_KEY.match(line) else f"{prefix}: {line}"
