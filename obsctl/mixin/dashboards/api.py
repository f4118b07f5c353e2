"""API dashboard: traffic, errors and latency of the Node API by route, and its process health."""

from __future__ import annotations

from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import ApiLabel, ApiMetric
from obsctl.mixin.dashboards.panels import RATE, Board, Fault, Line, Target, query_variable
from obsctl.mixin.promql import series
from obsctl.mixin.rules import (
    CONFIG_CACHE_HIT_RATIO,
    CONFIG_CACHE_LOOKUPS,
    CONFIG_CACHE_WINDOW,
    NODE_RESTARTS,
    RATE_LIMIT_CHECKS,
    RATE_LIMIT_REJECTED,
    RATE_LIMIT_WINDOW,
    RESTART_WINDOW,
)

KEY = "api"
HTTP = signals.HTTP


ROUTE = f'{ApiLabel.ROUTE}=~"$route"'


def error_ratio(api: str, by: str, route: str = ROUTE) -> str:
    """5xx share of requests; 0 (not empty) when nothing failed, so a healthy API draws a line."""
    return signals.error_ratio(api, RATE, by, route)


def quantile(api: str, q: float, by: str = "", route: str = ROUTE) -> str:
    """The q-quantile of request latency from the histogram buckets."""
    return signals.latency_quantile(api, q, RATE, by, route)


def _config_cache(board: Board, config: MixinConfig) -> None:
    """The feature config cache (BE-CACHE-001..003): local LRU, Redis, then MySQL."""
    api = config.selectors.api
    limits = config.thresholds
    board.row("Feature config cache")
    board.timeseries(
        f"Config cache hit ratio ({CONFIG_CACHE_WINDOW})",
        "Share of feature config lookups answered by the local LRU or Redis, a null-cache answer"
        f" included ({CONFIG_CACHE_HIT_RATIO}); the dashed line is the ConfigCacheHitRatioLow"
        f" threshold, which also needs more than {limits.config_cache_min_lookup_rate:g}"
        " lookups/s.",
        "percentunit",
        [Target(series(CONFIG_CACHE_HIT_RATIO, api), "{{job}}")],
        line=Line(limits.config_cache_hit_ratio, above=False),
        width=8,
        min_value=0,
        max_value=1,
    )
    lookups = series(ApiMetric.CONFIG_CACHE_LOOKUPS, api)
    board.timeseries(
        "Config lookups per second by layer and result",
        "Every lookup asks the local LRU (30 s); its misses ask Redis (cfg:{feature}:{ver},"
        " 300 s +- 60 s); Redis misses load from MySQL. null: a cached absence (30 s).",
        "ops",
        [
            Target(f"sum by (layer, result) (rate({lookups}[{RATE}]))", "{{layer}} {{result}}"),
            Target(series(CONFIG_CACHE_LOOKUPS, api), "all lookups {{job}}"),
        ],
        width=8,
        min_value=0,
    )
    duration = ApiMetric.CONFIG_CACHE_ORIGIN_DURATION
    board.timeseries(
        "Config origin load time (MySQL, after a miss)",
        "Average and P95 time of one feature's database load after both layers missed. Rightly"
        " empty while the cache answers, but for a blip when a feature's Redis key expires"
        " (every 300 +- 60 s); a miss storm fills it. The dashed line is the plan's average"
        " budget (thresholds.config_cache_origin_latency_seconds); the loads per second are the"
        " redis miss line of the panel beside.",
        "s",
        [
            Target(
                f"sum(rate({series(f'{duration}_sum', api)}[{RATE}]))"
                f" / sum(rate({series(f'{duration}_count', api)}[{RATE}]))",
                "average",
            ),
            Target(
                f"histogram_quantile(0.95, sum by (le)"
                f" (rate({series(f'{duration}_bucket', api)}[{RATE}])))",
                "P95",
            ),
        ],
        line=Line(limits.config_cache_origin_latency_seconds),
        width=8,
        min_value=0,
        quiet=Fault.CONFIG_CACHE_MISS_STORM,
    )
    board.timeseries(
        "Invalidations and subscribed processes",
        "config.invalidate messages received per second, and how many API processes are"
        " subscribed (each must be, or it serves a changed config for up to 30 s).",
        "short",
        [
            Target(
                f"sum(rate({series(ApiMetric.CONFIG_CACHE_INVALIDATIONS, api)}[{RATE}]))",
                "invalidations/s",
            ),
            Target(
                f"sum by (job) ({series(ApiMetric.CONFIG_CACHE_SUBSCRIBED, api)})",
                "subscribed {{job}}",
            ),
        ],
        width=24,
        min_value=0,
    )


def build(config: MixinConfig) -> Board:
    """The API dashboard."""
    api = config.selectors.api
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / API",
        "Requests, 5xx ratio and latency of the image API by route (prom-client histogram).",
        variables=[query_variable("route", "Route", series(signals.REQUESTS, api), "route")],
    )
    board.link_to("overview", "Overview")
    durations = series(f"{HTTP}_sum", api, ROUTE)

    board.row("Traffic and errors")
    board.timeseries(
        "Requests per second by route",
        "All API requests, by Express route pattern.",
        "reqps",
        [Target(signals.request_rate(api, RATE, "route", ROUTE), "{{route}}")],
        stacked=True,
    )
    board.timeseries(
        "Requests per second by status code",
        "Responses by HTTP status; 402 (quota exhausted) and 404 are expected in small numbers.",
        "reqps",
        [Target(signals.request_rate(api, RATE, "status_code", ROUTE), "{{status_code}}")],
        stacked=True,
    )
    board.timeseries(
        "5xx error ratio",
        "Share of requests answered 5xx; the dashed line is the ApiHighErrorRate threshold.",
        "percentunit",
        [
            Target(error_ratio(api, ""), "all routes"),
            Target(error_ratio(api, "route"), "{{route}}"),
        ],
        line=Line(limits.api_error_ratio),
        min_value=0,
    )
    board.stat(
        "5xx error ratio now",
        "Share of requests answered 5xx over the rate interval, all selected routes.",
        "percentunit",
        [Target(error_ratio(api, ""), "5xx ratio")],
        line=Line(limits.api_error_ratio),
        width=6,
        height=8,
    )
    board.stat(
        "Requests per second now",
        "All selected routes.",
        "reqps",
        [Target(signals.request_rate(api, RATE, "", ROUTE), "requests/s")],
        width=6,
        height=8,
    )

    board.row("Latency")
    board.timeseries(
        "Latency P50 / P95 / P99",
        "Request latency quantiles over the selected routes; the dashed line is the "
        "ApiHighLatencyP95 threshold.",
        "s",
        [
            Target(quantile(api, 0.5), "P50"),
            Target(quantile(api, 0.95), "P95"),
            Target(quantile(api, 0.99), "P99"),
        ],
        line=Line(limits.api_latency_p95_seconds),
        min_value=0,
    )
    board.timeseries(
        "P95 latency by route",
        "Per route; the dashed line is the ApiHighLatencyP95 threshold.",
        "s",
        [Target(quantile(api, 0.95, "route"), "{{route}}")],
        line=Line(limits.api_latency_p95_seconds),
        min_value=0,
    )
    board.table(
        "Slowest routes (P95)",
        "The five routes with the highest P95 latency over the rate interval.",
        "s",
        [Target(f"topk(5, {quantile(api, 0.95, 'route')})", "{{route}}")],
    )
    board.timeseries(
        "Mean latency by route",
        "Sum of durations over the number of requests, per route.",
        "s",
        [
            Target(
                f"sum by (route) (rate({durations}[{RATE}]))"
                f" / {signals.request_rate(api, RATE, 'route', ROUTE)}",
                "{{route}}",
            )
        ],
        min_value=0,
    )

    board.row("Node.js process")
    board.timeseries(
        "CPU (cores)",
        "CPU time the API process uses per second; 1 is one full core.",
        "percentunit",
        [Target(f"rate({series(ApiMetric.CPU, api)}[{RATE}])", "{{instance}}")],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Event loop lag",
        "How late the Node.js event loop runs callbacks: P99 of the delays between scrapes and "
        "the lag of one timer at the scrape; the dashed line is the NodeEventLoopLagHigh "
        "threshold.",
        "s",
        [
            Target(series(ApiMetric.EVENT_LOOP_LAG_P99, api), "P99 {{instance}}"),
            Target(series(ApiMetric.EVENT_LOOP_LAG, api), "now {{instance}}"),
        ],
        line=Line(limits.node_eventloop_lag_p99_seconds),
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Resident memory",
        "Resident set size of the API process.",
        "bytes",
        [Target(series(ApiMetric.RESIDENT_MEMORY, api), "{{instance}}")],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "V8 heap used of its limit",
        "nodejs_heap_size_used_bytes / nodejs_heap_size_limit_bytes (--max-old-space-size); at "
        "100 % the process dies of heap out of memory (NodeHeapNearLimit).",
        "percentunit",
        [
            Target(
                f"{series(ApiMetric.HEAP_USED, api)} / {series(ApiMetric.HEAP_LIMIT, api)}",
                "{{instance}}",
            )
        ],
        line=Line(limits.node_heap_used_ratio),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        f"Process restarts ({RESTART_WINDOW})",
        f"Times each API process started again over the last {RESTART_WINDOW} (PM2 restarts, "
        f"seen as process_start_time_seconds changing; recorded as {NODE_RESTARTS}); a deploy "
        "restarts each once (NodeProcessRestarting).",
        "short",
        [Target(series(NODE_RESTARTS, api), "{{instance}}")],
        line=Line(limits.node_process_restarts),
        min_value=0,
    )

    board.row("Rate limiting")
    board.timeseries(
        f"Rejected share by limiter ({RATE_LIMIT_WINDOW})",
        f"Share of each rate limiter's checks refused with 429 ({RATE_LIMIT_REJECTED}); the "
        "dashed line is the RateLimitRejectionsHigh threshold, which also needs more than "
        f"{limits.rate_limit_min_request_rate:g} checks/s.",
        "percentunit",
        [Target(series(RATE_LIMIT_REJECTED, api), "{{limiter}}")],
        line=Line(limits.rate_limit_rejected_ratio),
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Rate limiter checks and store errors per second",
        "Checks of each limiter (global, ip, user, task_create) and those whose Redis store "
        "failed, answered from process memory instead (rate_limit_errors_total).",
        "reqps",
        [
            Target(series(RATE_LIMIT_CHECKS, api), "checks {{limiter}}"),
            Target(
                f"sum by (limiter) (rate({series(ApiMetric.RATE_LIMIT_ERRORS, api)}[{RATE}]))",
                "store errors {{limiter}}",
            ),
        ],
        min_value=0,
    )

    _config_cache(board, config)
    return board
