"""The dead man's switch's own metrics, zero-filled for every heartbeat and channel."""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge

from obsctl.deadman.watch import Kind, Phase, Watcher
from obsctl.httpserve import HttpCounters
from obsctl.metric_names import DeadmanMetric

REJECTIONS = ("unauthorized", "unknown_heartbeat", "too_large", "read_timeout", "bad_payload")


class DeadmanMetrics:
    """Counters and gauges of the heartbeats and the notices sent about them."""

    def __init__(self, heartbeats: Iterable[str], channels: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.channels = list(channels)
        self.received = Counter(
            DeadmanMetric.HEARTBEATS_RECEIVED,
            "Watchdog notifications received, per heartbeat.", ["heartbeat"], registry=r,
        )  # fmt: skip
        self.ignored = Counter(
            DeadmanMetric.HEARTBEATS_IGNORED,
            "Notifications without a firing alert (a resolved Watchdog), per heartbeat.",
            ["heartbeat"], registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            DeadmanMetric.WEBHOOK_ERRORS,
            "Requests refused with a 4xx, by reason.", ["reason"], registry=r,
        )  # fmt: skip
        self.sent = Counter(
            DeadmanMetric.NOTIFICATIONS_SENT,
            "Notices a channel accepted, by kind (missing, reminder, recovered).",
            ["channel", "kind"], registry=r,
        )  # fmt: skip
        self.failed = Counter(
            DeadmanMetric.NOTIFICATIONS_FAILED,
            "Send attempts a channel refused or that failed (each is retried).",
            ["channel"], registry=r,
        )  # fmt: skip
        self.age = Gauge(
            DeadmanMetric.HEARTBEAT_AGE,
            "Seconds since the last Watchdog (since this process started if none yet).",
            ["heartbeat"], registry=r,
        )  # fmt: skip
        self.missing = Gauge(
            DeadmanMetric.HEARTBEAT_MISSING,
            "1 while a heartbeat is missing (on-call has been paged), else 0.",
            ["heartbeat"], registry=r,
        )  # fmt: skip
        self.unsent = Gauge(
            DeadmanMetric.NOTICES_UNSENT,
            "Notices a channel has yet to take.", ["channel"], registry=r,
        )  # fmt: skip
        self.drill = Gauge(
            DeadmanMetric.DRILL_MARKED,
            "1 while a drill's mark is set (the outage it causes is announced as a drill).",
            registry=r,
        )  # fmt: skip
        self.http = HttpCounters.register(r)
        self._heartbeats = list(heartbeats)
        for name in self._heartbeats:
            self.received.labels(name)
            self.ignored.labels(name)
        for reason in REJECTIONS:
            self.rejected.labels(reason)
        for channel in self.channels:
            self.failed.labels(channel)
            for kind in Kind:
                self.sent.labels(channel, kind.value)

    def watch(self, watcher: Watcher) -> None:
        """Read ages, phases and unsent notices from the watcher at scrape time."""
        for name in self._heartbeats:
            self.age.labels(name).set_function(partial(_age, watcher, name))
            self.missing.labels(name).set_function(partial(_missing, watcher, name))
        for channel in self.channels:
            self.unsent.labels(channel).set_function(partial(_unsent, watcher, channel))
        self.drill.set_function(partial(_drill_marked, watcher))


def _age(watcher: Watcher, name: str) -> float:
    beat = watcher.state.heartbeats[name]
    return time.time() - (beat.last_seen or beat.watching_since)


def _missing(watcher: Watcher, name: str) -> float:
    return float(watcher.state.heartbeats[name].phase is Phase.MISSING)


def _drill_marked(watcher: Watcher) -> float:
    return float(watcher.active_drill(time.time()) is not None)


def _unsent(watcher: Watcher, channel: str) -> float:
    return float(len(watcher.owed(channel)))
