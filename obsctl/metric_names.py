"""Series names obsctl builds or reads, declared once (as in query-exporter's builtin_metrics).

The exporter, the relay and the dead man's switch build their families under these names; the
rule and dashboard generators query them and the dashboard lint knows them from here, together
with the few series of Prometheus and Alertmanager the alert-path rules read. Counters are named
as their samples are (`..._total`); `exposed()` lists every sample name a scrape can hold.
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
    # The queue Redis's maxmemory-policy: anything but noeviction lets Redis delete jobs.
    REDIS_MAXMEMORY_POLICY = "bullmq_redis_maxmemory_policy"


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


class RelayMetric(StrEnum):
    """The DingTalk relay (obsctl.relay.metrics), per target robot where labelled `target`."""

    SENT = "obsctl_relay_messages_sent_total"  # messages DingTalk accepted (errcode 0)
    FAILED = "obsctl_relay_messages_failed_total"  # send attempts that did not deliver, {reason}
    RETRIES = "obsctl_relay_retries_total"
    RATE_LIMITED = "obsctl_relay_rate_limited_total"  # DingTalk's "send too fast" answers
    ALERTS_RECEIVED = "obsctl_relay_alerts_received_total"
    NOTIFICATIONS = "obsctl_relay_notifications_total"  # webhooks answered, {outcome}
    ALERTS_MERGED = "obsctl_relay_alerts_merged_total"
    DROPPED = "obsctl_relay_alerts_dropped_total"  # accepted alerts given up on, {reason}
    RENDER_FAILURES = "obsctl_relay_render_failures_total"
    OLDEST_QUEUED = "obsctl_relay_oldest_queued_seconds"
    TARGET_STATE = "obsctl_relay_target_state"  # 1 for ok, pacing, throttled or failing
    SPOOL_OPEN = "obsctl_relay_spool_open_alerts"
    WEBHOOK_ERRORS = "obsctl_relay_webhook_errors_total"
    QUEUE_DEPTH = "obsctl_relay_queue_depth"
    SEND_DURATION = "obsctl_relay_send_duration_seconds"
    ESCALATIONS = "obsctl_relay_escalations_total"  # unclaimed alerts escalated, {level}
    ESCALATION_ERRORS = "obsctl_relay_escalation_errors_total"  # {reason}
    ESCALATIONS_TRACKED = "obsctl_relay_escalation_tracked_alerts"
    ESCALATION_SMS = "obsctl_relay_escalation_sms_total"  # texts per phone, {outcome}
    EMAILS = "obsctl_relay_emails_total"  # alert emails sent for Alertmanager, {recipient, outcome}


class DeadmanMetric(StrEnum):
    """The dead man's switch (obsctl.deadman.metrics)."""

    HEARTBEATS_RECEIVED = "obsctl_deadman_heartbeats_received_total"
    HEARTBEATS_IGNORED = "obsctl_deadman_heartbeats_ignored_total"
    WEBHOOK_ERRORS = "obsctl_deadman_webhook_errors_total"
    NOTIFICATIONS_SENT = "obsctl_deadman_notifications_sent_total"
    NOTIFICATIONS_FAILED = "obsctl_deadman_notifications_failed_total"
    HEARTBEAT_AGE = "obsctl_deadman_heartbeat_age_seconds"
    HEARTBEAT_MISSING = "obsctl_deadman_heartbeat_missing"
    NOTICES_UNSENT = "obsctl_deadman_notices_unsent"
    DRILL_MARKED = "obsctl_deadman_drill_marked"


class PrometheusMetric(StrEnum):
    """Prometheus' own series the alert-path rules and panels read (Prometheus 2.x names)."""

    RULE_EVALUATION_FAILURES = "prometheus_rule_evaluation_failures_total"  # {rule_group}
    NOTIFICATIONS_SENT = "prometheus_notifications_sent_total"  # alerts sent, {alertmanager}
    NOTIFICATIONS_ERRORS = "prometheus_notifications_errors_total"  # of those, failed
    NOTIFICATIONS_DROPPED = "prometheus_notifications_dropped_total"
    ALERTMANAGERS_DISCOVERED = "prometheus_notifications_alertmanagers_discovered"
    CONFIG_RELOADED = "prometheus_config_last_reload_successful"


class AlertmanagerMetric(StrEnum):
    """Alertmanager's own series the alert-path rules and panels read."""

    NOTIFICATIONS = "alertmanager_notifications_total"  # attempts, {integration}
    NOTIFICATIONS_FAILED = "alertmanager_notifications_failed_total"  # {integration[, reason]}
    CONFIG_RELOADED = "alertmanager_config_last_reload_successful"
    CLUSTER_MEMBERS = "alertmanager_cluster_members"  # peers this one sees (clustering on)


class NodeMetric(StrEnum):
    """node_exporter's series (1.x names) the host rules and the Host dashboard read."""

    CPU_SECONDS = "node_cpu_seconds_total"  # {cpu, mode}
    LOAD1 = "node_load1"
    LOAD5 = "node_load5"
    LOAD15 = "node_load15"
    MEMORY_AVAILABLE = "node_memory_MemAvailable_bytes"
    MEMORY_TOTAL = "node_memory_MemTotal_bytes"
    FILESYSTEM_AVAILABLE = "node_filesystem_avail_bytes"  # {device, fstype, mountpoint}
    FILESYSTEM_SIZE = "node_filesystem_size_bytes"
    FILESYSTEM_READONLY = "node_filesystem_readonly"
    NETWORK_RECEIVE = "node_network_receive_bytes_total"  # {device}
    NETWORK_TRANSMIT = "node_network_transmit_bytes_total"


FAMILIES: tuple[type[StrEnum], ...] = (
    ProbeMetric,
    ExporterMetric,
    HttpMetric,
    MySQLMetric,
    RedisMetric,
    BullMQMetric,
    BusinessMetric,
)
# The servers of the alert path: obsctl's relay and deadman (with HttpMetric, their HTTP guard),
# and the Prometheus and Alertmanager they watch.
ALERT_PATH_FAMILIES: tuple[type[StrEnum], ...] = (
    RelayMetric,
    DeadmanMetric,
    HttpMetric,
    PrometheusMetric,
    AlertmanagerMetric,
)
# The hosts, as node_exporter sees them.
HOST_FAMILIES: tuple[type[StrEnum], ...] = (NodeMetric,)
# Families whose samples carry suffixes of their own.
HISTOGRAMS = frozenset({BusinessMetric.TASK_LATENCY, RelayMetric.SEND_DURATION})
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


def exposed(families: tuple[type[StrEnum], ...] = FAMILIES) -> frozenset[str]:
    """Every sample name of the families (default: the exporter's), buckets and counts included."""
    names: set[str] = set()
    for family in families:
        for name in family:
            if name in HISTOGRAMS:
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            elif name in INFOS:
                names.add(f"{name}_info")
            else:
                names.add(name.value)
    return frozenset(names)
