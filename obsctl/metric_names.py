"""The obsctl exporter's series names, declared once (as in query-exporter's builtin_metrics).

The exporter builds its families under these names; the rule and dashboard generators query
them and the dashboard lint knows them from here. Counters are named as their samples are
(`..._total`); `exposed()` lists every sample name a scrape can hold.
"""

from __future__ import annotations

from enum import StrEnum


class ProbeMetric(StrEnum):
    """The series every probe target has, built by the collector from the latest outcome."""

    SUCCESS = "obsctl_probe_success"
    DURATION = "obsctl_probe_duration_seconds"
    PHASE_DURATION = "obsctl_probe_phase_duration_seconds"
    STATUS = "obsctl_probe_status"
    FAILURE_REASON = "obsctl_probe_failure_reason"
    LAST_SUCCESS = "obsctl_probe_last_success_timestamp_seconds"
    LAST_RUN = "obsctl_probe_last_run_timestamp_seconds"
    INTERVAL = "obsctl_probe_interval_seconds"
    RUNS = "obsctl_probe_runs_total"
    FAILURES = "obsctl_probe_failures_total"


class ExporterMetric(StrEnum):
    """The exporter's own series: its build and its standing in the leader election."""

    BUILD = "obsctl_exporter_build"
    LEADER = "obsctl_exporter_leader"
    FENCING_TOKEN = "obsctl_exporter_leader_fencing_token"
    LEADER_CHANGES = "obsctl_exporter_leader_changes_total"


class HttpMetric(StrEnum):
    """Every obsctl server's own HTTP guard (obsctl.httpserve): the exporter's and the relay's."""

    BAD_REQUESTS = "obsctl_http_bad_requests_total"
    REFUSED_CONNECTIONS = "obsctl_http_connections_refused_total"


class MySQLMetric(StrEnum):
    """The MySQL probe: the server's figures and the exporter's own pool."""

    THREADS_CONNECTED = "mysql_threads_connected"
    THREADS_RUNNING = "mysql_threads_running"
    MAX_USED_CONNECTIONS = "mysql_max_used_connections"
    SLOW_QUERIES = "mysql_slow_queries_total"
    ABORTED_CONNECTS = "mysql_aborted_connects_total"
    QUESTIONS = "mysql_questions_total"
    UPTIME = "mysql_uptime_seconds"
    MAX_CONNECTIONS = "mysql_max_connections"
    PROCESSLIST_CONNECTIONS = "mysql_processlist_connections"
    POOL_CONNECTIONS = "obsctl_mysql_pool_connections"
    POOL_WAITING = "obsctl_mysql_pool_waiting"
    POOL_MAX = "obsctl_mysql_pool_max"


class RedisMetric(StrEnum):
    """The Redis probe's figures from INFO."""

    MEMORY_USED = "redis_memory_used_bytes"
    MEMORY_MAX = "redis_memory_max_bytes"
    CONNECTED_CLIENTS = "redis_connected_clients"
    BLOCKED_CLIENTS = "redis_blocked_clients"
    KEYSPACE_HITS = "redis_keyspace_hits_total"
    KEYSPACE_MISSES = "redis_keyspace_misses_total"
    KEYSPACE_HIT_RATIO = "redis_keyspace_hit_ratio"
    EVICTED_KEYS = "redis_evicted_keys_total"
    UPTIME = "redis_uptime_seconds"


class BullMQMetric(StrEnum):
    """The BullMQ probe's queue figures."""

    JOBS = "bullmq_queue_jobs"
    OLDEST_WAITING = "bullmq_queue_oldest_waiting_seconds"
    PAUSED = "bullmq_queue_paused"
    QUEUES_DISCOVERED = "bullmq_queues_discovered"
    QUEUES_IGNORED = "bullmq_queues_ignored"


class BusinessMetric(StrEnum):
    """The business reader: tasks and quotas from the platform's tables, and its own state."""

    TASK_CREATED = "task_created_total"
    TASK_SUCCEEDED = "task_succeeded_total"
    TASK_FAILED = "task_failed_total"
    TASK_LATENCY = "task_latency_seconds"
    QUOTA_CONSUMED = "quota_consumed_total"
    QUOTA_REMAINING = "quota_remaining"
    QUOTA_EXHAUSTED_USERS = "quota_exhausted_users"
    ROWS_READ = "obsctl_business_rows_read_total"
    LAG = "obsctl_business_lag_seconds"
    TRACKED_TASKS = "obsctl_business_tracked_tasks"


FAMILIES: tuple[type[StrEnum], ...] = (
    ProbeMetric,
    ExporterMetric,
    HttpMetric,
    MySQLMetric,
    RedisMetric,
    BullMQMetric,
    BusinessMetric,
)
# Families whose samples carry suffixes of their own.
HISTOGRAMS = frozenset({BusinessMetric.TASK_LATENCY})
INFOS = frozenset({ExporterMetric.BUILD})
# Series only the elected leader exports (obsctl.exporter.singletons): one copy per platform,
# not per sidecar. The MySQL pool figures are each sidecar's own and stay out of this set.
SINGLETON_SERIES = frozenset(
    {
        *BusinessMetric,
        *BullMQMetric,
        *(name for name in MySQLMetric if not name.startswith("obsctl_mysql_pool_")),
    }
)


def exposed() -> frozenset[str]:
    """Every sample name the exporter can expose: histogram buckets, counts and sums included."""
    names: set[str] = set()
    for family in FAMILIES:
        for name in family:
            if name in HISTOGRAMS:
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            elif name in INFOS:
                names.add(f"{name}_info")
            else:
                names.add(name.value)
    return frozenset(names)
