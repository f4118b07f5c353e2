"""What a check found: one line per check, each violation with what was expected and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How one check came out; only `fail` fails the command."""

    OK = "ok"
    FAIL = "fail"
    WARN = "warn"  # held where it could be seen, but something could not be verified
    SKIP = "skip"


@dataclass(frozen=True)
class Violation:
    """One way the platform breaks the contract."""

    kind: str  # stable identifier: missing_metric, missing_bucket, counter_went_down, ...
    subject: str  # the metric (or metric and label) it is about
    what: str
    expected: str
    found: str
    fix: str


@dataclass(frozen=True)
class Check:
    """One check: what it holds the platform to, and what broke it."""

    name: str
    summary: str
    violations: tuple[Violation, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: str = ""

    @property
    def status(self) -> Status:
        """fail with any violation, skip, warn, else ok."""
        if self.violations:
            return Status.FAIL
        if self.skipped:
            return Status.SKIP
        return Status.WARN if self.warnings else Status.OK


@dataclass(frozen=True)
class Report:
    """Every check of one run against one endpoint."""

    command: str  # "check app"
    target: str  # what was checked, e.g. the URL without credentials
    context: str  # where the thresholds came from, how many scrapes
    checks: Sequence[Check] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return all(c.status is not Status.FAIL for c in self.checks)

    def violations(self) -> list[Violation]:
        """Every violation of every check."""
        return [v for c in self.checks for v in c.violations]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "command": self.command,
            "target": self.target,
            "context": self.context,
            "ok": self.ok,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.value,
                    "summary": c.summary,
                    "violations": [asdict(v) for v in c.violations],
                    "warnings": list(c.warnings),
                    "skipped": c.skipped or None,
                }
                for c in self.checks
            ],
        }

    def lines(self) -> list[str]:
        """The report for people: one line per check, each violation indented under it."""
        tags = {Status.OK: "ok", Status.FAIL: "FAIL", Status.WARN: "warn", Status.SKIP: "skip"}
        out = [f"{self.command} {self.target}", f"  {self.context}"]
        for check in self.checks:
            out.append(f"{tags[check.status]:<5} {check.name}: {check.summary}")
            out += [f"      {check.skipped}"] if check.skipped else []
            out += [f"      {warning}" for warning in check.warnings]
            for v in check.violations:
                out.append(f"      {v.what}")
                for label, text in (("expected", v.expected), ("found", v.found), ("fix", v.fix)):
                    out.append(f"        {label:<9} {text}")
        failed = sum(c.status is Status.FAIL for c in self.checks)
        if failed:
            out.append(f"contract broken: {failed} of {len(self.checks)} checks failed")
        else:
            out.append(f"contract holds: {len(self.checks)} checks, none failed")
        return out
