"""Drill journals: timings, the text report, the timeline picture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from obsctl.drills.journal import Journal, Outcome, Step
from obsctl.drills.report import summary, timeline_png


def _journal() -> Journal:
    t0 = 1_800_000_000.0
    journal = Journal(scenario="mysql-down", drill_id="mysql-down-x", stack_dir="/s", started_at=t0)
    journal.steps = [
        Step(name="check the steady state", started_at=t0, ended_at=t0 + 1, outcome=Outcome.OK),
        Step(name="inject: stop MySQL", started_at=t0 + 1, ended_at=t0 + 1.2, outcome=Outcome.OK),
        Step(
            name="DependencyDown message on email",
            started_at=t0 + 2,
            ended_at=t0 + 50,
            outcome=Outcome.FAILED,
            error="no message about DependencyDown on email",
        ),
    ]
    journal.moments = {"fault": t0 + 1.2, "firing": t0 + 31.2, "dingtalk": t0 + 38.0}
    journal.status, journal.deviated, journal.ended_at = "failed", True, t0 + 90
    return journal


def test_timings_are_the_intervals_between_moments() -> None:
    timings = _journal().timings()
    assert timings == {
        "fault_to_firing": 30.0,
        "firing_to_dingtalk": 6.8,
        "fault_to_dingtalk": 36.8,
    }


def test_summary_shows_verdict_timings_and_failed_steps() -> None:
    text = summary(_journal())
    assert text.startswith("drill mysql-down: FAILED")
    assert "fault to dingtalk" in text and "36.8s" in text
    assert "FAIL" in text and "no message about DependencyDown on email" in text


def test_report_command_prints_and_draws(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    _journal().save(path)
    png = tmp_path / "timeline.png"
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "drill", "report", str(path), "--png", str(png)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "drill mysql-down: FAILED" in result.stdout
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    assert timeline_png(_journal(), tmp_path / "again.png").exists()


def test_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "drill", "run", "kafka-down", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "unknown scenario 'kafka-down'" in result.stderr and "mysql-down" in result.stderr
