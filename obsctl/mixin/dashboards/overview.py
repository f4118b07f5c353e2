"""Overview dashboard: what an on-call engineer opens first, with a link to every other board."""

from __future__ import annotations

from obsctl.metric_names import BullMQMetric, BusinessMetric, ProbeMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards import (
    alert_path,
    api,
    business,
    database,
    dependencies,
    host,
    queues,
)
from obsctl.mixin.dashboards.panels import (
    ALERTS_EXPR,
    RATE,
    Board,
    Line,
    Target,
    status_expr,
)
from obsctl.mixin.promql import series

KEY = "overview"
# The other dashboards, in the order their links appear.
LINKS = (
    (api.KEY, "API"),
    (business.KEY, "Business"),
    (queues.KEY, "Queues"),
    (dependencies.KEY, "Dependencies"),
    (database.KEY, "Database"),
    (host.KEY, "Host"),
)


def build(config: MixinConfig) -> Board:
    """The overview dashboard."""
    app = config.selectors.api
    exp = config.selectors.exporter
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / Overview",
        "Start here: the alerting signals of the image platform at a glance. Every tile links "
        "to the dashboard with the details.",
    )
    for key, title in LINKS:
        board.link_to(key, title)
    api_errors = api.error_ratio(app, "", route="")
    p95 = api.quantile(app, 0.95, route="")
    tasks_ok = business.pass_rate(exp, "", filters=())

    board.row("Alerting signals")
    board.stat(
        "API requests/s",
        "All API requests.",
        "reqps",
        [Target(signals.request_rate(app, RATE), "requests/s")],
        link=api.KEY,
    )
    board.stat(
        "API 5xx ratio",
        "Share of API requests answered 5xx (ApiHighErrorRate).",
        "percentunit",
        [Target(api_errors, "5xx")],
        line=Line(limits.api_error_ratio),
        link=api.KEY,
    )
    board.stat(
        "API P95 latency",
        "95th percentile of API request latency (ApiHighLatencyP95).",
        "s",
        [Target(p95, "P95")],
        line=Line(limits.api_latency_p95_seconds),
        link=api.KEY,
    )
    board.stat(
        "Task pass rate",
        "Succeeded / finished tasks, all features and providers (TaskPassRateLow).",
        "percentunit",
        [Target(tasks_ok, "pass rate")],
        line=Line(limits.task_pass_rate, above=False),
        link=business.KEY,
    )
    board.stat(
        "Largest queue backlog",
        "Waiting jobs of the fullest queue (QueueBacklogHigh).",
        "short",
        [Target(f"max ({queues.backlog(exp, '')})", "jobs")],
        line=Line(limits.queue_backlog_jobs),
        link=queues.KEY,
    )
    board.stat(
        "Oldest waiting job",
        "Age of the job that has waited longest in any queue (QueueStalled).",
        "s",
        [Target(f"max ({series(BullMQMetric.OLDEST_WAITING, exp)})", "age")],
        line=Line(limits.queue_stalled_seconds),
        link=queues.KEY,
    )
    board.stat(
        "Dependencies down",
        "Probes whose last run could not reach their dependency (DependencyDown, ProviderDown).",
        "short",
        [Target(f"count ({series(ProbeMetric.SUCCESS, exp)} == 0) or vector(0)", "down")],
        count_ok=("none", "down"),
        link=dependencies.KEY,
    )
    board.stat(
        "MySQL SELECT 1",
        "Latency of the exporter's MySQL probe query (MySQLProbeSlow).",
        "s",
        [Target(signals.mysql_select1(exp), "SELECT 1")],
        line=Line(limits.mysql_probe_latency_seconds),
        link=dependencies.KEY,
    )
    board.stat(
        "MySQL connections used",
        "Threads connected / max_connections (DBPoolSaturated).",
        "percentunit",
        [Target(database.connections_ratio(exp), "used")],
        line=Line(limits.db_connections_ratio),
        link=database.KEY,
    )
    board.stat(
        "Cache hit ratio",
        "Redis keyspace hits / lookups over the rate interval, server-wide: a figure, no alert.",
        "percentunit",
        [Target(dependencies.cache_hit_ratio(exp), "hit ratio")],
        line=Line(limits.cache_hit_ratio, above=False),
        link=dependencies.KEY,
    )
    board.stat(
        "Paused queues",
        "BullMQ queues paused globally.",
        "short",
        [Target(f"count ({series(BullMQMetric.PAUSED, exp)} == 1) or vector(0)", "paused")],
        count_ok=("none", "paused"),
        link=queues.KEY,
    )
    board.stat(
        "Users out of quota",
        "Users whose remaining quota is 0.",
        "short",
        [Target(f"sum ({series(BusinessMetric.QUOTA_EXHAUSTED_USERS, exp)})", "users")],
        link=business.KEY,
    )
    board.status(
        "Dependency status",
        "Latest probe status per dependency.",
        [Target(status_expr(exp), "{{probe}} {{target}}")],
        height=4,
    )

    board.table(
        "Firing alerts",
        "Prometheus alerts firing now (Watchdog always fires: its absence means alerting is "
        "broken). Each alert's dashboard_url and runbook_url say where to look next.",
        "none",
        [Target(ALERTS_EXPR)],
        hide=("Time", "__name__", "alertstate", "job", "instance", "service", "Value"),
        width=24,
        height=6,
    )

    board.row("Trends")
    board.timeseries(
        "API 5xx ratio",
        "Share of API requests answered 5xx; the dashed line is the alert threshold.",
        "percentunit",
        [Target(api_errors, "5xx")],
        line=Line(limits.api_error_ratio),
        width=8,
        min_value=0,
    )
    board.timeseries(
        "API P95 latency",
        "The dashed line is the alert threshold.",
        "s",
        [Target(p95, "P95")],
        line=Line(limits.api_latency_p95_seconds),
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Queue backlog",
        "Waiting jobs per queue; the dashed line is the alert threshold.",
        "short",
        [Target(queues.backlog(exp, ""), "{{queue}}")],
        line=Line(limits.queue_backlog_jobs),
        width=8,
        min_value=0,
    )
    alert_path.add_row(board, config)
    return board
