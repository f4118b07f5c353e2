"""Alert history from Prometheus: every firing episode, MTTA/MTTR and the noise candidates.

Prometheus writes `ALERTS{alertstate="firing"}` at every rule evaluation while an alert fires.
This reads those raw samples (a range selector, so no lookback stretches an episode), splits
them into episodes where the samples stop, and per alert counts the episodes, their time
firing, the time to the first silence that covers it (a claim is a silence), the time to
resolve, and the episodes that ended by themselves within a few minutes without a claim (the
noise candidates). Drill journals keep the drills' own episodes apart from real incidents.
The relay's delivery log, when given, adds when each episode first reached a DingTalk robot
(the time to notify) and which episodes never did.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from obsctl.drills.journal import Journal
from obsctl.drills.scenarios import SCENARIOS
from obsctl.silences import Matcher, all_match

# An episode that ends by itself within this long of firing, unclaimed, is a noise candidate.
NOISE_SECONDS = 300.0
# A gap of more than this many evaluation intervals between samples ends an episode.
GAP_INTERVALS = 2.5
# Prometheus' default evaluation interval, when no series has two samples to measure it by.
DEFAULT_INTERVAL = 60.0
# How long after a drill's restore its alerts may take to resolve and still be the drill's.
DRILL_TAIL_SECONDS = 600.0
# A delivery this long after an episode's last sample may still be its (group_wait, retries).
DELIVERY_TAIL_SECONDS = 300.0
_IGNORED_LABELS = frozenset({"__name__", "alertstate"})


class HistoryError(RuntimeError):
    """Prometheus could not answer; the message says why."""


@dataclass
class Episode:
    """One stretch of firing of one alert."""

    alertname: str
    labels: dict[str, str]
    start: float
    end: float  # the last sample plus one evaluation interval
    interval: float  # the rule evaluation interval the samples came at
    claimed_at: float | None = None
    notified_at: float | None = None  # when a robot first accepted it (with a delivery log)
    drill: str | None = None  # the drill id, when a drill's own fault caused it
    ongoing: bool = False  # still firing at the end of the window

    @property
    def seconds(self) -> float:
        """How long it fired."""
        return self.end - self.start

    def noise(self) -> bool:
        """Ended by itself, unclaimed, within NOISE_SECONDS of firing (never a drill's)."""
        return (self.drill is None and self.claimed_at is None and not self.ongoing
                and self.seconds <= NOISE_SECONDS)  # fmt: skip


@dataclass
class AlertSummary:
    """Every real (non-drill) episode of one alert name."""

    alertname: str
    episodes: list[Episode] = field(default_factory=list)
    with_deliveries: bool = False

    def row(self) -> dict[str, Any]:
        """The summary's figures, seconds as numbers (None when there is nothing to measure)."""
        durations = [e.seconds for e in self.episodes]
        claims = [e.claimed_at - e.start for e in self.episodes if e.claimed_at is not None]
        resolved = [e.seconds for e in self.episodes if not e.ongoing]
        notified = [e.notified_at - e.start for e in self.episodes if e.notified_at is not None]
        delivery = {"notified": len(notified), "mttn_seconds": _mean(notified)}
        return {
            "alertname": self.alertname,
            "fired": len(self.episodes),
            "firing_seconds": round(sum(durations), 1),
            "median_firing_seconds": _median(durations),
            "claimed": len(claims),
            "mtta_seconds": _mean(claims),
            "mttr_seconds": _mean(resolved),
            "still_firing": sum(1 for e in self.episodes if e.ongoing),
            "noise_candidates": sum(1 for e in self.episodes if e.noise()),
            **(delivery if self.with_deliveries else {}),
        }


@dataclass
class History:
    """The report: real alerts by name, the drills' episodes apart."""

    since: float
    until: float
    alerts: list[AlertSummary]
    drills: list[Episode]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        rows = [a.row() for a in self.alerts]
        fired = sum(r["fired"] for r in rows)
        noise = sum(r["noise_candidates"] for r in rows)
        return {
            "since": _utc(self.since),
            "until": _utc(self.until),
            "alerts": rows,
            "fired": fired,
            "noise_candidates": noise,
            "noise_ratio": round(noise / fired, 4) if fired else None,
            "drills": [_drill_row(e) for e in self.drills],
        }

    def render(self) -> str:
        """The report as a text table."""
        data = self.as_dict()
        notified = any("notified" in row for row in data["alerts"])
        lines = [
            f"alerts from {data['since']} to {data['until']} (UTC)",
            "",
            f"{'ALERT':<44} {'FIRED':>5} {'FIRING':>9} {'MEDIAN':>8} {'CLAIMED':>7} "
            f"{'MTTA':>7} {'MTTR':>8} {'NOISE':>5}"
            + (f" {'NOTIFIED':>8} {'TTN':>7}" if notified else ""),
        ]
        for row in sorted(data["alerts"], key=lambda r: (-r["fired"], r["alertname"])):
            lines.append(
                f"{row['alertname']:<44} {row['fired']:>5} {span(row['firing_seconds']):>9} "
                f"{span(row['median_firing_seconds']):>8} {row['claimed']:>7} "
                f"{span(row['mtta_seconds']):>7} {span(row['mttr_seconds']):>8} "
                f"{row['noise_candidates']:>5}"
                + (f" {row['notified']:>8} {span(row['mttn_seconds']):>7}" if notified else "")
            )
        ratio = data["noise_ratio"]
        lines += [
            "",
            f"{data['fired']} real episodes, {data['noise_candidates']} noise candidates"
            + (f" ({ratio:.1%})" if ratio is not None else ""),
            f"{len(data['drills'])} drill episodes kept apart",
        ]
        return "\n".join(lines)


def read_history(
    prometheus_url: str,
    since: float,
    until: float,
    silences: Iterable[dict[str, Any]] = (),
    journals: Iterable[Journal] = (),
    ignore: frozenset[str] = frozenset({"Watchdog"}),
    deliveries: list[dict[str, Any]] | None = None,
) -> History:
    """Every firing episode between since and until, with claims, drills and (given the
    relay's ``/api/v1/deliveries``) notifications attached."""
    episodes = [e for e in _episodes(prometheus_url, since, until) if e.alertname not in ignore]
    claims = [s for s in silences if s.get("createdBy")]
    for episode in episodes:
        # The last sample came within an episode's gap of the window's end: still firing.
        episode.ongoing = until - episode.end < (GAP_INTERVALS - 1) * episode.interval
    drill_runs = list(journals)
    for episode in episodes:
        episode.claimed_at = _claimed(episode, claims)
        episode.drill = _drill_of(episode, drill_runs)
        if deliveries is not None:
            episode.notified_at = _notified(episode, deliveries)
    by_name: dict[str, AlertSummary] = {}
    drills = []
    for episode in sorted(episodes, key=lambda e: e.start):
        if episode.drill is not None:
            drills.append(episode)
        else:
            by_name.setdefault(
                episode.alertname, AlertSummary(episode.alertname, [], deliveries is not None)
            )
            by_name[episode.alertname].episodes.append(episode)
    return History(since, until, list(by_name.values()), drills)


def read_deliveries(relay_url: str, token: str | None, since: float) -> list[dict[str, Any]]:
    """What the relay's robots accepted since `since` (``GET /api/v1/deliveries``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{relay_url.rstrip('/')}/api/v1/deliveries",
                             params={"since": since}, headers=headers, timeout=60)  # fmt: skip
    except httpx.HTTPError as exc:
        raise HistoryError(f"the relay at {relay_url} cannot be read: {exc}") from None
    if response.status_code != 200:
        raise HistoryError(f"the relay at {relay_url} answered {response.status_code}: "
                           f"{response.text[:200]}")  # fmt: skip
    try:
        return list(response.json()["deliveries"])
    except (ValueError, KeyError, TypeError):
        raise HistoryError(f"the relay at {relay_url} sent no deliveries list") from None


def load_journals(directory: Path) -> list[Journal]:
    """The drill journals in a directory (the local stack keeps them in <dir>/drills)."""
    return [Journal.load(p) for p in sorted(directory.glob("*.json"))]


def _episodes(url: str, since: float, until: float) -> list[Episode]:
    seconds = max(1, round(until - since))
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/v1/query",
            params={"query": f'ALERTS{{alertstate="firing"}}[{seconds}s]', "time": until},
            timeout=30,
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HistoryError(f"Prometheus at {url} cannot be read: {exc}") from None
    if body.get("status") != "success":
        raise HistoryError(f"Prometheus at {url} refused the query: {body.get('error')}")
    series = [
        ({k: v for k, v in s["metric"].items() if k not in _IGNORED_LABELS},
         [float(t) for t, _ in s["values"]])
        for s in body["data"]["result"]
    ]  # fmt: skip
    # The rule evaluation interval: the closest two samples of any series.
    gaps = [b - a for _, times in series for a, b in pairwise(times)]
    interval = min(gaps, default=DEFAULT_INTERVAL)
    return [e for labels, times in series for e in _split(labels, times, interval)]


def _split(labels: dict[str, str], times: list[float], interval: float) -> list[Episode]:
    """Runs of samples one evaluation interval apart, each an episode."""
    if not times:
        return []
    name = labels.get("alertname", "")
    episodes, start = [], times[0]
    for previous, current in pairwise(times):
        if current - previous > GAP_INTERVALS * interval:
            episodes.append(Episode(name, labels, start, previous + interval, interval))
            start = current
    episodes.append(Episode(name, labels, start, times[-1] + interval, interval))
    return episodes


def _claimed(episode: Episode, claims: list[dict[str, Any]]) -> float | None:
    """When the first silence covering the alert began during the episode (a claim)."""
    moments = []
    for silence in claims:
        began = _unix(silence["startsAt"])
        matchers = [Matcher.from_api(m) for m in silence["matchers"]]
        if episode.start <= began <= episode.end and all_match(matchers, episode.labels):
            moments.append(began)
    return min(moments, default=None)


def _notified(episode: Episode, deliveries: list[dict[str, Any]]) -> float | None:
    """When a robot first accepted a message carrying the episode's alert as firing."""
    earliest = episode.start - 2 * episode.interval
    latest = episode.end + DELIVERY_TAIL_SECONDS
    moments = [
        float(delivery["sent_at"])
        for delivery in deliveries
        if earliest <= float(delivery["sent_at"]) <= latest
        and any(
            carried.get("status") == "firing"
            and all(carried.get("labels", {}).get(k) == v for k, v in episode.labels.items())
            for carried in delivery.get("episodes", ())
        )
    ]
    return min(moments, default=None)


def _drill_of(episode: Episode, journals: list[Journal]) -> str | None:
    """The drill whose fault the episode followed, if its scenario expects this alert."""
    for journal in journals:
        scenario = SCENARIOS.get(journal.scenario)
        fault, restore = journal.moments.get("fault"), journal.moments.get("restore")
        if scenario is None or fault is None:
            continue
        ended = (restore or journal.ended_at or fault) + DRILL_TAIL_SECONDS
        expected = any(
            alert.value == episode.alertname
            and all(episode.labels.get(k) == v for k, v in labels.items())
            for alert, labels in scenario.expect
        )
        if expected and fault <= episode.start <= ended:
            return journal.drill_id
    return None


def _drill_row(episode: Episode) -> dict[str, Any]:
    return {
        "drill": episode.drill,
        "alertname": episode.alertname,
        "start": _utc(episode.start),
        "firing_seconds": round(episode.seconds, 1),
    }


def _unix(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def span(seconds: float | None) -> str:
    """Seconds as people read them: 45s, 3m05s, 2h10m; - for nothing."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
