"""The metric contract of the Node API: what the generated rules and dashboards read from it.

Every metric the alert rules and dashboards query from the API's scrape job is declared here
once (name, type, the labels they group or filter by, and who needs it), and the generators
spell the names from here. `obsctl check app URL` holds a live `/metrics` to this contract;
tests/mixin/test_contract.py proves the contract is exactly what the generated files use.
The demo platform (obsctl/stack/demo_platform/src/metrics.js) is its reference implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from obsctl.mixin.config import AlertName, MixinConfig


class MetricType(StrEnum):
    """The Prometheus metric types the contract asks for."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class ApiMetric(StrEnum):
    """The API's series the rules and dashboards query; a counter's name includes `_total`."""

    HTTP_DURATION = "http_request_duration_seconds"
    POOL_IN_USE = "db_pool_connections_in_use"
    POOL_PENDING = "db_pool_connections_pending"
    POOL_AVAILABLE = "db_pool_connections_available"
    POOL_MAX = "db_pool_connections_max"
    CPU = "process_cpu_seconds_total"
    EVENT_LOOP_LAG = "nodejs_eventloop_lag_seconds"
    RESIDENT_MEMORY = "process_resident_memory_bytes"
    START_TIME = "process_start_time_seconds"
    HEAP_USED = "nodejs_heap_size_used_bytes"
    # Not a prom-client default: v8.getHeapStatistics().heap_size_limit (--max-old-space-size).
    HEAP_LIMIT = "nodejs_heap_size_limit_bytes"
    EVENT_LOOP_LAG_P99 = "nodejs_eventloop_lag_p99_seconds"
    # The platform's circuit breakers around provider calls (BE-ASYNC-003, opossum).
    BREAKER_STATE = "circuit_breaker_state"
    BREAKER_OPENS = "circuit_breaker_opens_total"
    BREAKER_CALLS = "circuit_breaker_calls_total"
    BREAKER_FALLBACKS = "circuit_breaker_fallbacks_total"
    # The rate limiters' checks by limiter and outcome, and the checks their store failed.
    RATE_LIMIT_REQUESTS = "rate_limit_requests_total"
    RATE_LIMIT_ERRORS = "rate_limit_errors_total"
    # The task jobs' retries and the jobs whose last attempt failed (BE-ASYNC-001).
    JOB_RETRIES = "bullmq_job_retries_total"
    JOBS_DEAD_LETTERED = "bullmq_jobs_dead_lettered_total"
    # The tasks_daily_stats aggregator (BE-DB-004): its lag at the last run, when that was.
    DAILY_STATS_LAG = "tasks_daily_stats_lag_seconds"
    DAILY_STATS_LAST_RUN = "tasks_daily_stats_last_run_timestamp_seconds"
    DAILY_STATS_APPLIED = "tasks_daily_stats_applied_total"
    DAILY_STATS_RUNS = "tasks_daily_stats_runs_total"
    # The feature config cache (BE-CACHE-001..003): lookups per layer and result, the database
    # loads after a miss, the config.invalidate messages received and the subscription.
    CONFIG_CACHE_LOOKUPS = "config_cache_lookups_total"
    CONFIG_CACHE_ORIGIN_DURATION = "config_cache_origin_load_duration_seconds"
    CONFIG_CACHE_INVALIDATIONS = "config_cache_invalidations_total"
    CONFIG_CACHE_SUBSCRIBED = "config_cache_invalidation_subscribed"


class ApiLabel(StrEnum):
    """The API's labels the rules and dashboards group or filter by."""

    ROUTE = "route"  # the route pattern (/api/tasks/:id), never the raw URL
    STATUS_CODE = "status_code"  # the numeric HTTP status, matched by status_code=~"5.."
    POOL = "pool"  # the database pool's name
    PROVIDER = "provider"  # the AI provider a breaker guards
    BREAKER_STATE = "state"  # closed, open or half_open; the current one is 1
    LIMITER = "limiter"  # a rate limiter's name from a fixed set, never a client's IP or user
    # A rate limiter's check: allowed or rejected; a breaker's call: success, failure, timeout
    # or rejected (the breaker was open); a daily-stats run: ok or error.
    OUTCOME = "outcome"
    # A task job's retries and dead letters: its work queue (the feature) and a bounded reason
    # (the task's error code, e.g. provider_failed, or internal).
    QUEUE = "queue"
    REASON = "reason"
    CACHE_LAYER = "layer"  # the config cache layer asked: local (the process's LRU) or redis
    CACHE_RESULT = "result"  # hit, miss or null (a cached absence)


# Values a label must have for the rules' matchers to work.
LABEL_VALUE_PATTERNS = {
    ApiLabel.STATUS_CODE: r"[1-5][0-9][0-9]",
    ApiLabel.BREAKER_STATE: r"closed|open|half_open",
    ApiLabel.OUTCOME: r"allowed|rejected|success|failure|timeout|ok|error",
    ApiLabel.CACHE_LAYER: r"local|redis",
    ApiLabel.CACHE_RESULT: r"hit|miss|null",
}
# Labels Prometheus's histograms and summaries carry themselves.
BUCKET_LABELS = frozenset({"le", "quantile"})


@dataclass(frozen=True)
class MetricSpec:
    """One metric the API must expose: its type, required labels and who reads it."""

    name: ApiMetric
    type: MetricType
    labels: tuple[ApiLabel, ...]
    alerts: tuple[AlertName, ...]
    dashboards: tuple[str, ...]  # keys of links.dashboard_uids
    # A platform feature not every platform has (a circuit breaker, a rate limiter): without
    # it `obsctl check app` warns that its alerts never fire instead of failing.
    feature: str | None = None

    def samples(self) -> tuple[str, ...]:
        """The sample names Prometheus stores for it (a histogram's _bucket, _count, _sum)."""
        if self.type is MetricType.HISTOGRAM:
            return tuple(f"{self.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        return (self.name.value,)

    def needed_by(self) -> str:
        """Who reads it, for people: `ApiDown, ...; dashboards api, overview`."""
        parts = [", ".join(a.value for a in self.alerts)] if self.alerts else []
        if self.dashboards:
            kind = "dashboard" if len(self.dashboards) == 1 else "dashboards"
            parts.append(f"{kind} {', '.join(self.dashboards)}")
        return "; ".join(parts)


_POOL_LABELS = (ApiLabel.POOL,)
_BREAKER = (AlertName.CIRCUIT_BREAKER_OPEN,)
BREAKER_FEATURE = "circuit breakers around the provider calls"
RATE_LIMIT_FEATURE = "rate limiters in front of the API"
DEAD_LETTER_FEATURE = "retries and a dead-letter queue for the task jobs"
# The BullMQ queue the platform keeps its dead letters in: paused and without a worker on
# purpose, so the work-queue alerts (backlog, stalled) and panels leave it out.
DEAD_LETTER_QUEUE = "dead-letter"
DAILY_STATS_FEATURE = "an incremental tasks_daily_stats aggregator"
_DAILY_STATS = (AlertName.DAILY_STATS_LAG_HIGH,)
CONFIG_CACHE_FEATURE = "a feature config cache (local LRU and Redis)"

CONTRACT: tuple[MetricSpec, ...] = (
    MetricSpec(
        ApiMetric.HTTP_DURATION,
        MetricType.HISTOGRAM,
        (ApiLabel.ROUTE, ApiLabel.STATUS_CODE),
        (
            AlertName.API_HIGH_ERROR_RATE,
            AlertName.API_ERROR_BUDGET_BURN,
            AlertName.API_HIGH_LATENCY_P95,
        ),
        ("overview", "api"),
    ),
    MetricSpec(
        ApiMetric.POOL_PENDING,
        MetricType.GAUGE,
        _POOL_LABELS,
        (AlertName.DB_POOL_SATURATED,),
        ("database",),
    ),
    MetricSpec(ApiMetric.POOL_IN_USE, MetricType.GAUGE, _POOL_LABELS, (), ("database",)),
    MetricSpec(ApiMetric.POOL_AVAILABLE, MetricType.GAUGE, _POOL_LABELS, (), ("database",)),
    MetricSpec(ApiMetric.POOL_MAX, MetricType.GAUGE, _POOL_LABELS, (), ("database",)),
    MetricSpec(ApiMetric.CPU, MetricType.COUNTER, (), (), ("api",)),
    MetricSpec(ApiMetric.EVENT_LOOP_LAG, MetricType.GAUGE, (), (), ("api",)),
    MetricSpec(ApiMetric.RESIDENT_MEMORY, MetricType.GAUGE, (), (), ("api",)),
    MetricSpec(
        ApiMetric.START_TIME, MetricType.GAUGE, (), (AlertName.NODE_PROCESS_RESTARTING,), ("api",)
    ),
    MetricSpec(
        ApiMetric.HEAP_USED, MetricType.GAUGE, (), (AlertName.NODE_HEAP_NEAR_LIMIT,), ("api",)
    ),
    MetricSpec(
        ApiMetric.HEAP_LIMIT, MetricType.GAUGE, (), (AlertName.NODE_HEAP_NEAR_LIMIT,), ("api",)
    ),
    MetricSpec(
        ApiMetric.EVENT_LOOP_LAG_P99,
        MetricType.GAUGE,
        (),
        (AlertName.NODE_EVENT_LOOP_LAG_HIGH,),
        ("api",),
    ),
    MetricSpec(
        ApiMetric.BREAKER_STATE,
        MetricType.GAUGE,
        (ApiLabel.PROVIDER, ApiLabel.BREAKER_STATE),
        _BREAKER,
        ("dependencies",),
        BREAKER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.BREAKER_OPENS,
        MetricType.COUNTER,
        (ApiLabel.PROVIDER,),
        (),
        ("dependencies",),
        BREAKER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.BREAKER_CALLS,
        MetricType.COUNTER,
        (ApiLabel.PROVIDER, ApiLabel.OUTCOME),
        (),
        ("dependencies",),
        BREAKER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.BREAKER_FALLBACKS,
        MetricType.COUNTER,
        (ApiLabel.PROVIDER,),
        (),
        ("dependencies",),
        BREAKER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.RATE_LIMIT_REQUESTS,
        MetricType.COUNTER,
        (ApiLabel.LIMITER, ApiLabel.OUTCOME),
        (AlertName.RATE_LIMIT_REJECTIONS_HIGH,),
        ("api",),
        RATE_LIMIT_FEATURE,
    ),
    MetricSpec(
        ApiMetric.RATE_LIMIT_ERRORS,
        MetricType.COUNTER,
        (ApiLabel.LIMITER,),
        (),
        ("api",),
        RATE_LIMIT_FEATURE,
    ),
    MetricSpec(
        ApiMetric.JOB_RETRIES,
        MetricType.COUNTER,
        (ApiLabel.QUEUE, ApiLabel.REASON),
        (),
        ("queues",),
        DEAD_LETTER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.JOBS_DEAD_LETTERED,
        MetricType.COUNTER,
        (ApiLabel.QUEUE,),
        (AlertName.DEAD_LETTER_JOBS_GROWING,),
        ("queues",),
        DEAD_LETTER_FEATURE,
    ),
    MetricSpec(
        ApiMetric.DAILY_STATS_LAG,
        MetricType.GAUGE,
        (),
        _DAILY_STATS,
        ("business",),
        DAILY_STATS_FEATURE,
    ),
    MetricSpec(
        ApiMetric.DAILY_STATS_LAST_RUN,
        MetricType.GAUGE,
        (),
        _DAILY_STATS,
        ("business",),
        DAILY_STATS_FEATURE,
    ),
    MetricSpec(
        ApiMetric.DAILY_STATS_APPLIED,
        MetricType.COUNTER,
        (),
        (AlertName.DAILY_STATS_DRIFT,),
        ("business",),
        DAILY_STATS_FEATURE,
    ),
    MetricSpec(
        ApiMetric.DAILY_STATS_RUNS,
        MetricType.COUNTER,
        (ApiLabel.OUTCOME,),
        (),
        ("business",),
        DAILY_STATS_FEATURE,
    ),
    MetricSpec(
        ApiMetric.CONFIG_CACHE_LOOKUPS,
        MetricType.COUNTER,
        (ApiLabel.CACHE_LAYER, ApiLabel.CACHE_RESULT),
        (AlertName.CONFIG_CACHE_HIT_RATIO_LOW,),
        ("api",),
        CONFIG_CACHE_FEATURE,
    ),
    MetricSpec(
        ApiMetric.CONFIG_CACHE_ORIGIN_DURATION,
        MetricType.HISTOGRAM,
        (),
        (),
        ("api",),
        CONFIG_CACHE_FEATURE,
    ),
    MetricSpec(
        ApiMetric.CONFIG_CACHE_INVALIDATIONS,
        MetricType.COUNTER,
        (),
        (),
        ("api",),
        CONFIG_CACHE_FEATURE,
    ),
    MetricSpec(
        ApiMetric.CONFIG_CACHE_SUBSCRIBED,
        MetricType.GAUGE,
        (),
        (),
        ("api",),
        CONFIG_CACHE_FEATURE,
    ),
)


@dataclass(frozen=True)
class LatencyThreshold:
    """A threshold of the config that an alert compares with a quantile of an API histogram."""

    metric: ApiMetric
    threshold: str  # the key under `thresholds:`
    alert: AlertName


# histogram_quantile interpolates linearly inside a bucket, so the computed quantile equals the
# real one at a threshold only when the threshold is a bucket boundary: with buckets 0.1 and
# 0.3 and no 0.2, a P95 of 0.25 s can come out as 0.19 s and the alert stays quiet.
LATENCY_THRESHOLDS: tuple[LatencyThreshold, ...] = (
    LatencyThreshold(
        ApiMetric.HTTP_DURATION, "api_latency_p95_seconds", AlertName.API_HIGH_LATENCY_P95
    ),
)


@dataclass(frozen=True)
class RequiredBucket:
    """A bucket boundary a histogram must have, and the threshold that needs it."""

    metric: ApiMetric
    seconds: float
    threshold: str
    alert: AlertName


def required_buckets(config: MixinConfig) -> list[RequiredBucket]:
    """The bucket boundaries the config's latency thresholds need, in seconds."""
    values = config.thresholds.model_dump()
    return [
        RequiredBucket(t.metric, float(values[t.threshold]), t.threshold, t.alert)
        for t in LATENCY_THRESHOLDS
    ]


def spec(name: ApiMetric) -> MetricSpec:
    """The contract's entry of one metric."""
    return next(s for s in CONTRACT if s.name is name)


def sample_names() -> frozenset[str]:
    """Every sample name of the contract: what the rules and dashboards may query."""
    return frozenset(sample for s in CONTRACT for sample in s.samples())
