"""docs/PLAN-COVERAGE.md stays true: every alert it names exists, and its counts add up."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from obsctl.mixin.config import AlertName

TABLE = Path(__file__).resolve().parents[1] / "docs" / "PLAN-COVERAGE.md"
ROW = re.compile(r"^\| (\d+) \|")
CAMEL = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+\b")
# Alerts of other programs the table may name: the dead man's switch pages this one itself.
OTHER_ALERTS = {"WatchdogMissing"}


def _rows() -> list[str]:
    return [line for line in TABLE.read_text(encoding="utf-8").splitlines() if ROW.match(line)]


def test_every_alert_the_table_names_exists() -> None:
    # An alert name ends the way one of ours does (...Down, ...High, ...Low, ...Stalled).
    endings = {re.findall(r"[A-Z][a-z0-9]*", name.value)[-1] for name in AlertName}
    known = {name.value for name in AlertName} | OTHER_ALERTS
    named = {
        token
        for line in _rows()
        for token in CAMEL.findall(line)
        if re.findall(r"[A-Z][a-z0-9]*", token)[-1] in endings
    }
    assert named, "the table names no alert at all: the pattern is broken"
    assert named <= known, f"named but not generated: {sorted(named - known)}"


def test_the_rows_are_numbered_and_the_counts_add_up() -> None:
    rows = _rows()
    assert [int(ROW.match(line).group(1)) for line in rows] == list(range(1, len(rows) + 1))  # type: ignore[union-attr]
    status = Counter(line.rstrip(" |").rsplit("|", 1)[1].strip() for line in rows)
    assert set(status) <= {"C", "P", "M"}, status
    counts = f"**{status['C']} covered · {status['P']} partial · {status['M']} missing.**"
    assert f"**Counts:** {len(rows)} requirements. {counts}" in TABLE.read_text(encoding="utf-8")
