"""The relay's own metrics, in a registry of its own, zero-filled for every target."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from obsctl.relay.dingtalk import Failure

# Bounded label values for the webhook answers that are the caller's fault.
REJECTIONS = ("unauthorized", "unknown_target", "too_large", "bad_json", "bad_payload")
OUTCOMES = ("delivered", "queued", "rejected")
STATUSES = ("firing", "resolved")


class RelayMetrics:
    """Counters, gauges and histograms the relay updates as it works."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sent = Counter(
            "obsctl_relay_messages_sent_total",
            "DingTalk messages the robot accepted (HTTP 200, errcode 0).",
            ["target"],
            registry=r,
        )
        self.failed = Counter(
            "obsctl_relay_messages_failed_total",
            "DingTalk send attempts that did not deliver, by reason.",
            ["target", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "obsctl_relay_retries_total",
            "Send attempts made after a failed or rate-limited one.",
            ["target"],
            registry=r,
        )
        self.rate_limited = Counter(
            "obsctl_relay_rate_limited_total",
            "Rate-limit answers from DingTalk (errcode 410100 or 130101).",
            ["target"],
            registry=r,
        )
        self.alerts_received = Counter(
            "obsctl_relay_alerts_received_total",
            "Alerts received in Alertmanager webhooks, by alert status.",
            ["target", "status"],
            registry=r,
        )
        self.notifications = Counter(
            "obsctl_relay_notifications_total",
            "Webhooks answered: delivered (200), queued for a later merged message (202), "
            "or rejected so Alertmanager retries (503).",
            ["target", "outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "obsctl_relay_webhook_errors_total",
            "Webhooks refused with a 4xx that a retry cannot fix, by reason.",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "obsctl_relay_queue_depth",
            "Alerts waiting for (or in) a DingTalk send.",
            ["target"],
            registry=r,
        )
        self.send_duration = Histogram(
            "obsctl_relay_send_duration_seconds",
            "Duration of one DingTalk send attempt.",
            ["target"],
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self._targets = list(targets)
        for target in self._targets:
            self.sent.labels(target)
            self.retries.labels(target)
            self.rate_limited.labels(target)
            self.send_duration.labels(target)
            for failure in Failure:
                self.failed.labels(target, failure.value)
            for status in STATUSES:
                self.alerts_received.labels(target, status)
            for outcome in OUTCOMES:
                self.notifications.labels(target, outcome)
        for reason in REJECTIONS:
            self.rejected.labels(reason)

    def watch_depth(self, target: str, depth: Callable[[], int]) -> None:
        """Read a target's queue depth at scrape time."""
        self.queue_depth.labels(target).set_function(depth)
