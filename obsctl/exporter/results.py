"""The latest outcome of every probe, plus run counters: written by probes, read by scrapes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from obsctl.exporter.probes.base import ProbeOutcome

Key = tuple[str, str]  # (probe kind, target)


@dataclass(frozen=True)
class ProbeRecord:
    """What the exporter knows about one probe target."""

    kind: str
    target: str
    interval_seconds: float
    latest: ProbeOutcome | None = None
    last_success: float | None = None
    runs: int = 0
    failures: int = 0


class ResultStore:
    """An immutable snapshot swapped whole on every update, so a reader never sees half a write."""

    def __init__(self) -> None:
        self._snapshot: MappingProxyType[Key, ProbeRecord] = MappingProxyType({})

    def register(self, kind: str, target: str, interval_seconds: float) -> None:
        """Declare a probe target before its first run, so it shows up as 'not yet checked'."""
        records = dict(self._snapshot)
        records[(kind, target)] = ProbeRecord(kind, target, interval_seconds)
        self._snapshot = MappingProxyType(records)

    def record(self, outcome: ProbeOutcome) -> None:
        """Keep outcome as the latest for its target and count it."""
        key = (outcome.probe, outcome.target)
        records = dict(self._snapshot)
        previous = records.get(key) or ProbeRecord(outcome.probe, outcome.target, 0.0)
        records[key] = replace(
            previous,
            latest=outcome,
            last_success=outcome.checked_at if outcome.success else previous.last_success,
            runs=previous.runs + 1,
            failures=previous.failures + (0 if outcome.success else 1),
        )
        self._snapshot = MappingProxyType(records)

    def reset(self, kind: str, target: str) -> None:
        """Forget a target's outcomes (a follower's singleton probe): back to 'not yet checked'."""
        records = dict(self._snapshot)
        previous = records.get((kind, target))
        if previous is None or previous.latest is None:
            return
        records[(kind, target)] = ProbeRecord(kind, target, previous.interval_seconds)
        self._snapshot = MappingProxyType(records)

    def snapshot(self) -> MappingProxyType[Key, ProbeRecord]:
        """The current records; never changes after it is returned."""
        return self._snapshot
