"""Which probes and series only the leader exports, and the stable identity they carry.

A singleton series is one figure of the whole platform (tasks created, a queue's depth, the
MySQL server's threads), so exactly one sidecar exports it. On every sidecar it carries the
same `instance` label (leader.instance, scraped with honor_labels): a fail-over then
continues one series rather than ending one and starting another, so `increase()` sees the
new leader's first sample as the next point of the same counter.
"""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from obsctl.metric_names import SINGLETON_SERIES

# Probe kinds that run only on the leader; the MySQL probe runs everywhere (SELECT 1 from this
# host, its own pool) and reads the server-wide figures only while leading.
SINGLETON_KINDS = frozenset({"business", "bullmq"})


def is_singleton_family(name: str) -> bool:
    """Whether a family (named as prometheus-client names it, counters without _total) is."""
    return name in SINGLETON_SERIES or f"{name}_total" in SINGLETON_SERIES


def with_instance(family: Metric, instance: str) -> Metric:
    """A copy of family whose every sample carries instance=<instance>."""
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = [s._replace(labels={**s.labels, "instance": instance}) for s in family.samples]
    return copy
