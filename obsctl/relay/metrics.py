"""The relay's own metrics, in a registry of its own, zero-filled for every target."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from obsctl.httpserve import HttpCounters
from obsctl.metric_names import RelayMetric
from obsctl.relay.dingtalk import Failure

# Bounded label values for the webhook answers that are the caller's fault.
REJECTIONS = (
    "unauthorized", "unknown_target", "too_large", "bad_json", "bad_payload", "read_timeout",
)  # fmt: skip
OUTCOMES = ("queued", "rejected")
DROP_REASONS = ("internal_error",)
STATUSES = ("firing", "resolved")
TARGET_STATES = ("ok", "pacing", "throttled", "failing")


def _is(state: Callable[[], StrEnum], name: str) -> Callable[[], float]:
    return lambda: float(state().value == name)


ESCALATION_ERRORS = ("alertmanager", "mail", "sms", "state_file")
SMS_OUTCOMES = ("sent", "failed")


class RelayMetrics:
    """Counters, gauges and histograms the relay updates as it works."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sent = Counter(
            RelayMetric.SENT,
            "DingTalk messages the robot accepted (HTTP 200, errcode 0).",
            ["target"],
            registry=r,
        )
        self.failed = Counter(
            RelayMetric.FAILED,
            "DingTalk send attempts that did not deliver, by reason.",
            ["target", "reason"],
            registry=r,
        )
        self.retries = Counter(
            RelayMetric.RETRIES,
            "Send attempts made after a failed or rate-limited one.",
            ["target"],
            registry=r,
        )
        self.rate_limited = Counter(
            RelayMetric.RATE_LIMITED,
            "Rate-limit answers from DingTalk (errcode 410100 or 130101).",
            ["target"],
            registry=r,
        )
        self.alerts_received = Counter(
            RelayMetric.ALERTS_RECEIVED,
            "Alerts received in Alertmanager webhooks, by alert status.",
            ["target", "status"],
            registry=r,
        )
        self.notifications = Counter(
            RelayMetric.NOTIFICATIONS,
            "Webhooks answered: queued on disk for delivery (202), empty (200), or rejected "
            "so Alertmanager retries (503: queue full or the spool cannot be written).",
            ["target", "outcome"],
            registry=r,
        )
        self.alerts_merged = Counter(
            RelayMetric.ALERTS_MERGED,
            "Alerts that replaced a queued copy of themselves instead of queueing again.",
            ["target"],
            registry=r,
        )
        self.dropped = Counter(
            RelayMetric.DROPPED,
            "Accepted alerts given up on, by reason (each is also logged as an error).",
            ["target", "reason"],
            registry=r,
        )
        self.render_failures = Counter(
            RelayMetric.RENDER_FAILURES,
            "Messages sent in the plain fallback form because the template or an alert failed.",
            ["target"],
            registry=r,
        )
        self.oldest_queued = Gauge(
            RelayMetric.OLDEST_QUEUED,
            "Age of the oldest alert waiting for a DingTalk send (0 when none is).",
            ["target"],
            registry=r,
        )
        self.target_state = Gauge(
            RelayMetric.TARGET_STATE,
            "1 for the state each target is in (ok, pacing, throttled, failing).",
            ["target", "state"],
            registry=r,
        )
        self.http = HttpCounters.register(r)
        self.spool_open = Gauge(
            RelayMetric.SPOOL_OPEN,
            "Accepted alerts on disk not yet delivered.",
            registry=r,
        )
        self.rejected = Counter(
            RelayMetric.WEBHOOK_ERRORS,
            "Webhooks refused with a 4xx that a retry cannot fix, by reason.",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            RelayMetric.QUEUE_DEPTH,
            "Alerts waiting for (or in) a DingTalk send.",
            ["target"],
            registry=r,
        )
        self.send_duration = Histogram(
            RelayMetric.SEND_DURATION,
            "Duration of one DingTalk send attempt.",
            ["target"],
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.escalations = Counter(
            RelayMetric.ESCALATIONS,
            "Unclaimed alerts escalated, by escalation level (1 is the first).",
            ["level"],
            registry=r,
        )
        self.escalation_errors = Counter(
            RelayMetric.ESCALATION_ERRORS,
            "Escalation work that failed: asking Alertmanager, mailing, texting, writing its state"
            " file.",
            ["reason"],
            registry=r,
        )
        self.escalation_sms = Counter(
            RelayMetric.ESCALATION_SMS,
            "Escalation text messages, one per phone, by outcome: sent (Tencent Cloud SMS took"
            " it) or failed.",
            ["outcome"],
            registry=r,
        )
        for outcome in SMS_OUTCOMES:
            self.escalation_sms.labels(outcome)
        self.escalations.labels("1")  # exposed (as 0) before the first escalation
        for reason in ESCALATION_ERRORS:
            self.escalation_errors.labels(reason)
        self.escalation_tracked = Gauge(
            RelayMetric.ESCALATIONS_TRACKED,
            "Firing alert episodes the escalation watches: delivered, not resolved or claimed yet.",
            registry=r,
        )
        self.emails = Counter(
            RelayMetric.EMAILS,
            "Alert emails sent for Alertmanager (POST /email/<recipient>), by outcome: sent"
            " (the SMTP server took it) or failed (answered 503; Alertmanager retries).",
            ["recipient", "outcome"],
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
            self.alerts_merged.labels(target)
            self.render_failures.labels(target)
            for reason in DROP_REASONS:
                self.dropped.labels(target, reason)
        for reason in REJECTIONS:
            self.rejected.labels(reason)

    def watch(
        self,
        target: str,
        depth: Callable[[], int],
        oldest: Callable[[], float],
        state: Callable[[], StrEnum],
    ) -> None:
        """Read a target's queue depth, oldest alert and state at scrape time."""
        self.queue_depth.labels(target).set_function(depth)
        self.oldest_queued.labels(target).set_function(oldest)
        for name in TARGET_STATES:
            self.target_state.labels(target, name).set_function(_is(state, name))
