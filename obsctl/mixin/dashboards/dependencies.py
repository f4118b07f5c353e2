"""Dependencies dashboard: probe status, success and latency of MySQL, Redis, COS and providers."""

from __future__ import annotations

from obsctl.metric_names import ProbeMetric, RedisMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import ApiMetric
from obsctl.mixin.dashboards.panels import (
    RATE,
    Board,
    Fault,
    Line,
    Target,
    status_expr,
)
from obsctl.mixin.promql import series
from obsctl.mixin.rules import (
    BREAKER_NOT_CLOSED,
    DEGRADED_SHARE,
    DEGRADED_WINDOW,
    PROVIDER_DEGRADED_SHARE,
)

KEY = "dependencies"
PROBE_LEGEND = "{{probe}} {{target}}"


def cache_hit_ratio(exporter: str) -> str:
    """Redis keyspace hits over lookups during the rate interval."""
    return signals.cache_hit_ratio(exporter, RATE)


def _breakers(board: Board, api: str) -> None:
    """The platform's own view of the providers: its circuit breakers (opossum)."""
    board.row("AI provider circuit breakers (the platform's calls)")
    board.timeseries(
        "Breakers not closed",
        "1 while the platform's breaker of a provider is open or testing a trial call "
        "(half_open); CircuitBreakerOpen fires when that lasts. The heartbeat above may still "
        "be fine: this is what the platform's own task calls see.",
        "none",
        [
            Target(
                f"max by (provider) ({series(ApiMetric.BREAKER_STATE, api, BREAKER_NOT_CLOSED)})",
                "{{provider}}",
            )
        ],
        line=Line(1),
        width=8,
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Provider calls by outcome",
        "Task submissions through each breaker: success, failure, timeout (over 2 s) and "
        "rejected (refused while open).",
        "ops",
        [
            Target(
                f"sum by (provider, outcome) (rate({series(ApiMetric.BREAKER_CALLS, api)}"
                f"[{RATE}]))",
                "{{provider}} {{outcome}}",
            )
        ],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Fallbacks and opens",
        "Tasks handed from a provider to another one per second, and how often its breaker "
        "opened (at most once per 30 s while the provider keeps failing).",
        "ops",
        [
            Target(
                f"sum by (provider) (rate({series(ApiMetric.BREAKER_FALLBACKS, api)}[{RATE}]))",
                "fallbacks/s from {{provider}}",
            ),
            Target(
                f"sum by (provider) (rate({series(ApiMetric.BREAKER_OPENS, api)}[{RATE}]))",
                "opens/s {{provider}}",
            ),
        ],
        width=8,
        min_value=0,
    )


def build(config: MixinConfig) -> Board:
    """The dependencies dashboard."""
    exp = config.selectors.exporter
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / Dependencies",
        "What the obsctl exporter's probes see: MySQL, Redis (and BullMQ), COS, AI providers "
        "and the business reader. Probes run on a schedule; these are their latest results.",
    )
    board.link_to("overview", "Overview")
    board.link_to("database", "Database")

    board.row("Health at a glance")
    board.status(
        "Dependency status",
        "Latest probe status per dependency: OK, DEGRADED (answers, but slowly or partly), "
        "DOWN, UNKNOWN (not probed yet).",
        [Target(status_expr(exp), PROBE_LEGEND)],
        height=5,
    )
    board.status(
        "Status over time",
        "Each dependency's status over the time range.",
        [Target(status_expr(exp), PROBE_LEGEND)],
        height=7,
        timeline=True,
    )

    board.row("Success and failures")
    board.timeseries(
        "Probe success",
        "1 when the last probe run reached the dependency, 0 when it did not.",
        "none",
        [Target(series(ProbeMetric.SUCCESS, exp), PROBE_LEGEND)],
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Probe failures per second",
        "Probe runs that found the dependency down.",
        "ops",
        [
            Target(
                f"sum by (probe, target) (rate({series(ProbeMetric.FAILURES, exp)}[{RATE}]))",
                PROBE_LEGEND,
            )
        ],
        min_value=0,
    )
    board.table(
        "Failure reasons",
        "Why the last run of a probe was not OK (timeout, refused, auth, http_status, slow, "
        "...); empty while every dependency is healthy.",
        "none",
        [Target(f"{series(ProbeMetric.FAILURE_REASON, exp)} == 1")],
        quiet=Fault.PROVIDER_TIMEOUT,
    )
    board.timeseries(
        "Time since last success",
        "Seconds since each probe last succeeded; grows while a dependency is down.",
        "s",
        [
            Target(
                f"time() - {series(ProbeMetric.LAST_SUCCESS, exp)}",
                PROBE_LEGEND,
            )
        ],
        min_value=0,
    )

    board.row("Latency")
    board.timeseries(
        "MySQL probe latency",
        "SELECT 1 and the whole MySQL probe (connect, SELECT 1, status, processlist); the "
        "dashed line is the MySQLProbeSlow threshold.",
        "s",
        [
            Target(signals.mysql_select1(exp), "SELECT 1"),
            Target(series(ProbeMetric.DURATION, exp, 'probe="mysql"'), "whole probe"),
        ],
        line=Line(limits.mysql_probe_latency_seconds),
        min_value=0,
    )
    board.timeseries(
        "Probe latency",
        "Duration of the last run of each probe.",
        "s",
        [Target(series(ProbeMetric.DURATION, exp), PROBE_LEGEND)],
        min_value=0,
    )
    board.timeseries(
        "AI provider heartbeat latency",
        "Heartbeat round trip per provider.",
        "s",
        [Target(series(ProbeMetric.DURATION, exp, 'probe="provider"'), "{{target}}")],
        min_value=0,
    )
    board.timeseries(
        "AI provider heartbeats degraded",
        f"Share of each provider's heartbeats in the last {DEGRADED_WINDOW} slower than its "
        "slow_threshold (200 ms by default); the dashed line is where ProviderDegraded fires.",
        "percentunit",
        [Target(PROVIDER_DEGRADED_SHARE, "{{provider}}")],
        line=Line(DEGRADED_SHARE),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Probe phases",
        "Duration of each phase of the last run (COS put/get/delete, Redis ping/set/get, ...).",
        "s",
        [
            Target(
                series(ProbeMetric.PHASE_DURATION, exp),
                "{{probe}} {{target}} {{phase}}",
            )
        ],
        min_value=0,
    )

    _breakers(board, config.selectors.api)

    board.row("Redis")
    board.timeseries(
        "Cache hit ratio",
        "Keyspace hits / lookups over the rate interval, and since Redis started. Server-wide "
        "(BullMQ's polling counts too), so it pages nobody; the dashed line is the plan's 85 % "
        "target for the configuration cache.",
        "percentunit",
        [
            Target(cache_hit_ratio(exp), "recent"),
            Target(f"max ({series(RedisMetric.KEYSPACE_HIT_RATIO, exp)})", "since start"),
        ],
        line=Line(limits.cache_hit_ratio, above=False),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Redis memory",
        "Used memory and the maxmemory limit (0 means no limit).",
        "bytes",
        [
            Target(series(RedisMetric.MEMORY_USED, exp), "used {{target}}"),
            Target(series(RedisMetric.MEMORY_MAX, exp), "max {{target}}"),
        ],
        width=6,
        min_value=0,
    )
    used, limit = series(RedisMetric.MEMORY_USED, exp), series(RedisMetric.MEMORY_MAX, exp)
    board.timeseries(
        "Redis memory use",
        "used_memory / maxmemory of each Redis with a limit; at 100 % noeviction refuses writes "
        "(RedisMemoryHigh).",
        "percentunit",
        [Target(f"max by (target) ({used}) / max by (target) ({limit} > 0)", "{{target}}")],
        line=Line(limits.redis_memory_used_ratio),
        width=6,
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Redis clients",
        "Connected clients.",
        "short",
        [Target(series(RedisMetric.CONNECTED_CLIENTS, exp), "{{target}}")],
        width=6,
        min_value=0,
    )
    return board
