"""Business dashboard: task pass rate by feature and provider, volumes, latency, quota, stats."""

from __future__ import annotations

from obsctl.metric_names import BusinessMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import ApiMetric
from obsctl.mixin.dashboards.panels import RATE, Board, Line, Target, query_variable
from obsctl.mixin.promql import series
from obsctl.mixin.rules import DAILY_STATS_FRESHNESS

KEY = "business"


FILTERS = ('feature=~"$feature"', 'provider=~"$provider"')


def pass_rate(exporter: str, by: str, filters: tuple[str, ...] = FILTERS) -> str:
    """Succeeded over finished (succeeded + failed) tasks, per `by` (or overall when empty)."""
    return signals.task_pass_rate(exporter, RATE, by, *filters)


def build(config: MixinConfig) -> Board:
    """The business dashboard."""
    exp = config.selectors.exporter
    limits = config.thresholds
    created = series(BusinessMetric.TASK_CREATED, exp)
    board = Board(
        config,
        KEY,
        "obsctl / Business",
        "Image tasks by feature (matting, outfit, faceswap, outpaint) and provider, and quota; "
        "read incrementally from MySQL by the obsctl exporter.",
        variables=[
            query_variable("feature", "Feature", created, "feature"),
            query_variable(
                "provider",
                "Provider",
                series(BusinessMetric.TASK_CREATED, exp, 'feature=~"$feature"'),
                "provider",
            ),
        ],
    )
    board.link_to("overview", "Overview")
    board.link_to("queues", "Queues")
    matchers = (exp, *FILTERS)

    board.row("Pass rate")
    board.timeseries(
        "Task pass rate by feature",
        "Succeeded / (succeeded + failed) per feature; the dashed line is the TaskPassRateLow "
        "threshold.",
        "percentunit",
        [Target(pass_rate(exp, "feature"), "{{feature}}")],
        line=Line(limits.task_pass_rate, above=False),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Task pass rate by provider",
        "Succeeded / (succeeded + failed) per AI provider; the dashed line is the "
        "TaskPassRateLow threshold.",
        "percentunit",
        [Target(pass_rate(exp, "provider"), "{{provider}}")],
        line=Line(limits.task_pass_rate, above=False),
        min_value=0,
        max_value=1,
    )

    board.row("Volume")
    board.timeseries(
        "Tasks created / succeeded / failed",
        "Tasks per second over the selected features and providers.",
        "ops",
        [
            Target(
                f"sum (rate({series(BusinessMetric.TASK_CREATED, *matchers)}[{RATE}]))", "created"
            ),
            Target(
                f"sum (rate({series(BusinessMetric.TASK_SUCCEEDED, *matchers)}[{RATE}]))",
                "succeeded",
            ),
            Target(
                f"sum (rate({series(BusinessMetric.TASK_FAILED, *matchers)}[{RATE}]))", "failed"
            ),
        ],
        min_value=0,
    )
    board.timeseries(
        "Tasks created by feature and provider",
        "Tasks per second.",
        "ops",
        [
            Target(
                f"sum by (feature, provider) (rate({series(BusinessMetric.TASK_CREATED, *matchers)}"
                f"[{RATE}]))",
                "{{feature}} / {{provider}}",
            )
        ],
        stacked=True,
    )
    board.timeseries(
        "Failed tasks by provider",
        "Failed tasks per second, by provider.",
        "ops",
        [
            Target(
                f"sum by (provider) (rate({series(BusinessMetric.TASK_FAILED, *matchers)}"
                f"[{RATE}]))",
                "{{provider}}",
            )
        ],
        min_value=0,
    )
    buckets = series(f"{BusinessMetric.TASK_LATENCY}_bucket", exp, 'feature=~"$feature"')
    board.timeseries(
        "Task latency P50 / P95 / P99",
        "From creation to a final status, over the selected features (no provider label).",
        "s",
        [
            Target(
                f"histogram_quantile({q}, sum by (le) (rate({buckets}[{RATE}])))",
                f"P{round(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
        min_value=0,
    )
    board.timeseries(
        "Task latency P95 by feature",
        "From creation to a final status.",
        "s",
        [
            Target(
                f"histogram_quantile(0.95, sum by (feature, le) (rate({buckets}[{RATE}])))",
                "{{feature}}",
            )
        ],
        min_value=0,
    )

    board.row("Quota")
    board.timeseries(
        "Quota consumed per second",
        "Quota units charged to users per second.",
        "short",
        [Target(f"sum (rate({series(BusinessMetric.QUOTA_CONSUMED, exp)}[{RATE}]))", "consumed")],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Quota remaining",
        "Sum of the remaining quota of every user.",
        "short",
        [Target(f"sum ({series(BusinessMetric.QUOTA_REMAINING, exp)})", "remaining")],
        width=8,
    )
    board.stat(
        "Users with exhausted quota",
        "Users whose remaining quota is 0; their task requests are refused (HTTP 402).",
        "short",
        [Target(f"sum ({series(BusinessMetric.QUOTA_EXHAUSTED_USERS, exp)})", "users")],
        width=4,
        height=8,
    )
    board.stat(
        "Business data lag",
        "How far behind MySQL the business metrics are (the exporter's last read).",
        "s",
        [Target(f"max ({series(BusinessMetric.LAG, exp)})", "lag")],
        width=4,
        height=8,
    )
    _daily_stats(board, config)
    return board


def _daily_stats(board: Board, config: MixinConfig) -> None:
    """The platform's tasks_daily_stats summary (BE-DB-004): how far behind, what it folds in."""
    api = config.selectors.api
    failed_runs = series(ApiMetric.DAILY_STATS_RUNS, api, 'outcome="error"')
    board.row("Daily statistics (tasks_daily_stats)")
    board.timeseries(
        "Daily statistics lag",
        "How far tasks_daily_stats is behind the tasks it counts: the aggregator's lag at its "
        "last run plus the time since that run. The dashed line is the DailyStatsLagHigh "
        "threshold (the plan's aggregationLagSec).",
        "s",
        [Target(DAILY_STATS_FRESHNESS, "{{job}}")],
        line=Line(config.thresholds.daily_stats_lag_seconds),
        width=12,
        min_value=0,
    )
    board.timeseries(
        "Tasks folded in and failed runs",
        "Finished tasks the aggregator adds to the summary per second, and its runs that "
        "failed (a deadlock, a lock wait, MySQL away); it resumes from its cursor.",
        "ops",
        [
            Target(f"sum (rate({series(ApiMetric.DAILY_STATS_APPLIED, api)}[{RATE}]))", "tasks/s"),
            Target(f"sum (rate({failed_runs}[{RATE}]))", "failed runs/s"),
        ],
        width=12,
        min_value=0,
    )
