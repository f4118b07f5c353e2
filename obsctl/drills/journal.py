"""The drill journal: what happened, when, and whether every expectation held."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field


class Outcome(StrEnum):
    """How one step ended."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Step(BaseModel):
    """One step of a drill run."""

    name: str
    started_at: float
    ended_at: float | None = None
    outcome: Outcome | None = None
    output: str | None = None
    error: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """How long the step took, once it ended."""
        return None if self.ended_at is None else self.ended_at - self.started_at


class Journal(BaseModel):
    """A whole drill run, written as JSON (chaostoolkit's journal, typed)."""

    scenario: str
    variant: str | None = None
    drill_id: str
    target: str = ""  # "local stack DIR" or "target NAME (prometheus URL)"
    stack_dir: str = ""  # journals written before remote targets existed
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    status: str = "running"  # running | passed | failed | refused | locked | interrupted
    deviated: bool = False
    steady_state_before: dict[str, str] = Field(default_factory=dict)
    steady_state_after: dict[str, str] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    # Key moments as unix times: fault, pending, firing, alertmanager, dingtalk, email,
    # restore, resolved, dingtalk_resolved, email_resolved. A drill that stops the alert path
    # has last_heartbeat (the last Watchdog before the fault), firing (the dead man's switch
    # turned missing) and resolved (a Watchdog reached it again) instead of the alert's.
    moments: dict[str, float] = Field(default_factory=dict)

    def timings(self) -> dict[str, float]:
        """The key intervals in seconds, for the report and BENCHMARKS.md."""
        m = self.moments
        pairs = {
            "last_heartbeat_to_firing": ("last_heartbeat", "firing"),
            "fault_to_pending": ("fault", "pending"),
            "fault_to_firing": ("fault", "firing"),
            "firing_to_alertmanager": ("firing", "alertmanager"),
            "firing_to_dingtalk": ("firing", "dingtalk"),
            "fault_to_dingtalk": ("fault", "dingtalk"),
            "fault_to_email": ("fault", "email"),
            "restore_to_resolved": ("restore", "resolved"),
            "restore_to_dingtalk_resolved": ("restore", "dingtalk_resolved"),
            "restore_to_email_resolved": ("restore", "email_resolved"),
        }
        return {
            name: round(m[end] - m[start], 3)
            for name, (start, end) in pairs.items()
            if start in m and end in m
        }

    def save(self, path: Path) -> None:
        """Write the journal (atomically, so a crash never leaves half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal written by save()."""
        return cls.model_validate_json(path.read_text())
