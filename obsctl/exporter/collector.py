"""The /metrics collector: fresh metric families from the latest probe results, no I/O."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from obsctl import __version__
from obsctl.exporter.leader import Leadership, SoleLeader
from obsctl.exporter.probes.base import Reason, Status
from obsctl.exporter.results import ResultStore
from obsctl.exporter.singletons import SINGLETON_KINDS, is_singleton_family, with_instance
from obsctl.metric_names import ExporterMetric, ProbeMetric

_LABELS = ["probe", "target"]


class ProbeCollector(Collector):
    """Generic series for every probe target, then each probe's own families.

    A follower exports none of the singleton series: leadership is judged at scrape time by
    the lease's local deadline, so a leader paused past its lease publishes nothing on waking.
    """

    def __init__(
        self,
        store: ResultStore,
        leadership: Leadership | None = None,
        instance: str | None = None,
    ) -> None:
        self.store = store
        self.leadership = leadership or SoleLeader()
        # The stable `instance` of singleton series; None keeps the scrape target's.
        self.instance = instance

    def collect(self) -> Iterator[Metric]:
        """Build every family from the store's current snapshot."""
        leading = self.leadership.leading()
        records = {
            key: record
            for key, record in self.store.snapshot().items()
            if leading or key[0] not in SINGLETON_KINDS
        }
        success = GaugeMetricFamily(
            ProbeMetric.SUCCESS,
            "1 if the last probe run reached the dependency (cached, refreshed on each probe's "
            "interval).",
            labels=_LABELS,
        )
        duration = GaugeMetricFamily(
            ProbeMetric.DURATION, "Duration of the last probe run.", labels=_LABELS
        )
        phase = GaugeMetricFamily(
            ProbeMetric.PHASE_DURATION,
            "Duration of each phase of the last probe run.",
            labels=[*_LABELS, "phase"],
        )
        state = GaugeMetricFamily(
            ProbeMetric.STATUS,
            "1 for the dependency's current status (ok, degraded, down, unknown before the "
            "first run).",
            labels=[*_LABELS, "status"],
        )
        reason = GaugeMetricFamily(
            ProbeMetric.FAILURE_REASON,
            "1 for the reason the last run was not ok, 0 for the others.",
            labels=[*_LABELS, "reason"],
        )
        last_success = GaugeMetricFamily(
            ProbeMetric.LAST_SUCCESS,
            "Unix time of the last successful run (0 if none yet).",
            labels=_LABELS,
        )
        last_run = GaugeMetricFamily(
            ProbeMetric.LAST_RUN,
            "Unix time of the last run (0 if none yet).",
            labels=_LABELS,
        )
        interval = GaugeMetricFamily(
            ProbeMetric.INTERVAL, "Configured interval of the probe.", labels=_LABELS
        )
        runs = CounterMetricFamily(ProbeMetric.RUNS, "Probe runs.", labels=_LABELS)
        failures = CounterMetricFamily(
            ProbeMetric.FAILURES, "Probe runs that found the dependency down.", labels=_LABELS
        )
        own: list[Metric] = []
        for (kind, target), record in sorted(records.items()):
            labels = [kind, target]
            outcome = record.latest
            interval.add_metric(labels, record.interval_seconds)
            runs.add_metric(labels, record.runs)
            failures.add_metric(labels, record.failures)
            last_success.add_metric(labels, record.last_success or 0.0)
            last_run.add_metric(labels, outcome.checked_at if outcome else 0.0)
            current = outcome.status.value if outcome else "unknown"
            for status in [*(s.value for s in Status), "unknown"]:
                state.add_metric([*labels, status], 1.0 if status == current else 0.0)
            current_reason = outcome.reason.value if outcome and outcome.reason else None
            for why in Reason:
                reason.add_metric([*labels, why.value], 1.0 if why.value == current_reason else 0.0)
            if outcome is None:
                continue
            success.add_metric(labels, 1.0 if outcome.success else 0.0)
            duration.add_metric(labels, outcome.duration_seconds)
            for name, seconds in sorted(outcome.phases.items()):
                phase.add_metric([*labels, name], seconds)
            own.extend(outcome.families)
        info = InfoMetricFamily(ExporterMetric.BUILD, "Version of the exporter.")
        info.add_metric([], {"version": __version__})
        yield from (success, duration, phase, state, reason, last_success, last_run, interval)
        yield from (runs, failures, info, *self._leader_families(leading))
        yield from _merge(list(self._published(own, leading)))

    def _published(self, families: list[Metric], leading: bool) -> Iterator[Metric]:
        for family in families:
            if not is_singleton_family(family.name):
                yield family
            elif leading:
                yield with_instance(family, self.instance) if self.instance else family

    def _leader_families(self, leading: bool) -> tuple[Metric, ...]:
        standing = self.leadership.standing()
        leader = GaugeMetricFamily(
            ExporterMetric.LEADER,
            "1 while this sidecar holds the leader lease and runs the singleton probes.",
        )
        leader.add_metric([], 1.0 if leading else 0.0)
        token = GaugeMetricFamily(
            ExporterMetric.FENCING_TOKEN,
            "Fencing token of the last lease this sidecar held (0 if none).",
        )
        token.add_metric([], standing.token)
        changes = CounterMetricFamily(
            ExporterMetric.LEADER_CHANGES, "Role changes (leader <-> follower) of this sidecar."
        )
        changes.add_metric([], standing.changes)
        return leader, token, changes


def _merge(families: list[Metric]) -> Iterator[Metric]:
    """One family per name: several targets of one kind each built their own copy."""
    merged: dict[str, Metric] = {}
    for family in families:
        if family.name in merged:
            merged[family.name].samples.extend(family.samples)
        else:
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = list(family.samples)
            merged[family.name] = copy
    yield from merged.values()


def build_registry(
    store: ResultStore, leadership: Leadership | None = None, instance: str | None = None
) -> CollectorRegistry:
    """The registry /metrics renders: probe results plus the process's own metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProbeCollector(store, leadership, instance))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
