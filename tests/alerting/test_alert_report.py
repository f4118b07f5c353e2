"""`obsctl report alerts` against a real Prometheus holding a scripted alert history.

The history is written as OpenMetrics and turned into TSDB blocks by `promtool tsdb
create-blocks-from openmetrics`: ALERTS samples every 15 s, exactly as the rule manager
writes them while an alert fires, for a known sequence of incidents, a drill and a heartbeat.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.alert_history import read_history
from obsctl.drills.journal import Journal
from obsctl.stack.fakes.launcher import free_port

from conftest import DEMO_PROJECT, is_ready, obsctl, stop_process, wait_for

pytestmark = pytest.mark.needs_tools("prometheus", "promtool")

STEP = 15
NOW = (int(time.time()) // STEP) * STEP
T0 = NOW - 3 * 3600  # the scripted history begins three hours ago
ERRORS = {"alertname": "ApiHighErrorRate", "severity": "critical", "team": "platform"}
MYSQL = {"alertname": "DependencyDown", "severity": "critical", "team": "sre",
         "dependency": "mysql", "target": "main"}  # fmt: skip
REDIS = {"alertname": "DependencyDown", "severity": "critical", "team": "sre",
         "dependency": "redis", "target": "cache"}  # fmt: skip
BACKLOG = {"alertname": "QueueBacklogHigh", "severity": "warning", "team": "ai",
           "queue": "image-tasks"}  # fmt: skip
WATCHDOG = {"alertname": "Watchdog", "severity": "info", "team": "sre"}
DRILL_FAULT = T0 + 7200
# (labels, first sample's offset from T0 in s, seconds firing); the last runs to now
INCIDENTS = [
    (ERRORS, 600, 120),  # resolved by itself in 2 minutes: noise
    (ERRORS, 2400, 60),  # again: noise
    (ERRORS, 3600, 1800),  # a real one, claimed 3 minutes in
    (MYSQL, 1200, 600),  # 10 minutes, nobody claimed it: not noise, too long
    (REDIS, 7230, 240),  # the redis-down drill's own alert
    (BACKLOG, 3 * 3600 - 600, 600),  # started 10 minutes ago, still firing
    (WATCHDOG, 0, 3 * 3600),
]
CLAIM = {
    "id": "5b0f6f4e-claim",
    "createdBy": "li.wei",
    "comment": "claimed",
    "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 3600 + 180)),
    "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 3600 + 7200)),
    "matchers": [{"name": "alertname", "value": "ApiHighErrorRate", "isRegex": False,
                  "isEqual": True}],
    "status": {"state": "active"},
}  # fmt: skip


def _openmetrics() -> str:
    lines = ["# TYPE ALERTS gauge"]
    for labels, offset, seconds in INCIDENTS:
        inner = ",".join(f'{k}="{v}"' for k, v in {**labels, "alertstate": "firing"}.items())
        lines += [f"ALERTS{{{inner}}} 1 {T0 + offset + t}" for t in range(0, seconds, STEP)]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("history")
    (root / "history.om").write_text(_openmetrics())
    made = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(root / "history.om"),
         str(root / "data")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (root / "prometheus.yml").write_text("global: {evaluation_interval: 15s}\n")
    port = free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Prometheus with the history", lambda: is_ready(url), timeout=60)
        yield url
    finally:
        stop_process(process)


def _journal(tmp_path: Path) -> Path:
    journal = Journal(scenario="redis-down", drill_id="redis-down-test-1", status="passed",
                      moments={"fault": DRILL_FAULT, "restore": DRILL_FAULT + 300})  # fmt: skip
    journal.save(tmp_path / "drills" / "redis-down.json")
    return tmp_path / "drills"


def test_the_counts_match_the_scripted_history(prometheus: str, tmp_path: Path) -> None:
    journals = [Journal.load(p) for p in _journal(tmp_path).glob("*.json")]
    history = read_history(prometheus, T0 - 60, NOW, [CLAIM], journals)
    rows = {r["alertname"]: r for r in history.as_dict()["alerts"]}
    assert set(rows) == {"ApiHighErrorRate", "DependencyDown", "QueueBacklogHigh"}
    errors = rows["ApiHighErrorRate"]
    assert errors["fired"] == 3 and errors["firing_seconds"] == 120 + 60 + 1800
    assert errors["median_firing_seconds"] == 120
    assert errors["claimed"] == 1 and errors["mtta_seconds"] == 180
    assert errors["mttr_seconds"] == round((120 + 60 + 1800) / 3, 1)
    assert errors["noise_candidates"] == 2 and errors["still_firing"] == 0
    mysql = rows["DependencyDown"]  # the drill's redis episode is not among the real ones
    assert mysql["fired"] == 1 and mysql["firing_seconds"] == 600
    assert mysql["noise_candidates"] == 0 and mysql["claimed"] == 0
    backlog = rows["QueueBacklogHigh"]
    assert backlog["still_firing"] == 1 and backlog["mttr_seconds"] is None
    assert backlog["noise_candidates"] == 0
    data = history.as_dict()
    assert data["fired"] == 5 and data["noise_candidates"] == 2 and data["noise_ratio"] == 0.4
    assert [(d["drill"], d["alertname"], d["firing_seconds"]) for d in data["drills"]] == [
        ("redis-down-test-1", "DependencyDown", 240.0)
    ]


def test_the_cli_prints_the_same_report(prometheus: str, tmp_path: Path) -> None:
    drills = _journal(tmp_path)
    result = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                    "--drill-journals", str(drills), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["fired"] == 5 and data["noise_candidates"] == 2 and len(data["drills"]) == 1
    text = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                  "--drill-journals", str(drills))  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "ApiHighErrorRate" in text.stdout and "5 real episodes, 2 noise candidates (40.0%)" \
        in text.stdout  # fmt: skip
    assert "1 drill episodes kept apart" in text.stdout


def test_the_report_draws_its_bars_to_png(prometheus: str, tmp_path: Path) -> None:
    """Noise (orange), resolved (blue) and still firing (red) each drawn; the README's picture."""
    import os

    import numpy as np
    from matplotlib.image import imread

    from obsctl.alert_history_png import history_png

    # Drawn for the window ending at NOW: later, the backlog episode no longer counts as firing.
    journals = [Journal.load(p) for p in _journal(tmp_path).glob("*.json")]
    out = Path(os.environ.get("OBSCTL_SCREENSHOT_DIR", tmp_path)) / "report-alerts.png"
    history_png(read_history(prometheus, NOW - 4 * 3600, NOW, [CLAIM], journals), out)
    pixels = imread(out)[:, :, :3]
    assert pixels.shape[1] == 13 * 110 and pixels.shape[0] > 300
    for name, rgb in (("noise", (0xFF, 0x98, 0x30)), ("resolved", (0x32, 0x74, 0xD9)),
                      ("still firing", (0xE0, 0x2F, 0x44))):  # fmt: skip
        close = np.all(np.abs(pixels * 255 - np.array(rgb)) < 8, axis=-1)
        assert close.sum() > 500, f"no {name} bar drawn"


def test_the_cli_draws_the_png_and_keeps_stdout_json(prometheus: str, tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    result = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                    "--json", "--png", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fired"] == 6, "stdout stays the JSON report (no journals)"
    assert f"report: {out}" in result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.TransportError:
        return False


def _delivery(sent_at: float, labels: dict[str, str], status: str = "firing") -> dict[str, Any]:
    """One line of the relay's deliveries.jsonl: a message that carried one alert."""
    return {"sent_at": sent_at, "target": "oncall", "title": labels["alertname"], "text": "...",
            "alerts": 1, "episodes": [{"labels": {**labels, "instance": "x"}, "status": status,
                                       "startsAt": sent_at - 30}]}  # fmt: skip


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real relay whose spool holds the deliveries of the scripted incidents."""
    spool = tmp_path / "spool"
    spool.mkdir()
    rows = [
        _delivery(T0 + 600 + 30, ERRORS),  # the first noise episode, told 30 s in
        _delivery(T0 + 600 + 150, ERRORS, "resolved"),  # its resolution: not a notification
        _delivery(T0 + 3600 + 90, ERRORS),  # the real one, told 90 s in
        _delivery(T0 + 3600 + 400, ERRORS),  # a repeat: the first one counts
        _delivery(T0 + 1200 + 60, MYSQL),
        _delivery(T0 + 1200 + 60, {**MYSQL, "target": "replica"}),  # another alert altogether
    ]  # the second ApiHighErrorRate episode and the backlog never reached a robot
    (spool / "deliveries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    port, token = free_port(), "report-test-relay-token"
    (tmp_path / "relay.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nwebhook: {{token: {token}}}\n"
        f"delivery: {{spool_dir: {spool}}}\n"
        f"render: {{templates_dir: {DEMO_PROJECT / 'alertmanager' / 'templates'}}}\n"
        "targets:\n  oncall: {url: 'http://127.0.0.1:9/robot/send?access_token=x'}\n"
    )
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "relay.log").open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "obsctl", "relay", "--config", str(tmp_path / "relay.yaml")],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for("the relay", lambda: _answers(f"{url}/ready"), timeout=30)
        yield url, token
    finally:
        stop_process(process)


def test_the_relay_delivery_log_says_when_each_episode_reached_a_robot(
    prometheus: str, relay: tuple[str, str], tmp_path: Path
) -> None:
    url, token = relay
    result = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                    "--drill-journals", str(_journal(tmp_path)), "--relay-url", url,
                    "--relay-token", token, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["alertname"]: r for r in json.loads(result.stdout)["alerts"]}
    assert rows["ApiHighErrorRate"]["notified"] == 2
    assert rows["ApiHighErrorRate"]["mttn_seconds"] == (30 + 90) / 2
    assert rows["DependencyDown"]["notified"] == 1 and rows["DependencyDown"]["mttn_seconds"] == 60
    assert rows["QueueBacklogHigh"]["notified"] == 0
    text = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                  "--relay-url", url, "--relay-token", token)  # fmt: skip
    assert "NOTIFIED" in text.stdout and "TTN" in text.stdout
    wrong = obsctl("report", "alerts", "--since", "4h", "--prometheus-url", prometheus,
                   "--relay-url", url, "--relay-token", "not-the-token", "--json")  # fmt: skip
    assert wrong.returncode == 0 and "no notifications counted" in wrong.stderr
    assert "401" in wrong.stderr and "notified" not in wrong.stdout


@pytest.mark.parametrize(
    ("args", "code", "problem"),
    [
        (["--since", "soon"], 2, "expected a span such as 7d"),
        (["--prometheus-url", "http://127.0.0.1:9"], 1, "cannot be read"),
    ],
)
def test_bad_input_is_named(args: list[str], code: int, problem: str) -> None:
    result = obsctl("report", "alerts", "--prometheus-url", "http://127.0.0.1:9", *args)
    assert result.returncode == code and problem in result.stderr, result.stderr
