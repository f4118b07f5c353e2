"""The dead man's switch's bookkeeping, with time given explicitly."""

from __future__ import annotations

from pathlib import Path

from obsctl.deadman.config import HeartbeatConfig
from obsctl.deadman.watch import Kind, Phase, Watcher

T0 = 1_800_000_000.0


def watcher(directory: Path, now: float = T0, reminder: float = 600) -> Watcher:
    beats = [HeartbeatConfig(name="alert-path", timeout=180, reminder=reminder)]
    return Watcher(beats, ["dingtalk", "email"], directory, now)


def kinds(w: Watcher, channel: str = "dingtalk") -> list[str]:
    return [n.kind.value for n in w.owed(channel)]


def test_a_stopped_heartbeat_pages_once_reminds_and_recovers(tmp_path: Path) -> None:
    w = watcher(tmp_path)
    w.beat("alert-path", T0 + 10)
    w.tick(T0 + 100)
    assert kinds(w) == [] and w.state.heartbeats["alert-path"].phase is Phase.OK

    w.tick(T0 + 190)  # 180 s after the last Watchdog
    assert kinds(w) == ["missing"]
    [notice] = w.owed("email")
    assert (notice.last_seen, notice.missing_since) == (T0 + 10, T0 + 10)
    w.tick(T0 + 300)
    assert kinds(w) == ["missing"], "one notice per outage"

    w.delivered(notice, "dingtalk")
    w.tick(T0 + 1_000)
    assert kinds(w, "dingtalk") == [] and kinds(w, "email") == ["missing"]
    assert not any(n.kind is Kind.REMINDER for n in w.state.notices), "no reminder while unsent"
    w.delivered(notice, "email")
    w.tick(T0 + 1_000)
    assert kinds(w) == ["reminder"], "600 s after the page, while still missing"

    w.beat("alert-path", T0 + 1_100)
    assert kinds(w) == ["reminder", "recovered"]
    recovered = w.owed("dingtalk")[-1]
    assert recovered.created_at - recovered.missing_since == 1_090
    assert w.state.heartbeats["alert-path"].phase is Phase.OK


def test_no_heartbeat_at_all_pages_one_timeout_after_start(tmp_path: Path) -> None:
    w = watcher(tmp_path)
    w.tick(T0 + 179)
    assert kinds(w) == [] and w.state.heartbeats["alert-path"].phase is Phase.WAITING
    w.tick(T0 + 180)
    [notice] = w.owed("dingtalk")
    assert notice.kind is Kind.MISSING and notice.last_seen is None


def test_a_restart_keeps_the_outage_and_its_unsent_notices_and_gives_grace_otherwise(
    tmp_path: Path,
) -> None:
    paged = tmp_path / "paged"
    first = watcher(paged)
    first.beat("alert-path", T0)
    first.tick(T0 + 200)
    assert kinds(first) == ["missing"]

    again = watcher(paged, now=T0 + 250)
    again.tick(T0 + 260)
    assert kinds(again) == ["missing"], "the unsent page survived, and was not doubled"
    assert again.state.heartbeats["alert-path"].phase is Phase.MISSING

    healthy = tmp_path / "healthy"
    watcher(healthy).beat("alert-path", T0)
    restarted = watcher(healthy, now=T0 + 1_000)  # down for longer than the timeout
    restarted.tick(T0 + 1_100)
    assert kinds(restarted) == [], "Watchdogs lost while it was down are not an outage"
    restarted.tick(T0 + 1_180)
    assert kinds(restarted) == ["missing"]


def test_reminders_can_be_off(tmp_path: Path) -> None:
    w = watcher(tmp_path, reminder=0)
    w.tick(T0 + 180)
    for notice in w.owed("dingtalk"):
        w.delivered(notice, "dingtalk")
        w.delivered(notice, "email")
    w.tick(T0 + 100_000)
    assert kinds(w) == []


def test_a_drill_marks_only_the_outage_it_causes_while_its_mark_lasts(tmp_path: Path) -> None:
    w = watcher(tmp_path)
    w.beat("alert-path", T0)
    w.mark_drill("alert-path-down-1", T0 + 5, ttl=600)
    w.tick(T0 + 180)
    w.beat("alert-path", T0 + 200)
    assert [(n.kind.value, n.drill) for n in w.owed("dingtalk")] == [
        ("missing", "alert-path-down-1"),
        ("recovered", "alert-path-down-1"),
    ]
    assert w.state.heartbeats["alert-path"].drill is None, "the next outage starts unmarked"

    # A reminder made after the drill's mark is gone pages as a real outage: the restore failed.
    w.tick(T0 + 380)
    assert w.owed("dingtalk")[-1].drill == "alert-path-down-1"
    for notice in list(w.state.notices):
        w.delivered(notice, "dingtalk")
        w.delivered(notice, "email")
    assert w.clear_drill("alert-path-down-1")
    w.tick(T0 + 380 + 600)
    [reminder] = w.owed("dingtalk")
    assert (reminder.kind, reminder.drill) == (Kind.REMINDER, None)


def test_an_outage_that_began_before_the_mark_or_after_it_expired_is_not_a_drill(
    tmp_path: Path,
) -> None:
    w = watcher(tmp_path)
    w.tick(T0 + 180)  # missing before any drill
    w.mark_drill("alert-path-down-2", T0 + 190, ttl=60)
    w.beat("alert-path", T0 + 200)
    assert [n.drill for n in w.owed("dingtalk")] == [None, None]

    expiring = watcher(tmp_path / "expiring")
    expiring.beat("alert-path", T0)
    expiring.mark_drill("alert-path-down-3", T0, ttl=60)
    expiring.tick(T0 + 61)
    assert expiring.state.drill is None, "an expired mark is dropped"
    expiring.tick(T0 + 180)
    assert [n.drill for n in expiring.owed("dingtalk")] == [None]


def test_the_drill_mark_survives_a_restart_and_only_its_own_id_clears_it(tmp_path: Path) -> None:
    w = watcher(tmp_path)
    w.mark_drill("alert-path-down-4", T0, ttl=600)
    again = watcher(tmp_path, now=T0 + 10)
    assert again.active_drill(T0 + 10) == "alert-path-down-4"
    assert not again.clear_drill("another-drill")
    assert again.active_drill(T0 + 10) == "alert-path-down-4"
    assert again.clear_drill("alert-path-down-4")
    assert watcher(tmp_path, now=T0 + 20).active_drill(T0 + 20) is None
