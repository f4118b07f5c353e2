"""The PromQL of each signal that both alerts and dashboards watch, written once.

Rules record or alert on these over fixed windows and with their own grouping; panels draw
the same expressions over Grafana's `$__rate_interval`, filtered by the dashboard's variables.
`by` is the grouping ("" sums everything), `filters` are extra label matchers.
"""

from __future__ import annotations

from obsctl.metric_names import (
    AlertmanagerMetric,
    BullMQMetric,
    BusinessMetric,
    ExporterMetric,
    MySQLMetric,
    NodeMetric,
    ProbeMetric,
    RedisMetric,
    RelayMetric,
)
from obsctl.mixin.contract import DEAD_LETTER_QUEUE, ApiLabel, ApiMetric
from obsctl.mixin.promql import series

# The API's request histogram (obsctl.mixin.contract).
HTTP = ApiMetric.HTTP_DURATION
REQUESTS = f"{HTTP}_count"
BUCKETS = f"{HTTP}_bucket"
SERVER_ERRORS = f'{ApiLabel.STATUS_CODE}=~"5.."'
# The jobs QueueBacklogHigh counts: ready for a worker now. A paused queue's jobs are `paused`
# (held back on purpose), not `waiting`.
WAITING = 'state="waiting"'
# Every queue a worker should be taking jobs from: all but the dead-letter queue, whose jobs
# wait for a person (kept paused, it would fill "paused queues" and age without end).
WORK_QUEUES = f'queue!="{DEAD_LETTER_QUEUE}"'
MYSQL_SELECT1 = ('probe="mysql"', 'phase="select1"')
# DingTalk's "send too fast" answer: the relay waits it out (10 minutes); not a failed delivery.
NOT_RATE_LIMITED = 'reason!="rate_limited"'
# node_exporter's CPU modes that are no work: idle, waiting for I/O, time the hypervisor took.
CPU_NOT_BUSY = 'mode=~"idle|iowait|steal"'
IDLE = 'mode="idle"'  # one series per CPU
# One series per host: node_exporter's own labels (its memory and load series carry no others).
HOST_BY = "job, instance"
# Filesystems that live in memory or are layers of an image: they never fill a disk. (The
# Debian package already leaves out /dev, /proc, /run, /sys and the pseudo filesystems.)
DISK_FILESYSTEMS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|fuse.lxcfs"'


def _sum(by: str) -> str:
    return f"sum by ({by}) " if by else "sum "


def _rate(metric: str, window: str, by: str, *matchers: str) -> str:
    return f"{_sum(by)}(rate({series(metric, *matchers)}[{window}]))"


def request_rate(api: str, window: str, by: str = "", *filters: str) -> str:
    """API requests per second."""
    return _rate(REQUESTS, window, by, api, *filters)


def error_ratio(api: str, window: str, by: str = "", *filters: str) -> str:
    """5xx share of API requests; 0 (not empty) when nothing failed.

    `or ... * 0`: a histogram has no 5xx series until the first 5xx; the ratio is 0 then.
    """
    total = request_rate(api, window, by, *filters)
    errors = _rate(REQUESTS, window, by, api, *filters, SERVER_ERRORS)
    return f"({errors} or {total} * 0) / {total}"


def latency_quantile(api: str, q: float, window: str, by: str = "", *filters: str) -> str:
    """The q-quantile of API request latency from the histogram buckets."""
    keep = f"{by}, le" if by else "le"
    buckets = series(BUCKETS, api, *filters)
    return f"histogram_quantile({q}, sum by ({keep}) (rate({buckets}[{window}])))"


def tasks_finished_rate(exporter: str, window: str, by: str = "", *filters: str) -> str:
    """Tasks reaching a final status (succeeded or failed) per second."""
    ok = _rate(BusinessMetric.TASK_SUCCEEDED, window, by, exporter, *filters)
    failed = _rate(BusinessMetric.TASK_FAILED, window, by, exporter, *filters)
    return f"{ok} + {failed}"


def task_pass_rate(exporter: str, window: str, by: str = "", *filters: str) -> str:
    """Succeeded over finished (succeeded + failed) tasks."""
    ok = _rate(BusinessMetric.TASK_SUCCEEDED, window, by, exporter, *filters)
    return f"{ok} / ({tasks_finished_rate(exporter, window, by, *filters)})"


def cache_lookup_rate(exporter: str, window: str, by: str = "") -> str:
    """Redis keyspace lookups (hits + misses) per second."""
    hits = _rate(RedisMetric.KEYSPACE_HITS, window, by, exporter)
    misses = _rate(RedisMetric.KEYSPACE_MISSES, window, by, exporter)
    return f"{hits} + {misses}"


def cache_hit_ratio(exporter: str, window: str, by: str = "") -> str:
    """Redis keyspace hits over lookups during the window."""
    hits = _rate(RedisMetric.KEYSPACE_HITS, window, by, exporter)
    return f"{hits} / ({cache_lookup_rate(exporter, window, by)})"


def provider_degraded_share(exporter: str, window: str) -> str:
    """Share of each provider's heartbeats during the window that were degraded (slow)."""
    degraded = series(ProbeMetric.STATUS, exporter, 'probe="provider"', 'status="degraded"')
    return (
        f'avg by (provider) (label_replace(avg_over_time({degraded}[{window}]), "provider", "$1",'
        ' "target", "(.*)"))'
    )


def waiting_jobs(exporter: str, by: str, *filters: str) -> str:
    """BullMQ jobs ready and waiting for a worker, in the work queues."""
    jobs = series(BullMQMetric.JOBS, exporter, *filters, WORK_QUEUES, WAITING)
    return f"sum by ({by}) ({jobs})"


def mysql_select1(exporter: str) -> str:
    """Latency of the MySQL probe's `SELECT 1`, the number MySQLProbeSlow watches."""
    return series(ProbeMetric.PHASE_DURATION, exporter, *MYSQL_SELECT1)


def mysql_connections_used(exporter: str, by: str = "") -> str:
    """Threads connected over max_connections of each server, the highest of them."""
    connected = series(MySQLMetric.THREADS_CONNECTED, exporter)
    limit = series(MySQLMetric.MAX_CONNECTIONS, exporter)
    grouping = f"max by ({by}) " if by else "max "
    return f"{grouping}({connected} / {limit})"


def relay_failed_sends(relay: str, window: str, by: str = "") -> str:
    """The relay's failed DingTalk sends per second, rate-limit answers left out."""
    return _rate(RelayMetric.FAILED, window, by, relay, NOT_RATE_LIMITED)


def relay_delivered(relay: str, window: str, by: str = "") -> str:
    """Messages DingTalk accepted from the relay per second."""
    return _rate(RelayMetric.SENT, window, by, relay)


def notifications_failed(alertmanager: str, window: str, by: str = "") -> str:
    """Alertmanager's failed notifications per second (summed: 0.27+ adds a `reason`)."""
    return _rate(AlertmanagerMetric.NOTIFICATIONS_FAILED, window, by, alertmanager)


def notifications(alertmanager: str, window: str, by: str = "") -> str:
    """Alertmanager's notification attempts per second."""
    return _rate(AlertmanagerMetric.NOTIFICATIONS, window, by, alertmanager)


def leaders(exporter: str) -> str:
    """How many sidecars hold the leader lease (exactly 1 when all is well)."""
    return f"sum({series(ExporterMetric.LEADER, exporter)})"


def memory_available_ratio(node: str) -> str:
    """MemAvailable over MemTotal of each host: what the kernel can give without swapping."""
    available = series(NodeMetric.MEMORY_AVAILABLE, node)
    return f"{available} / {series(NodeMetric.MEMORY_TOTAL, node)}"


def cpu_busy_ratio(node: str, window: str) -> str:
    """Share of each host's CPU time doing work (all of it but idle, iowait and steal)."""
    not_busy = f"rate({series(NodeMetric.CPU_SECONDS, node, CPU_NOT_BUSY)}[{window}])"
    return f"1 - avg by ({HOST_BY}) (sum by ({HOST_BY}, cpu) ({not_busy}))"


def cores(node: str) -> str:
    """How many CPUs each host has."""
    return f"count by ({HOST_BY}) ({series(NodeMetric.CPU_SECONDS, node, IDLE)})"


def load_per_core(node: str) -> str:
    """The 1-minute load average of each host over its CPUs."""
    return f"{series(NodeMetric.LOAD1, node)} / on ({HOST_BY}) {cores(node)}"


def filesystem_free_ratio(node: str) -> str:
    """Free share of each disk filesystem, as unprivileged processes see it."""
    available = series(NodeMetric.FILESYSTEM_AVAILABLE, node, DISK_FILESYSTEMS)
    return f"{available} / {series(NodeMetric.FILESYSTEM_SIZE, node, DISK_FILESYSTEMS)}"


def dead_lettered(api: str, window: str, by: str = "", *filters: str) -> str:
    """Task jobs moved to the dead-letter queue over the window (every attempt failed)."""
    jobs = series(ApiMetric.JOBS_DEAD_LETTERED, api, *filters)
    return f"{_sum(by)}(increase({jobs}[{window}]))"
