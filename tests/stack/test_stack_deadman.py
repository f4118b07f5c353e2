"""The stack runs `obsctl deadman` as production would: the project's deadman.yaml, the Watchdog
from the stack's Alertmanager, its robot and SMTP pointed at the stack's fakes, scraped."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import httpx
import psutil
import yaml

from obsctl.mixin.config import JOB_NAMES

from conftest import DEMO_PROJECT, RunningStack, demo_config, wait_for


def _query(stack: RunningStack, expr: str) -> list[dict[str, object]]:
    body = httpx.get(
        f"{stack.env['PROMETHEUS_URL']}/api/v1/query", params={"query": expr}, timeout=5
    ).json()
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_deadman(stack: RunningStack) -> None:
    job = JOB_NAMES["deadman"]
    assert job == "obsctl-deadman"
    wait_for(f"up{{job='{job}'}} == 1", lambda: _query(stack, f'up{{job="{job}"}} == 1'), 60)
    [series] = wait_for(
        "the deadman's own metrics in Prometheus",
        lambda: _query(stack, f'obsctl_deadman_heartbeat_missing{{job="{job}"}}'),
        60,
    )
    assert series["metric"]["heartbeat"] == "alert-path"  # type: ignore[index]
    assert series["value"][1] == "0"  # type: ignore[index]


def test_the_deadman_runs_the_projects_config_with_the_stacks_addresses(
    stack: RunningStack,
) -> None:
    records = json.loads((stack.root / "run" / "processes.json").read_text())
    [record] = [r for r in records if r["name"] == "deadman"]
    process = psutil.Process(int(record["pid"]))
    assert str(DEMO_PROJECT / "alertmanager" / "deadman.yaml") in process.cmdline()
    env = process.environ()
    assert env["OBSCTL_DEADMAN_LISTEN"] == stack.env["DEADMAN_URL"].removeprefix("http://")
    assert env["OBSCTL_DEADMAN_SMARTHOST"] == stack.env["SMTP_SMARTHOST"]
    assert env["OBSCTL_DEADMAN_STATE_DIR"] == str(stack.root / "deadman" / "state")
    # The on-call robot the generated config names, at the stack's fake robot.
    assert env["OBSCTL_DINGTALK_ONCALL_URL"] == (
        f"{stack.env['DINGTALK_SINK_URL']}/robot/send?access_token="
        f"{stack.env['DINGTALK_ONCALL_TOKEN']}"
    )
    assert env["OBSCTL_DINGTALK_ONCALL_SECRET"] == stack.env["DINGTALK_ONCALL_SECRET"]
    assert (stack.root / "deadman" / "state" / "state.json").exists()

    config = demo_config()
    health = httpx.get(f"{stack.env['DEADMAN_URL']}/health", timeout=5).json()
    timeout = health["heartbeats"]["alert-path"]["timeout_seconds"]
    assert timeout == config.deadman.missed_heartbeats * config.routing.watchdog_repeat_interval
    assert set(health["unsent"]) == {"dingtalk", "email"}
    deliveries = f"{stack.env['DEADMAN_URL']}/api/v1/deliveries"
    assert httpx.get(deliveries, timeout=5).status_code == 401
    authorized = {"Authorization": f"Bearer {stack.env['OBSCTL_DEADMAN_TOKEN']}"}
    assert httpx.get(deliveries, headers=authorized, timeout=5).status_code == 200


def test_alertmanager_sends_the_watchdog_to_the_deadman(stack: RunningStack) -> None:
    rendered = yaml.safe_load((stack.root / "alertmanager" / "alertmanager.yml").read_text())
    [heartbeat] = [r for r in rendered["receivers"] if r["name"] == "heartbeat"]
    [hook] = [h for h in heartbeat["webhook_configs"] if "/heartbeat/" in h["url"]]
    assert hook["url"] == f"{stack.env['DEADMAN_URL']}/heartbeat/alert-path"
    token_file = Path(hook["http_config"]["authorization"]["credentials_file"])
    assert token_file.read_text() == stack.env["OBSCTL_DEADMAN_TOKEN"]
    assert token_file.stat().st_mode & 0o077 == 0

    def heard() -> dict[str, object] | None:
        body = httpx.get(f"{stack.env['DEADMAN_URL']}/health", timeout=5).json()
        beat: dict[str, object] = body["heartbeats"]["alert-path"]
        return beat if beat["phase"] == "ok" and beat["received"] else None

    wait_for("a Watchdog at the deadman", heard, 90)


def test_the_watchdog_arrives_every_repeat_interval(stack: RunningStack) -> None:
    """Every minute, not every other minute: the deadman's timeout counts on it."""
    interval = demo_config().routing.watchdog_repeat_interval
    # Since Alertmanager last loaded its config (a drill may have stopped it, a test reloaded
    # it): a new group may wait up to one repeat for its first flush.
    metrics = httpx.get(f"{stack.env['ALERTMANAGER_URL']}/metrics", timeout=5).text
    [loaded] = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("alertmanager_config_last_reload_success_timestamp_seconds ")
    ]
    started = loaded + interval

    def arrivals() -> list[float] | None:
        found = httpx.get(
            f"{stack.env['DINGTALK_SINK_URL']}/_messages",
            params={"token": stack.env["DINGTALK_HEARTBEAT_TOKEN"], "accepted": "true"},
            timeout=5,
        ).json()["messages"]
        times = [dt.datetime.fromisoformat(m["received_at"]).timestamp() for m in found]
        times = [t for t in times if t >= started]
        return times if len(times) >= 3 else None

    # The heartbeat robot gets the same notification as the deadman (one receiver, one flush).
    times = wait_for("three Watchdogs on the heartbeat robot", arrivals, 4 * interval + 60)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap <= interval + 15 for gap in gaps), gaps
