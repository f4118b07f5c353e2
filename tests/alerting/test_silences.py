"""`obsctl silence` on the stack's real Alertmanager, and a drill refusing to run into a mute."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from obsctl.drills.journal import Journal
from obsctl.drills.runner import DrillRun
from obsctl.drills.scenarios import SCENARIOS, Expectation, Scenario
from obsctl.mixin.maintenance import MaintenanceWindow
from obsctl.silences import Matcher
from obsctl.stack.fakes.launcher import free_port

from conftest import RunningStack, demo_config, obsctl

pytestmark = pytest.mark.needs_tools("prometheus-alertmanager")


def _silence(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return obsctl("silence", *args, "--alertmanager-url", stack.env["ALERTMANAGER_URL"])


def _active(stack: RunningStack) -> list[dict[str, object]]:
    found = httpx.get(f"{stack.env['ALERTMANAGER_URL']}/api/v2/silences", timeout=5).json()
    return [s for s in found if s["status"]["state"] == "active"]


def test_add_list_expire_and_a_drill_refuses_what_a_silence_mutes(
    stack: RunningStack, tmp_path: Path
) -> None:
    added = _silence(stack, "add", "--for", "30m", "-m", "dependency=redis",
                     "-m", 'alertname=~"DependencyDown|QueueStalled"',
                     "--comment", "Redis failover test, OPS-42", "--author", "li.wei")  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    try:
        (made,) = [s for s in _active(stack) if s["id"] == silence_id]
        assert made["createdBy"] == "li.wei" and made["comment"] == "Redis failover test, OPS-42"
        ends = dt.datetime.fromisoformat(str(made["endsAt"]).replace("Z", "+00:00"))
        assert 29 * 60 < (ends - dt.datetime.now(dt.UTC)).total_seconds() <= 30 * 60
        listed = _silence(stack, "list")
        assert silence_id in listed.stdout and 'dependency="redis"' in listed.stdout
        assert "OPS-42" in listed.stdout

        # The drill's DependencyDown{dependency="redis"} would reach nobody: it must not start.
        journal = tmp_path / "journal.json"
        drill = subprocess.run(
            [sys.executable, "-m", "obsctl", "drill", "run", "redis-down", "--dir",
             str(stack.root), "--journal", str(journal)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert drill.returncode == 3, drill.stdout + drill.stderr
        assert silence_id in drill.stdout + drill.stderr
        record = Journal.load(journal)
        assert record.status == "refused"
        assert not any(s.name.startswith("inject") for s in record.steps), record.steps
        assert "DependencyDown silenced" in record.steady_state_before, record.steady_state_before
    finally:
        expired = _silence(stack, "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    assert silence_id not in {s["id"] for s in _active(stack)}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--for", "0s", "-m", "team=ai"], "--for: a duration must be positive"),
        (["--for", "200h", "-m", "team=ai"], "--for: at most 168h (a week)"),
        (["--for", "soon", "-m", "team=ai"], "--for:"),
        (["--for", "1h", "-m", "team"], "--matcher: not a matcher"),
        (["--for", "1h", "-m", 'alertname=~".*"'], "select every alert"),
        (["--for", "1h", "-m", "alertname=~(("], "not a regular expression"),
    ],
)
def test_a_bad_silence_is_refused_and_nothing_is_created(
    stack: RunningStack, args: list[str], problem: str
) -> None:
    before = len(_active(stack))
    result = _silence(stack, "add", *args, "--comment", "test")
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert len(_active(stack)) == before


def test_an_unreachable_alertmanager_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = obsctl("silence", "list", "--alertmanager-url", url)
    assert result.returncode == 1 and f"Alertmanager at {url} cannot be reached" in result.stderr


@pytest.mark.parametrize(
    ("at_utc", "is_open"),
    [
        ("2026-12-01T19:00:00", True),  # 03:00 Wednesday in Shanghai
        ("2026-12-01T19:29:59", True),
        ("2026-12-01T19:30:00", False),  # the end is not in the window
        ("2026-12-01T18:59:00", False),
        ("2026-12-05T19:10:00", False),  # 03:10 Sunday: outside monday:friday
    ],
)
def test_a_window_is_open_as_alertmanager_sees_it(at_utc: str, is_open: bool) -> None:
    window = MaintenanceWindow.model_validate(
        {"comment": "backup", "times": ["03:00-03:30"], "weekdays": ["monday:friday"],
         "mute": ['dependency="mysql"']}
    )  # fmt: skip
    at = dt.datetime.fromisoformat(at_utc).replace(tzinfo=dt.UTC)
    assert window.is_open(at) is is_open
    assert window.selects({"alertname": "MySQLProbeSlow", "dependency": "mysql"})
    assert not window.selects({"alertname": "MySQLProbeSlow", "dependency": "redis"})


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ("dependency=mysql", {"dependency": "mysql"}, True),
        ('alertname=~"A|B"', {"alertname": "AB"}, False),  # anchored, as in Alertmanager
        ("team!=ai", {}, True),
        ('instance!~"db-.*"', {"instance": "db-1"}, False),
        ('summary="say \\"hi\\""', {"summary": 'say "hi"'}, True),
    ],
)
def test_matchers_match_as_alertmanager_does(text: str, labels: dict[str, str], hit: bool) -> None:
    matcher = Matcher.parse(text)
    assert matcher.matches(labels) is hit
    assert Matcher.parse(str(matcher)) == matcher


class _QuietTarget:
    """Just enough of a drill target for the mute check: no silences, the scenario's alerts."""

    description = "a stub"

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file

    def expectations(self, scenario: Scenario) -> list[Expectation]:
        return list(scenario.expect)

    def alertmanager_silences(self) -> list[dict[str, object]]:
        return []


@pytest.mark.parametrize(("dependency", "refused"), [("redis", True), ("mysql", False)])
def test_a_drill_refuses_while_a_maintenance_window_mutes_its_alert(
    tmp_path: Path, dependency: str, refused: bool
) -> None:
    window = MaintenanceWindow.model_validate(
        {"comment": "Redis upgrade", "location": "UTC", "times": ["00:00-24:00"],
         "mute": [f'dependency="{dependency}"']}
    )  # fmt: skip
    mixin = demo_config().model_copy(update={"maintenance": {"redis-upgrade": window}})
    run = DrillRun(_QuietTarget(tmp_path / "state.json"), SCENARIOS["redis-down"], None,  # type: ignore[arg-type]
                   tmp_path / "journal.json", lambda _: None, mixin)  # fmt: skip
    problems = run._muted()
    if refused:
        assert problems == {
            "DependencyDown in maintenance": "window redis-upgrade is open (Redis upgrade); "
            "run the drill after it"
        }
    else:
        assert problems == {}
