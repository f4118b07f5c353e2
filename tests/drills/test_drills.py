"""Every drill scenario end to end on a real local stack, and drills that are interrupted."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from obsctl.drills.journal import Journal
from obsctl.drills.local import LOCAL_FAULTS
from obsctl.drills.scenarios import DEGRADED_PASS_RATE, SCENARIOS

from conftest import (
    SPARE_PORT_BASES,
    RunningStack,
    imap_server,
    obsctl,
    start_stack,
    traversable_tmp_dir,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drill_stack() -> Iterator[RunningStack]:
    # Outside pytest's private temp tree: the IMAP server reads the stack's maildir as a user.
    root = traversable_tmp_dir("obsctl-drill-stack-")
    try:
        yield start_stack(root, SPARE_PORT_BASES[4])
    finally:
        obsctl("stack", "down", "--dir", str(root))
        shutil.rmtree(root, ignore_errors=True)


def test_the_local_stack_has_a_fault_for_every_scenario_and_variant() -> None:
    assert set(LOCAL_FAULTS) == set(SCENARIOS)
    for name, scenario in SCENARIOS.items():
        assert set(LOCAL_FAULTS[name].variants) == set(scenario.variants), name


def _drill(stack: RunningStack, journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "obsctl", "drill", "run", *args, "--dir", str(stack.root),
         "--journal", str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _healthy(stack: RunningStack) -> bool:
    """Every dependency answers (slow counts as answering, as for the drill's steady state)."""
    try:
        body = httpx.get(f"http://{stack.env['OBSCTL_LISTEN']}/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(dep["status"] in ("ok", "degraded") for dep in body["deps"].values())


@pytest.mark.parametrize(
    ("scenario", "variant"),
    # The hang variant is proven once here (MySQL); `make bench-drills` also runs Redis's, and
    # tests/exporter/test_exporter_faults.py hangs both under the exporter. The drills that
    # stop the alert path itself page through the dead man's switch, within its heartbeat
    # timeout rather than a minute: tests/drills/test_alert_path_drill.py. A slow scenario's
    # alert waits minutes: bench-drills runs it, here only its fault (below).
    [(name, None) for name, s in SCENARIOS.items() if not (s.deadman or s.slow)]
    + [("mysql-down", "hang")],
)
def test_scenario_passes_end_to_end(
    drill_stack: RunningStack, tmp_path: Path, scenario: str, variant: str | None
) -> None:
    wait_for("the stack to be healthy before the drill", lambda: _healthy(drill_stack), 120)
    # An earlier drill's side effects (a DB outage also raises API errors) must have cleared.
    wait_for(f"no {scenario} alert still active", lambda: _quiet(drill_stack, scenario), 180)
    journal_path = tmp_path / "journal.json"
    args = [scenario, *(["--variant", variant] if variant else [])]
    proc = _drill(drill_stack, journal_path, *args)
    output, _ = proc.communicate(timeout=600)
    journal = Journal.load(journal_path)
    assert proc.returncode == 0, output
    assert journal.status == "passed" and not journal.deviated
    timings = journal.timings()
    # How fast is `make bench-drills`' figure (docs/BENCHMARKS.md), not a timed test's.
    assert "fault_to_dingtalk" in timings and "restore_to_dingtalk_resolved" in timings, timings
    if any(channel == "email" for channel in _channels(journal)):
        assert "fault_to_email" in timings and "restore_to_email_resolved" in timings
    print(f"\nDRILL {scenario}{'/' + variant if variant else ''} {json.dumps(timings)}")


def test_the_eviction_policy_fault_is_seen_by_the_exporter_and_undone(
    drill_stack: RunningStack,
) -> None:
    """The slow drill's fault and restore on the real Redis, as its exporter reports them."""
    import redis

    from obsctl.drills.local import StackTarget

    target = StackTarget.open(drill_stack.root)
    inject, restore = target.fault(SCENARIOS["redis-eviction-policy"], None, "test")
    client = redis.Redis.from_url(drill_stack.env["OBSCTL_REDIS_URL"], decode_responses=True)
    metrics = f"http://{drill_stack.env['OBSCTL_LISTEN']}/metrics"

    def exported(policy: str) -> bool:
        text = httpx.get(metrics, timeout=5).text
        return any(line.startswith("bullmq_redis_maxmemory_policy{") and f'policy="{policy}"'
                   in line and line.endswith(" 1.0") for line in text.splitlines())  # fmt: skip

    try:
        inject()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        wait_for("the exporter to see allkeys-lru", lambda: exported("allkeys-lru"), 60)
    finally:
        restore()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    wait_for("the exporter to see noeviction again", lambda: exported("noeviction"), 60)
    client.close()


def _quiet(stack: RunningStack, scenario: str) -> bool:
    names = {alert.value for alert, _ in SCENARIOS[scenario].expect}
    body = httpx.get(f"{stack.env['PROMETHEUS_URL']}/api/v1/alerts", timeout=5).json()
    return not any(a["labels"]["alertname"] in names for a in body["data"]["alerts"])


def _channels(journal: Journal) -> list[str]:
    return [s.name.rsplit(" on ", 1)[1] for s in journal.steps if " message on " in s.name]


@pytest.mark.parametrize(
    ("sig", "during", "status"),
    [
        (signal.SIGINT, "ApiHighErrorRate pending, then firing", "interrupted"),
        (signal.SIGTERM, "ApiHighErrorRate message on dingtalk", "interrupted"),
        # Once the rollback has begun a signal must not cut it short: the drill finishes.
        (signal.SIGINT, "ApiHighErrorRate resolved", "passed"),
    ],
)
def test_an_interrupted_drill_still_restores(
    drill_stack: RunningStack, tmp_path: Path, sig: signal.Signals, during: str, status: str
) -> None:
    wait_for("the stack to be healthy before the drill", lambda: _healthy(drill_stack), 120)
    wait_for("no api-errors alert still active", lambda: _quiet(drill_stack, "api-errors"), 180)
    journal_path = tmp_path / "journal.json"
    proc = _drill(drill_stack, journal_path, "api-errors")

    def reached() -> bool:
        if not journal_path.exists():
            return False
        steps = Journal.load(journal_path).steps
        return bool(steps) and steps[-1].name.startswith(during) and steps[-1].ended_at is None

    wait_for(f"the drill to reach '{during}'", reached, timeout=180)
    if "pending" in during:
        # Only this step lasts long enough (the alert's `for:`) that the first drill is surely
        # still running when a second one, starting up on a loaded machine, asks for the lock.
        second = _drill(drill_stack, tmp_path / "second.json", "redis-down")
        second_output, _ = second.communicate(timeout=60)
        assert second.returncode == 4, second_output
        assert "another drill is running on this system: api-errors" in second_output
        assert Journal.load(tmp_path / "second.json").steps == [], "a refused drill runs no step"
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == (130 if status == "interrupted" else 0), output
    journal = Journal.load(journal_path)
    assert journal.status == status
    assert any(s.name == "restore" and s.outcome == "ok" for s in journal.steps), output
    faults = _admin(drill_stack).get("/admin/faults").json()
    assert faults["error_rate"] == 0, "the fault must be gone after an interrupted drill"
    assert not (drill_stack.root / "run" / "drill-active.json").exists()
    assert "drill:" not in (drill_stack.root / "prometheus" / "prometheus.yml").read_text()


def test_a_crashed_drill_is_undone_by_the_next_run(
    drill_stack: RunningStack, tmp_path: Path
) -> None:
    wait_for("the stack to be healthy before the drill", lambda: _healthy(drill_stack), 120)
    wait_for("no api-errors alert still active", lambda: _quiet(drill_stack, "api-errors"), 180)
    journal_path = tmp_path / "journal.json"
    proc = _drill(drill_stack, journal_path, "api-errors")
    wait_for(
        "the fault to be injected",
        lambda: journal_path.exists() and "fault" in Journal.load(journal_path).moments,
        timeout=120,
    )
    proc.kill()  # no chance to restore: as if the machine running the drill died
    proc.communicate(timeout=10)
    assert _admin(drill_stack).get("/admin/faults").json()["error_rate"] > 0
    second = tmp_path / "second.json"
    follow_up = _drill(drill_stack, second, "api-errors")
    wait_for(
        "the next run to undo the leftover",
        lambda: second.exists() and len(Journal.load(second).steps) >= 2,
        timeout=120,
    )
    first_step = Journal.load(second).steps[0]
    assert (
        first_step.output and "restored after an interrupted api-errors drill" in first_step.output
    )
    follow_up.send_signal(signal.SIGINT)
    follow_up.communicate(timeout=180)
    assert _admin(drill_stack).get("/admin/faults").json()["error_rate"] == 0


def _admin(stack: RunningStack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.env["DEMO_APP_URL"],
        headers={"Authorization": f"Bearer {stack.env['DEMO_ADMIN_TOKEN']}"},
        timeout=10,
    )


def _oncall_texts(stack: RunningStack, since: float) -> list[str]:
    found = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env["DINGTALK_ONCALL_TOKEN"], "accepted": "true"},
        timeout=5,
    ).json()["messages"]
    return [
        m["body"]["markdown"]["text"]
        for m in found
        if dt.datetime.fromisoformat(m["received_at"]).timestamp() >= since
    ]


def test_a_real_incident_during_a_drill_reaches_on_call_unmarked(
    drill_stack: RunningStack, tmp_path: Path
) -> None:
    wait_for("the stack to be healthy before the drill", lambda: _healthy(drill_stack), 120)
    wait_for("no redis-down alert still active", lambda: _quiet(drill_stack, "redis-down"), 180)
    wait_for("no api-errors alert still active", lambda: _quiet(drill_stack, "api-errors"), 180)
    started = time.time()
    journal_path = tmp_path / "journal.json"
    proc = _drill(drill_stack, journal_path, "redis-down")
    try:

        def injected() -> bool:
            steps = Journal.load(journal_path).steps if journal_path.exists() else []
            return any(s.name.startswith("inject") and s.outcome == "ok" for s in steps)

        wait_for("the drill's fault", injected, timeout=120)
        # Meanwhile, a real incident of another kind: the API answers 5 % errors.
        _admin(drill_stack).put("/admin/faults", json={"error_rate": 0.05}).raise_for_status()

        def real_alert() -> list[str] | None:
            texts = [t for t in _oncall_texts(drill_stack, started) if "ApiHighErrorRate" in t]
            return texts or None

        [real, *_] = wait_for("ApiHighErrorRate on the on-call robot", real_alert, timeout=150)

        # Alert relabelling applies on the way to Alertmanager: its labels are what on-call gets.
        def in_alertmanager(name: str) -> dict[str, str] | None:
            firing = httpx.get(f"{drill_stack.env['ALERTMANAGER_URL']}/api/v2/alerts").json()
            found = [a["labels"] for a in firing if a["labels"]["alertname"] == name]
            return found[0] if found else None

        real_labels = wait_for(
            "ApiHighErrorRate in Alertmanager", lambda: in_alertmanager("ApiHighErrorRate"), 120
        )
        drills = wait_for(
            "the drill's own message",
            lambda: [t for t in _oncall_texts(drill_stack, started) if "DependencyDown" in t],
            timeout=120,
        )
    finally:
        _admin(drill_stack).put("/admin/faults", json={"error_rate": 0}).raise_for_status()
        output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "drill" not in real_labels, "the real incident is not the drill's"
    drill_id = Journal.load(journal_path).drill_id
    assert any("演练" in text and drill_id in text for text in drills), drills
    assert "演练" not in real, "a real incident's message carries no drill marker"


def test_refuses_to_start_on_a_broken_system(drill_stack: RunningStack, tmp_path: Path) -> None:
    wait_for("the stack to be healthy", lambda: _healthy(drill_stack), 120)
    os.kill(_pid(drill_stack, "redis"), signal.SIGSTOP)
    try:
        wait_for("redis to look down", lambda: not _healthy(drill_stack), 60)
        proc = _drill(drill_stack, tmp_path / "j.json", "api-errors")
        output, _ = proc.communicate(timeout=120)
    finally:
        os.kill(_pid(drill_stack, "redis"), signal.SIGCONT)
    assert proc.returncode == 3, output
    assert "refusing to start" in output and "redis" in output


def _pid(stack: RunningStack, name: str) -> int:
    records = json.loads((stack.root / "run" / "processes.json").read_text())
    return next(int(r["pid"]) for r in records if r["name"] == name)


def test_drill_against_a_target_config_proves_delivery_through_relay_and_imap(
    drill_stack: RunningStack, tmp_path: Path
) -> None:
    """The stack drilled as a remote system: only URLs, HTTP faults, commands, relay and IMAP."""
    wait_for("the stack to be healthy before the drill", lambda: _healthy(drill_stack), 120)
    wait_for("no api-errors alert still active", lambda: _quiet(drill_stack, "api-errors"), 180)
    env = drill_stack.env
    prometheus_yml = drill_stack.root / "prometheus" / "prometheus.yml"
    original = prometheus_yml.read_bytes()
    with imap_server(Path(env["SMTP_SINK_DIR"])) as imap:
        config = tmp_path / "staging.yaml"
        config.write_text(_remote_target_config(drill_stack, prometheus_yml, imap.port))
        secrets = {
            "STAGING_RELAY_TOKEN": env["OBSCTL_RELAY_TOKEN"],
            "STAGING_ADMIN_TOKEN": env["DEMO_ADMIN_TOKEN"],
            "STAGING_IMAP_PASSWORD": imap.password,
        }
        journal_path = tmp_path / "journal.json"
        proc = subprocess.run(
            [sys.executable, "-m", "obsctl", "drill", "run", "api-errors", "--target",
             str(config), "--yes", "--journal", str(journal_path), "--project", str(REPO)],
            capture_output=True, text=True, timeout=600, env={**os.environ, **secrets},
        )  # fmt: skip

    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    journal = Journal.load(journal_path)
    assert journal.status == "passed" and journal.target.startswith("target staging-test")
    timings = journal.timings()
    for key in ("fault_to_dingtalk", "fault_to_email", "restore_to_email_resolved"):
        assert key in timings, timings
    steps = {s.name: s for s in journal.steps}
    assert "PUT" in (steps["inject: raise the demo platform's 5xx rate to 5 %"].output or "")
    assert set(_channels(journal)) == {"dingtalk:oncall", "email"}
    assert prometheus_yml.read_bytes() == original, "the label tool restores the file exactly"
    assert not (tmp_path / "state.json").exists()
    assert _admin(drill_stack).get("/admin/faults").json()["error_rate"] == 0
    print(f"\nDRILL api-errors (remote target) {json.dumps(timings)}")


def _remote_target_config(stack: RunningStack, prometheus_yml: Path, imap_port: int) -> str:
    env = stack.env
    label = [sys.executable, "-m", "obsctl", "drill", "label"]
    where = ["--prometheus-config", str(prometheus_yml), "--reload-url",
             f"{env['PROMETHEUS_URL']}/-/reload"]  # fmt: skip

    def faults(rate: float) -> list[dict[str, object]]:
        url = f"{env['DEMO_APP_URL']}/admin/faults"
        body = {"error_rate": rate, "latency_ms": 0}
        return [
            {
                "http": {
                    "method": "PUT",
                    "url": url,
                    "bearer_token": "${STAGING_ADMIN_TOKEN}",
                    "json": body,
                }
            }
        ]

    import yaml

    return yaml.safe_dump(
        {
            "name": "staging-test",
            "prometheus": env["PROMETHEUS_URL"],
            "alertmanager": env["ALERTMANAGER_URL"],
            "exporter": f"http://{env['OBSCTL_LISTEN']}",
            "relay": {"url": env["RELAY_URL"], "token": "${STAGING_RELAY_TOKEN}"},
            "mailbox": {
                "imap": {
                    "host": "127.0.0.1",
                    "port": imap_port,
                    "security": "none",
                    "username": "oncall",
                    "password": "${STAGING_IMAP_PASSWORD}",
                }
            },
            "drill_label": {
                "set": [
                    {"run": [*label, "set", "{drill_id}", "--alerts", "{drill_alerts}", *where]}
                ],
                "clear": [{"run": [*label, "clear", *where]}],
            },
            "faults": {"api-errors": {"inject": faults(0.05), "restore": faults(0.0)}},
            "state_file": "state.json",
        }
    )


def test_an_invariant_holds_only_at_or_above_its_floor() -> None:
    rate = DEGRADED_PASS_RATE

    def result(value: str) -> list[dict[str, object]]:
        return [{"metric": {}, "value": [1764700000.0, value]}]

    assert rate.judge(result("0.95")) == (True, "0.95 >= 0.9")
    assert rate.judge(result("0.9")) == (True, "0.9 >= 0.9")
    assert rate.judge(result("0.48")) == (False, "0.48 < 0.9")
    ok, said = rate.judge([])
    assert not ok and "returned nothing" in said
    assert "task_succeeded_total" in rate.expr and "task_failed_total" in rate.expr
    assert SCENARIOS["breaker-open"].holds == (DEGRADED_PASS_RATE,)


def test_list_names_every_scenario_and_what_must_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "obsctl", "drill", "list"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = {line.split()[0] for line in done.stdout.splitlines() if not line.startswith(" ")}
    assert names == set(SCENARIOS)
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("breaker-open "))
    assert lines[at + 1].split() == ["expects", "CircuitBreakerOpen"]
    assert lines[at + 2].strip() == f"and {DEGRADED_PASS_RATE.description}: at least 0.9"
