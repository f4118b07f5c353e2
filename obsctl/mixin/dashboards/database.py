"""Database dashboard: MySQL connections vs max_connections, threads, the app and exporter pools."""

from __future__ import annotations

from obsctl.metric_names import MySQLMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import ApiMetric
from obsctl.mixin.dashboards.panels import RATE, Board, Line, Target
from obsctl.mixin.promql import series
from obsctl.mixin.rules import SLOW_QUERY_WINDOW

KEY = "database"


def connections_ratio(exporter: str) -> str:
    """Threads connected over max_connections, the number DBPoolSaturated watches."""
    return signals.mysql_connections_used(exporter)


def build(config: MixinConfig) -> Board:
    """The database dashboard."""
    api = config.selectors.api
    exp = config.selectors.exporter
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / Database",
        "MySQL connections and threads, the platform's Knex pool (BE-DB-005) and the obsctl "
        "exporter's own pool.",
    )
    board.link_to("overview", "Overview")
    board.link_to("dependencies", "Dependencies")

    board.row("MySQL server")
    board.timeseries(
        "Connections vs max_connections",
        "Threads connected, the high-water mark and the server limit.",
        "short",
        [
            Target(series(MySQLMetric.THREADS_CONNECTED, exp), "connected"),
            Target(series(MySQLMetric.MAX_USED_CONNECTIONS, exp), "max used"),
            Target(series(MySQLMetric.MAX_CONNECTIONS, exp), "max_connections"),
        ],
        min_value=0,
    )
    board.timeseries(
        "Connections used",
        "Threads connected / max_connections; the dashed line is the DBPoolSaturated threshold.",
        "percentunit",
        [Target(connections_ratio(exp), "used")],
        line=Line(limits.db_connections_ratio),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Threads running",
        "Threads executing a statement now (not sleeping); MySQLThreadsRunningHigh fires above "
        "the dashed line.",
        "short",
        [Target(series(MySQLMetric.THREADS_RUNNING, exp), "running {{target}}")],
        line=Line(limits.mysql_threads_running),
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Connections by user and command",
        "From the processlist: who holds connections and what they are doing.",
        "short",
        [
            Target(
                f"sum by (user, command) ({series(MySQLMetric.PROCESSLIST_CONNECTIONS, exp)})",
                "{{user}} {{command}}",
            )
        ],
        width=8,
        stacked=True,
    )
    board.timeseries(
        "Slow queries per second",
        "Statements that took longer than long_query_time; MySQLSlowQueries fires when their "
        f"rate over {SLOW_QUERY_WINDOW} stays above the dashed line.",
        "ops",
        [
            Target(
                f"sum by (target) (rate({series(MySQLMetric.SLOW_QUERIES, exp)}[{RATE}]))",
                "slow {{target}}",
            )
        ],
        line=Line(limits.mysql_slow_queries_per_second),
        width=8,
        min_value=0,
    )

    board.row("Pools")
    board.timeseries(
        "Platform pool (Knex)",
        "The API's connection pool: in use, waiting for a connection, idle, and its maximum.",
        "short",
        [
            Target(series(ApiMetric.POOL_IN_USE, api), "in use {{pool}}"),
            Target(series(ApiMetric.POOL_PENDING, api), "pending {{pool}}"),
            Target(series(ApiMetric.POOL_AVAILABLE, api), "available {{pool}}"),
            Target(series(ApiMetric.POOL_MAX, api), "max {{pool}}"),
        ],
        min_value=0,
    )
    board.timeseries(
        "Exporter pool",
        "The obsctl exporter's own MySQL pool: connections by state, waiters and its maximum.",
        "short",
        [
            Target(series(MySQLMetric.POOL_CONNECTIONS, exp), "{{state}}"),
            Target(series(MySQLMetric.POOL_WAITING, exp), "waiting"),
            Target(series(MySQLMetric.POOL_MAX, exp), "max"),
        ],
        min_value=0,
    )
    board.timeseries(
        "MySQL SELECT 1 latency",
        "As seen by the exporter's probe; the dashed line is the MySQLProbeSlow threshold.",
        "s",
        [Target(signals.mysql_select1(exp), "SELECT 1")],
        line=Line(limits.mysql_probe_latency_seconds),
        width=24,
        height=6,
        min_value=0,
    )
    return board
