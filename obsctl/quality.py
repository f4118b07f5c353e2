"""Alert quality of a window of healthy operation: which alerts went off, and what reached people.

A healthy platform is quiet: apart from the Watchdog (the always-firing heartbeat of the alert
path) no alert should fire and nothing should reach the on-call robots or mailboxes. This reads
a window's alert history from Prometheus (``ALERTS`` over ``query_range``) and the messages the
local stack's DingTalk fake and SMTP sink received, and counts the false alarms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from obsctl.drills.local import StackTarget
from obsctl.drills.target import Message

HEARTBEAT_ALERT = "Watchdog"
# The Watchdog's own robot (obsctl.yaml `heartbeat:`): its messages are the heartbeat, not pages.
HEARTBEAT_CHANNEL = "dingtalk:heartbeat"
# Prometheus answers at most 11,000 points per series: 5 s steps cover a bit over 15 hours.
MAX_POINTS = 11_000


@dataclass
class AlertEpisodes:
    """One alert (name and labels) over the window: when it was pending and firing."""

    alertname: str
    labels: dict[str, str]
    pending_times: list[float] = field(default_factory=list)
    firing_times: list[float] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        """Whether it ever fired (a page), not only went pending."""
        return bool(self.firing_times)

    def firing_episodes(self, step: float) -> int:
        """How many separate times it started firing (a gap longer than a step splits them)."""
        return _runs(self.firing_times, step)

    def pending_episodes(self, step: float) -> int:
        """How many separate times it went pending."""
        return _runs(self.pending_times, step)

    def describe(self, step: float) -> str:
        """One line: name, labels, episode counts and first times (UTC)."""
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        parts = [f"{self.alertname}{{{labels}}}"]
        if self.firing_times:
            parts.append(
                f"fired {self.firing_episodes(step)}x, first at {_utc(self.firing_times[0])}"
            )
        if self.pending_times:
            parts.append(
                f"pending {self.pending_episodes(step)}x, first at {_utc(self.pending_times[0])}"
            )
        return "; ".join(parts)


@dataclass
class QualityReport:
    """A window's alerts other than the Watchdog, and the pages that reached people."""

    start: float
    end: float
    step: float
    alerts: list[AlertEpisodes]
    pages: list[Message]
    heartbeats: int

    @property
    def fired(self) -> list[AlertEpisodes]:
        """The alerts that fired."""
        return [a for a in self.alerts if a.fired]

    @property
    def pending_only(self) -> list[AlertEpisodes]:
        """The alerts that went pending and never fired (no page, but worth knowing)."""
        return [a for a in self.alerts if not a.fired]

    @property
    def false_alarms(self) -> int:
        """Firing episodes of any alert but the Watchdog: each one a page nobody needed."""
        return sum(a.firing_episodes(self.step) for a in self.fired)

    @property
    def minutes(self) -> float:
        """Length of the window."""
        return (self.end - self.start) / 60

    @property
    def false_alarms_per_hour(self) -> float:
        """False alarms scaled to an hour of operation."""
        return self.false_alarms * 60 / self.minutes if self.minutes else 0.0

    @property
    def quiet(self) -> bool:
        """Nothing fired and nothing but the heartbeat was delivered."""
        return not self.fired and not self.pages

    def render(self) -> str:
        """The report as plain text lines."""
        lines = [
            f"window {_utc(self.start)} .. {_utc(self.end)} ({self.minutes:.1f} min)",
            f"false alarms: {self.false_alarms} ({self.false_alarms_per_hour:.2f} per hour)",
            f"pages delivered (DingTalk/email, heartbeat excluded): {len(self.pages)}",
            f"Watchdog heartbeats delivered: {self.heartbeats}",
        ]
        lines += [f"  FIRED   {a.describe(self.step)}" for a in self.fired]
        lines += [f"  pending {a.describe(self.step)}" for a in self.pending_only]
        lines += [f"  PAGE    {_utc(m.received_at)} {m.channel}: {m.title}" for m in self.pages]
        return "\n".join(lines)


def alert_history(
    prometheus_url: str, start: float, end: float, step: float
) -> list[AlertEpisodes]:
    """Every alert but the Watchdog that was pending or firing in [start, end], from ALERTS."""
    step = max(step, (end - start) / MAX_POINTS)
    response = httpx.get(
        f"{prometheus_url}/api/v1/query_range",
        params={
            "query": f'ALERTS{{alertname!="{HEARTBEAT_ALERT}"}}',
            "start": start,
            "end": end,
            "step": step,
        },
        timeout=30,
    )
    response.raise_for_status()
    episodes: dict[tuple[tuple[str, str], ...], AlertEpisodes] = {}
    for series in response.json()["data"]["result"]:
        metric: dict[str, str] = dict(series["metric"])
        metric.pop("__name__", None)
        state = metric.pop("alertstate", "firing")
        name = metric.pop("alertname", "")
        key = (("alertname", name), *sorted(metric.items()))
        entry = episodes.setdefault(key, AlertEpisodes(name, metric))
        times = [float(t) for t, _ in series["values"]]
        (entry.firing_times if state == "firing" else entry.pending_times).extend(times)
    for entry in episodes.values():
        entry.firing_times.sort()
        entry.pending_times.sort()
    return sorted(episodes.values(), key=lambda a: (a.alertname, sorted(a.labels.items())))


def pages(messages: Iterable[Message]) -> list[Message]:
    """The delivered messages that are not the Watchdog heartbeat."""
    return [m for m in messages if not is_heartbeat(m)]


def is_heartbeat(message: Message) -> bool:
    """Whether a message is the Watchdog's heartbeat (on its own robot)."""
    return message.channel == HEARTBEAT_CHANNEL


def stack_report(target: StackTarget, start: float, end: float, step: float = 5.0) -> QualityReport:
    """The quality report of a window of the local stack: Prometheus, DingTalk fake, SMTP sink."""
    delivered = [
        m for m in target.dingtalk_messages(start) + target.emails(start) if m.received_at <= end
    ]
    return QualityReport(
        start=start,
        end=end,
        step=step,
        alerts=alert_history(target.prometheus_url, start, end, step),
        pages=sorted(pages(delivered), key=lambda m: m.received_at),
        heartbeats=sum(1 for m in delivered if is_heartbeat(m)),
    )


def _runs(times: list[float], step: float) -> int:
    runs = 0
    previous: float | None = None
    for t in times:
        if previous is None or t - previous > step * 1.5:
            runs += 1
        previous = t
    return runs


def _utc(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S")


def as_json(report: QualityReport) -> dict[str, Any]:
    """The report as JSON-able data, for the bench's --json output."""
    return {
        "start": report.start,
        "end": report.end,
        "minutes": report.minutes,
        "false_alarms": report.false_alarms,
        "false_alarms_per_hour": report.false_alarms_per_hour,
        "pages": [
            {"received_at": m.received_at, "channel": m.channel, "title": m.title}
            for m in report.pages
        ],
        "heartbeats": report.heartbeats,
        "alerts": [
            {
                "alertname": a.alertname,
                "labels": a.labels,
                "firing_episodes": a.firing_episodes(report.step),
                "first_firing": a.firing_times[0] if a.firing_times else None,
                "pending_episodes": a.pending_episodes(report.step),
                "first_pending": a.pending_times[0] if a.pending_times else None,
            }
            for a in report.alerts
        ],
    }
