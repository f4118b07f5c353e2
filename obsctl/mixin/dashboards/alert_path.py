"""The "Alert path" row of the overview: is the way from a rule to a DingTalk message healthy?

Prometheus evaluating rules and sending alerts, Alertmanager's integrations, the relay's
robots and, with routing.deadman, the dead man's switch: the servers the alert-path rules
(rules._prometheus_alerts and the ones after it) watch, drawn from the same series.
"""

from __future__ import annotations

from obsctl.metric_names import AlertmanagerMetric, DeadmanMetric, PrometheusMetric, RelayMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards.panels import GREEN, RATE, RED, Board, Line, Mapping, Target
from obsctl.mixin.promql import series

TITLE = "Alert path"
# The panels of the dead man's switch alone (with routing.deadman).
HEARTBEAT_AGE = "Dead man's switch: heartbeat age"
HEARTBEAT = "Dead man's switch: heartbeat"
UNSENT = "Dead man's switch: notices unsent"
DEADMAN_PANELS = (HEARTBEAT_AGE, HEARTBEAT, UNSENT)
UP_MAPPINGS = (Mapping(1, "UP", GREEN), Mapping(0, "DOWN", RED))
TARGET = "{{target}}"


def add_row(board: Board, config: MixinConfig) -> None:
    """Append the alert path's row to `board`."""
    s = config.selectors
    prom, am, relay = s.prometheus, s.alertmanager, s.relay
    servers = [prom, am, relay, *([s.deadman] if config.routing.deadman else [])]

    board.row(TITLE)
    board.stat(
        "Alert path up",
        "Whether Prometheus scrapes each server of the alert path: itself, Alertmanager, the "
        "DingTalk relay (RelayDown) and the dead man's switch (DeadmanDown). A server without "
        "a target shows nothing.",
        "none",
        [Target(f"min by (job) ({series('up', server)})", "{{job}}") for server in servers],
        mappings=UP_MAPPINGS,
        width=8,
    )
    board.stat(
        "Alertmanagers discovered",
        "Alertmanagers each Prometheus sends alerts to (PrometheusNotConnectedToAlertmanagers "
        "at none).",
        "short",
        [Target(series(PrometheusMetric.ALERTMANAGERS_DISCOVERED, prom), "{{instance}}")],
        mappings=(Mapping(0, "NONE", RED),),
        width=4,
    )
    failures = series(PrometheusMetric.RULE_EVALUATION_FAILURES, prom)
    board.timeseries(
        "Rule evaluation failures",
        "Failed rule evaluations per second, per rule group (PrometheusRuleFailures): the "
        "group's alerts may not fire.",
        "ops",
        [Target(f"sum by (rule_group) (rate({failures}[{RATE}]))", "{{rule_group}}")],
        min_value=0,
    )

    def prometheus_rate(metric: str) -> str:
        return f"sum by (alertmanager) (rate({series(metric, prom)}[{RATE}]))"

    board.timeseries(
        "Prometheus → Alertmanager",
        "Alerts Prometheus sent to each Alertmanager per second, those that failed "
        "(PrometheusErrorSendingAlertsToAnyAlertmanager) and those dropped (queue full, or no "
        "Alertmanager).",
        "ops",
        [
            Target(prometheus_rate(PrometheusMetric.NOTIFICATIONS_SENT), "sent {{alertmanager}}"),
            Target(
                prometheus_rate(PrometheusMetric.NOTIFICATIONS_ERRORS), "failed {{alertmanager}}"
            ),
            Target(
                f"sum (rate({series(PrometheusMetric.NOTIFICATIONS_DROPPED, prom)}[{RATE}]))",
                "dropped",
            ),
        ],
        min_value=0,
    )
    # Only the integrations this Alertmanager has used (it counts ten, zero-filled).
    used = (
        "and on (integration) "
        f"(sum by (integration) ({series(AlertmanagerMetric.NOTIFICATIONS, am)}) > 0)"
    )
    board.timeseries(
        "Alertmanager notifications",
        "Notifications per second by integration (webhook: the relay and the dead man's "
        "switch; email), and those that failed (AlertmanagerFailedToSendAlerts).",
        "ops",
        [
            Target(f"{signals.notifications(am, RATE, 'integration')} {used}", "{{integration}}"),
            Target(
                f"{signals.notifications_failed(am, RATE, 'integration')} {used}",
                "failed {{integration}}",
            ),
        ],
        min_value=0,
    )

    board.timeseries(
        "Relay queue depth",
        "Alerts waiting for (or in) a DingTalk send, per robot.",
        "short",
        [Target(f"sum by (target) ({series(RelayMetric.QUEUE_DEPTH, relay)})", TARGET)],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Relay oldest queued alert",
        "How long the oldest queued alert of each robot has waited; the dashed line is "
        "RelayBacklogStale's threshold, above DingTalk's 10-minute throttle.",
        "s",
        [Target(f"max by (target) ({series(RelayMetric.OLDEST_QUEUED, relay)})", TARGET)],
        line=Line(config.thresholds.relay_oldest_queued_seconds),
        width=8,
        min_value=0,
    )
    board.table(
        "Relay robot state",
        "Each robot's state now: ok, pacing (waiting for its send budget), throttled (by "
        "DingTalk, for 10 minutes) or failing (retrying errors).",
        "none",
        [Target(f"max by (target, state) ({series(RelayMetric.TARGET_STATE, relay)}) == 1")],
        hide=("Time", "__name__", "job", "instance", "service", "Value"),
        width=8,
    )
    board.timeseries(
        "Relay sends",
        "Messages DingTalk accepted, failed sends (RelayDeliveriesFailing; retried until "
        "delivered) and rate-limit answers (waited out) per second, per robot.",
        "ops",
        [
            Target(signals.relay_delivered(relay, RATE, "target"), "delivered {{target}}"),
            Target(signals.relay_failed_sends(relay, RATE, "target"), "failed {{target}}"),
            Target(
                f"sum by (target) (rate({series(RelayMetric.RATE_LIMITED, relay)}[{RATE}]))",
                "rate-limited {{target}}",
            ),
        ],
        min_value=0,
    )
    board.timeseries(
        "Relay failures and drops",
        "Failed sends per second by reason (timeout, connection, http_status, errcode, "
        "bad_answer, rate_limited), and alerts the relay gave up on (RelayDeliveriesFailing).",
        "ops",
        [
            Target(
                f"sum by (reason) (rate({series(RelayMetric.FAILED, relay)}[{RATE}]))", "{{reason}}"
            ),
            Target(
                f"sum by (target) (rate({series(RelayMetric.DROPPED, relay)}[{RATE}]))",
                "dropped {{target}}",
            ),
        ],
        min_value=0,
    )
    if config.routing.deadman is None:
        return
    board.timeseries(
        HEARTBEAT_AGE,
        "Seconds since the dead man's switch last received the Watchdog from Alertmanager; it "
        "pages on-call by itself when the Watchdog stops.",
        "s",
        [
            Target(
                f"max by (heartbeat) ({series(DeadmanMetric.HEARTBEAT_AGE, s.deadman)})",
                "{{heartbeat}}",
            )
        ],
        width=16,
        min_value=0,
    )
    board.stat(
        HEARTBEAT,
        "Missing while the dead man's switch has paged on-call that the Watchdog stopped.",
        "none",
        [
            Target(
                f"max by (heartbeat) ({series(DeadmanMetric.HEARTBEAT_MISSING, s.deadman)})",
                "{{heartbeat}}",
            )
        ],
        count_ok=("received", "missing"),
        width=8,
    )
    board.timeseries(
        UNSENT,
        "Notices (WatchdogMissing, its recovery, reminders) each channel has yet to take; "
        "above 0 for long is DeadmanNoticesUnsent.",
        "none",
        [
            Target(
                f"max by (channel) ({series(DeadmanMetric.NOTICES_UNSENT, s.deadman)})",
                "{{channel}}",
            )
        ],
        width=24,
        min_value=0,
    )
