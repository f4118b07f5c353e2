"""What the business reader has counted: tasks by id (for the overlap's re-reads) and quotas."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from obsctl.exporter.probes.business_sql import FAILED, SUCCEEDED
from obsctl.exporter.probes.mysql import OTHER

TERMINAL_STATUSES = (SUCCEEDED, FAILED)
_DEFAULT_TERMINAL = {status: status for status in TERMINAL_STATUSES}


class TaskRow(NamedTuple):
    """One row of the change feed, in the column order of the batch query."""

    id: int
    feature: str
    provider: str
    status: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(slots=True)
class _Tracked:
    updated_at: datetime
    terminal: tuple[str, datetime] | None


@dataclass
class LatencyHistogram:
    """created_at -> finished_at of tasks reaching a terminal state, for one feature."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        """Add one task's latency."""
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (le, count of observations <= le), ending with +Inf."""
        counts = self.counts or [0] * (len(self.bounds) + 1)
        running, out = 0, []
        for bound, count in zip([*self.bounds, math.inf], counts, strict=True):
            running += count
            out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(running)))
        return out


class TaskLedger:
    """Counts each task's creation and terminal transition once, from rows read in key order."""

    def __init__(
        self,
        counts_from: datetime,
        features: Iterable[str],
        providers: Iterable[str],
        buckets: Sequence[float],
        terminal: Mapping[str, str] | None = None,
    ) -> None:
        self.counts_from = counts_from
        # Platform status value -> SUCCEEDED or FAILED; any other value is not terminal.
        self._terminal_of = dict(terminal) if terminal is not None else _DEFAULT_TERMINAL
        self.horizon = counts_from
        self._features = list(features)
        self._providers = list(providers)
        self._feature_set = frozenset(self._features)
        self._provider_set = frozenset(self._providers)
        self._buckets = buckets
        self._tracked: dict[int, _Tracked] = {}
        pairs = [(f, p) for f in self._features for p in self._providers]
        self.created = dict.fromkeys(pairs, 0)
        self.finished = {status: dict.fromkeys(pairs, 0) for status in TERMINAL_STATUSES}
        self.latency = {f: LatencyHistogram(buckets) for f in self._features}

    @property
    def tracked(self) -> int:
        """Task ids remembered for dedupe (those changed since the horizon)."""
        return len(self._tracked)

    def dump(self) -> dict[str, Any]:
        """The ledger as JSON-able data (datetimes as ISO text), for a leader's checkpoint."""
        return {
            "counts_from": self.counts_from.isoformat(),
            "horizon": self.horizon.isoformat(),
            "providers": self._providers,
            "tracked": {
                str(task): [t.updated_at.isoformat(), *(_terminal_text(t.terminal))]
                for task, t in self._tracked.items()
            },
            "created": [[f, p, n] for (f, p), n in self.created.items()],
            "finished": {
                status: [[f, p, n] for (f, p), n in counts.items()]
                for status, counts in self.finished.items()
            },
            "latency": {f: [h.counts, h.total] for f, h in self.latency.items()},
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from a dump: counts, the horizon and the ids remembered for dedupe."""
        self.horizon = datetime.fromisoformat(data["horizon"])
        self._tracked = {
            int(task): _Tracked(
                datetime.fromisoformat(updated),
                (status, datetime.fromisoformat(finished)) if status else None,
            )
            for task, (updated, status, finished) in data["tracked"].items()
        }
        for feature, provider, count in data["created"]:
            self.created[(feature, provider)] = int(count)
        for status, rows in data["finished"].items():
            for feature, provider, count in rows:
                self.finished[status][(feature, provider)] = int(count)
        for feature, (counts, total) in data["latency"].items():
            histogram = self.latency.setdefault(feature, LatencyHistogram(self._buckets))
            if len(counts) == len(self._buckets) + 1:  # buckets unchanged since the dump
                histogram.counts, histogram.total = [int(c) for c in counts], float(total)

    def set_horizon(self, horizon: datetime) -> None:
        """Start a new read range at horizon; forget ids last changed before it."""
        self.horizon = horizon
        self._tracked = {k: v for k, v in self._tracked.items() if v.updated_at >= horizon}

    def apply(self, row: TaskRow) -> None:
        """Account for one row version (rows re-read through the overlap count nothing twice)."""
        known = self._tracked.get(row.id)
        if known is None and row.created_at >= max(self.horizon, self.counts_from):
            self._count_created(row)
        terminal = self._terminal(row)
        if terminal is not None and self._terminal_is_new(known, terminal):
            self._count_finished(row, terminal)
        updated_at = row.updated_at if known is None else max(known.updated_at, row.updated_at)
        self._tracked[row.id] = _Tracked(updated_at, terminal)

    def labels(self, row: TaskRow) -> tuple[str, str]:
        """(feature, provider) label values, unknown ones as "other"."""
        feature = row.feature if row.feature in self._feature_set else OTHER
        provider = row.provider if row.provider in self._provider_set else OTHER
        return feature, provider

    def _terminal(self, row: TaskRow) -> tuple[str, datetime] | None:
        status = self._terminal_of.get(row.status)
        if status is None:
            return None
        # The platform always sets finished_at with a terminal status; updated_at is a fallback.
        return status, row.finished_at or row.updated_at

    def _terminal_is_new(self, known: _Tracked | None, terminal: tuple[str, datetime]) -> bool:
        if terminal[1] < self.counts_from:
            return False
        if known is None:
            # Forgotten ids were last changed before the horizon, so an earlier finish is old.
            return terminal[1] >= self.horizon
        return known.terminal != terminal

    def _count_created(self, row: TaskRow) -> None:
        key = self.labels(row)
        self.created[key] = self.created.get(key, 0) + 1

    def _count_finished(self, row: TaskRow, terminal: tuple[str, datetime]) -> None:
        key = self.labels(row)
        counts = self.finished[terminal[0]]
        counts[key] = counts.get(key, 0) + 1
        histogram = self.latency.setdefault(key[0], LatencyHistogram(self._buckets))
        histogram.observe(max(0.0, (terminal[1] - row.created_at).total_seconds()))


def _terminal_text(terminal: tuple[str, datetime] | None) -> tuple[str | None, str | None]:
    return (terminal[0], terminal[1].isoformat()) if terminal else (None, None)


@dataclass
class QuotaTotals:
    """Sums over the rows of `quotas` read by one pass."""

    users: int = 0
    remaining: int = 0
    used: int = 0
    exhausted: int = 0
    cursor: int = 0


@dataclass
class QuotaLedger:
    """The latest complete quota pass and the consumption counted since the first one."""

    latest: QuotaTotals | None = None
    consumed: int = 0

    def complete(self, totals: QuotaTotals) -> None:
        """Fold in a finished pass; growth of SUM(used) is consumption, a drop is re-based."""
        if self.latest is not None:
            self.consumed += max(0, totals.used - self.latest.used)
        self.latest = totals
