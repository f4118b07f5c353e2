"""`obsctl drill run alert-path-down` end to end on the shared stack: Alertmanager stopped, the
dead man's switch pages on-call by signed DingTalk and email, the recovery follows, and the
stack is left as it was. The drill stops a server the whole session shares, so each test here
checks that it came back."""

from __future__ import annotations

import datetime as dt
import json
import mailbox
import signal
import subprocess
import sys
import time
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx

from obsctl.drills.journal import Journal

from conftest import RunningStack, demo_config, obsctl, wait_for

DRILL = "alert-path-down"


def _drill(stack: RunningStack, journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "obsctl", "drill", "run", *args, "--dir", str(stack.root),
         "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _deadman(stack: RunningStack) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{stack.env['DEADMAN_URL']}/health", timeout=5).json()
    return body


def _alertmanager_answers(stack: RunningStack) -> bool:
    try:
        return httpx.get(f"{stack.env['ALERTMANAGER_URL']}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _ready_for_a_drill(stack: RunningStack) -> bool:
    """The drill's steady state: the exporter healthy, the deadman hearing the Watchdog."""
    try:
        exporter = httpx.get(f"http://{stack.env['OBSCTL_LISTEN']}/health", timeout=2).json()
        deadman = _deadman(stack)
    except (httpx.HTTPError, ValueError):
        return False
    deps_up = all(dep["status"] in ("ok", "degraded") for dep in exporter["deps"].values())
    beat = deadman["heartbeats"]["alert-path"]
    return deps_up and beat["phase"] == "ok" and not any(deadman["unsent"].values())


def _left_healthy(stack: RunningStack) -> None:
    """What the drill must leave behind: every server up, nothing marked, nothing pending."""
    status = obsctl("stack", "status", "--dir", str(stack.root))
    assert status.returncode == 0, status.stdout + status.stderr
    health = _deadman(stack)
    assert health["drill"] is None, "the drill's mark is removed"
    assert health["heartbeats"]["alert-path"]["phase"] == "ok"
    assert not (stack.root / "run" / "drill-active.json").exists()
    assert "drill:" not in (stack.root / "prometheus" / "prometheus.yml").read_text()


def _oncall_messages(stack: RunningStack, since: float) -> list[dict[str, Any]]:
    found = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env["DINGTALK_ONCALL_TOKEN"], "accepted": "true"},
        timeout=5,
    ).json()["messages"]
    return [
        m
        for m in found
        if dt.datetime.fromisoformat(m["received_at"]).timestamp() >= since
        and "WatchdogMissing" in m["body"]["markdown"]["title"]
    ]


def _emails(stack: RunningStack, since: float) -> list[tuple[str, str, str]]:
    """(subject, to, body) of the WatchdogMissing emails in the SMTP sink, oldest first."""
    box = Path(stack.env["SMTP_SINK_DIR"])
    found = []
    for key, message in mailbox.Maildir(box, create=False).items():
        path = next(p for p in (box / "new" / key, box / "cur" / key) if p.exists())
        subject = str(make_header(decode_header(message["Subject"])))
        if path.stat().st_mtime >= since and "WatchdogMissing" in subject:
            body = message.get_payload(decode=True)
            text = body.decode() if isinstance(body, bytes) else ""
            found.append((path.stat().st_mtime, subject, str(message["To"]), text))
    return [(subject, to, text) for _, subject, to, text in sorted(found)]


def test_alert_path_down_pages_through_the_deadman_and_recovers(
    stack: RunningStack, tmp_path: Path
) -> None:
    wait_for("the stack ready for a drill", lambda: _ready_for_a_drill(stack), 180)
    config = demo_config()
    timeout = config.deadman.missed_heartbeats * config.routing.watchdog_repeat_interval
    started = time.time()
    journal_path = tmp_path / "journal.json"
    proc = _drill(stack, journal_path, DRILL)
    try:
        wait_for(
            "Alertmanager to be stopped",
            lambda: journal_path.exists() and "fault" in Journal.load(journal_path).moments,
            60,
        )
        assert not _alertmanager_answers(stack)
        second = _drill(stack, tmp_path / "second.json", "redis-down")
        second_output, _ = second.communicate(timeout=60)
        assert second.returncode == 4, second_output
        assert f"another drill is running on this system: {DRILL}" in second_output
        assert Journal.load(tmp_path / "second.json").steps == [], "it touched nothing"
        output, _ = proc.communicate(timeout=timeout + 420)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the drill restores Alertmanager on its way out
            proc.communicate(timeout=300)
    journal = Journal.load(journal_path)
    assert proc.returncode == 0, output
    assert journal.status == "passed" and not journal.deviated, output

    timings = journal.timings()
    # Paged one heartbeat timeout after the last Watchdog (it checks every second).
    assert timeout <= timings["last_heartbeat_to_firing"] <= timeout + 5, timings
    assert timings["fault_to_dingtalk"] <= timeout + 10, timings
    assert timings["fault_to_email"] <= timeout + 10, timings
    for key in ("restore_to_resolved", "restore_to_dingtalk_resolved", "restore_to_email_resolved"):
        assert timings[key] <= 90, timings
    steps = [s.name for s in journal.steps]
    assert steps.index("alertmanager stops answering") < steps.index(
        "WatchdogMissing message on dingtalk:oncall"
    )

    # What on-call got, read from the robot and the mailbox, not from the journal.
    drill_id = journal.drill_id
    titles = [m["body"]["markdown"]["title"] for m in _oncall_messages(stack, started)]
    assert titles == [
        "[演练] [告警中] WatchdogMissing alert-path",
        "[演练] [已恢复] WatchdogMissing alert-path",
    ], "one signed page and one recovery, both marked as this drill"
    page, back = _oncall_messages(stack, started)
    assert page["at"]["atMobiles"] == config.oncall.mobiles
    assert all(f"@{m}" in page["body"]["markdown"]["text"] for m in config.oncall.mobiles)
    assert drill_id in page["body"]["markdown"]["text"]
    assert back["at"]["atMobiles"] == [], "the recovery pages nobody"
    mails = _emails(stack, started)
    assert [subject for subject, _, _ in mails] == [
        "[演练] [告警中] WatchdogMissing alert-path",
        "[演练] [已恢复] WatchdogMissing alert-path",
    ]
    assert all(to == ", ".join(config.oncall.email) and drill_id in text for _, to, text in mails)

    _left_healthy(stack)
    print(f"\nDRILL {DRILL} {json.dumps(timings)}")


def test_a_killed_alert_path_drill_is_undone_by_the_next_run(
    stack: RunningStack, tmp_path: Path
) -> None:
    wait_for("the stack ready for a drill", lambda: _ready_for_a_drill(stack), 180)
    journal_path = tmp_path / "journal.json"
    proc = _drill(stack, journal_path, DRILL)
    wait_for(
        "Alertmanager to be stopped",
        lambda: journal_path.exists() and "fault" in Journal.load(journal_path).moments,
        60,
    )
    proc.kill()  # no chance to restore: as if the machine running the drill died
    proc.communicate(timeout=10)
    first = Journal.load(journal_path).drill_id
    try:
        assert not _alertmanager_answers(stack)
        assert _deadman(stack)["drill"]["id"] == first, "the mark outlives the killed drill"

        second = tmp_path / "second.json"
        follow_up = _drill(stack, second, DRILL)
        wait_for(
            "the next run to undo the leftover",
            lambda: second.exists() and len(Journal.load(second).steps) >= 2,
            timeout=120,
        )
        undone = Journal.load(second).steps[0]
        assert undone.output and f"restored after an interrupted {DRILL} drill" in undone.output
        follow_up.send_signal(signal.SIGINT)
        follow_up.communicate(timeout=300)
    finally:
        if not _alertmanager_answers(stack):  # never leave the session without Alertmanager
            obsctl("stack", "up", "--dir", str(stack.root))
    assert _alertmanager_answers(stack)
    assert _deadman(stack)["drill"] is None, "the killed drill's mark is cleared"
    wait_for("the stack ready for a drill again", lambda: _ready_for_a_drill(stack), 120)
    _left_healthy(stack)
