"""The relay's delivery log on disk: kept across restarts, read back past memory, rotated."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from obsctl.relay import deliveries
from obsctl.relay.alertmanager import Alert
from obsctl.relay.deliveries import LOG_FILE, DeliveryLog


def _alert(name: str, status: str = "firing") -> Alert:
    return Alert.model_validate({
        "status": status, "labels": {"alertname": name, "severity": "critical", "x": "v" * 500},
        "startsAt": "2026-12-01T03:00:00Z", "fingerprint": "f" * 16,
    })  # fmt: skip


def test_a_restart_keeps_the_newest_deliveries_with_their_alerts(tmp_path: Path) -> None:
    log = DeliveryLog(3, tmp_path)
    for number in range(5):
        log.record("oncall", f"message {number}", "text", 1, [_alert(f"A{number}")])
    log.close()
    again = DeliveryLog(3, tmp_path)
    kept = again.since(0)
    assert [d.title for d in kept] == ["message 2", "message 3", "message 4"]
    episode = kept[-1].episodes[0]
    assert episode["labels"]["alertname"] == "A4" and episode["status"] == "firing"
    assert len(episode["labels"]["x"]) == deliveries.MAX_VALUE_CHARS
    assert episode["startsAt"] == 1796094000.0
    # Memory holds the last 3; asked for more, the file has all 5.
    assert not again.reaches_back(0)
    assert [d.title for d in again.from_file(0)] == [f"message {n}" for n in range(5)]
    assert again.reaches_back(kept[0].sent_at)


def test_a_torn_line_is_skipped_and_the_file_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries, "MAX_FILE_BYTES", 2_000)
    log = DeliveryLog(100, tmp_path)
    for number in range(10):
        log.record("oncall", f"message {number}", "t" * 300, 0)
    log.close()
    assert (tmp_path / (LOG_FILE + ".1")).exists()
    with (tmp_path / LOG_FILE).open("a") as handle:
        handle.write('{"sent_at": 1, "target": "onc')  # a crash mid-line
    again = DeliveryLog(100, tmp_path)
    titles = [d.title for d in again.since(0)]
    assert titles[-1] == "message 9" and len(titles) == len(set(titles))
    assert all(json.loads(line) for line in (tmp_path / (LOG_FILE + ".1")).read_text().splitlines())


def test_an_unwritable_log_keeps_deliveries_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with caplog.at_level(logging.ERROR):
        log = DeliveryLog(10, blocked / "spool")  # a file where a directory should be
        log.record("oncall", "kept", "text", 0)
    assert [d.title for d in log.since(0)] == ["kept"]
    assert "kept in memory only" in caplog.text
