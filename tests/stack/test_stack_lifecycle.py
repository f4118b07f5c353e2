"""`obsctl stack up|down|status`: the lifecycle of the local stack, on real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil

from obsctl.stack.layout import PORT_OFFSETS

from conftest import (
    SPARE_PORT_BASES,
    RunningStack,
    listeners_in_range,
    obsctl,
    processes_mentioning,
    start_stack,
    wait_for,
)

SERVERS = [
    "mariadb", "redis", "s3", "smtp", "provider-alpha", "provider-beta", "dingtalk", "sms",
    "alertmanager", "relay", "deadman", "node-exporter", "prometheus", "demo-app", "exporter",
]  # fmt: skip

REQUIRED_ENV = [
    "OBSCTL_MYSQL_DSN", "OBSCTL_REDIS_URL", "OBSCTL_COS_ENDPOINT", "OBSCTL_COS_BUCKET",
    "OBSCTL_COS_ACCESS_KEY", "OBSCTL_COS_SECRET_KEY", "OBSCTL_COS_REGION", "PROMETHEUS_URL",
    "ALERTMANAGER_URL", "DEMO_APP_URL", "PROVIDER_URLS", "DINGTALK_SINK_URL", "SMTP_SINK_DIR",
    "PLATFORM_MYSQL_DSN", "NODE_EXPORTER_URL", "SMS_SINK_URL",
]  # fmt: skip


def _records(root: Path) -> dict[str, dict[str, object]]:
    raw = json.loads((root / "run" / "processes.json").read_text())
    return {item["name"]: item for item in raw}


def test_status_shows_every_server_answering(stack: RunningStack) -> None:
    result = obsctl("stack", "status", "--dir", str(stack.root))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in SERVERS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert "127.0.0.1:" in line and line.endswith("answering"), line


def test_status_json_lists_addresses_and_pids(stack: RunningStack) -> None:
    result = obsctl("stack", "status", "--dir", str(stack.root), "--json")
    servers = {s["name"]: s for s in json.loads(result.stdout)}
    assert sorted(servers) == sorted(SERVERS)
    assert servers["redis"]["address"] == f"127.0.0.1:{stack.port_base + PORT_OFFSETS['redis']}"
    assert all(s["answering"] and isinstance(s["pid"], int) for s in servers.values())


def test_stack_env_has_every_variable_and_is_private(stack: RunningStack) -> None:
    missing = [key for key in REQUIRED_ENV if not stack.env.get(key)]
    assert not missing, f"stack.env lacks {missing}"
    assert stack.env["OBSCTL_MYSQL_DSN"] != stack.env["PLATFORM_MYSQL_DSN"]
    assert len(stack.env["PROVIDER_URLS"].split(",")) >= 2
    mode = stat.S_IMODE((stack.root / "stack.env").stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_every_server_listens_on_loopback_only(stack: RunningStack) -> None:
    pids = {int(r["pid"]) for r in _records(stack.root).values()}  # type: ignore[call-overload]
    families = set()
    for pid in pids:
        for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    families.add(conn.laddr.ip)
    assert families and families <= {"127.0.0.1"}, families


def test_up_on_a_running_stack_changes_nothing(stack: RunningStack) -> None:
    before = _records(stack.root)
    result = obsctl("stack", "up", "--dir", str(stack.root))
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stderr
    assert _records(stack.root) == before


def test_reload_applies_the_configs_to_prometheus_and_alertmanager(stack: RunningStack) -> None:
    result = obsctl("stack", "reload", "--dir", str(stack.root))
    assert result.returncode == 0, result.stderr
    assert "prometheus       reloaded" in result.stderr
    assert "alertmanager     reloaded" in result.stderr


def test_port_taken_is_a_clear_error_naming_port_and_holder(tmp_path: Path) -> None:
    base = SPARE_PORT_BASES[0]
    redis_port = base + PORT_OFFSETS["redis"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", redis_port))
        squatter.listen()
        result = obsctl("stack", "up", "--dir", str(tmp_path), "--port-base", str(base))
    assert result.returncode != 0
    assert f"port {redis_port} (redis) is already in use by pid {os.getpid()}" in result.stderr
    assert not listeners_in_range(base), "nothing may be started when a port is taken"


def test_server_failing_to_start_shows_its_log_and_stops_the_rest(tmp_path: Path) -> None:
    # A data directory that looks initialised but holds no system tables: mariadbd refuses it.
    (tmp_path / "mariadb" / "data" / "mysql").mkdir(parents=True)
    base = SPARE_PORT_BASES[1]
    result = obsctl("stack", "up", "--dir", str(tmp_path), "--port-base", str(base))
    assert result.returncode != 0
    assert "mariadb exited with code" in result.stderr
    assert "mariadb.log" in result.stderr and "ERROR" in result.stderr, result.stderr
    assert "stopped again what this run had started" in result.stderr
    assert _records(tmp_path) == {}
    wait_for("the stopped servers' ports to close", lambda: not listeners_in_range(base), 10)
    assert not listeners_in_range(base), listeners_in_range(base)
    assert not processes_mentioning(str(tmp_path))


def test_down_after_a_crash_stops_only_the_stacks_own_processes(tmp_path: Path) -> None:
    base = SPARE_PORT_BASES[2]
    second = start_stack(tmp_path, base)
    records = _records(second.root)
    # Simulate a crash: kill some servers outright.
    for name in ("redis", "mariadb", "demo-app"):
        os.kill(int(records[name]["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    # And a record whose pid now belongs to an unrelated process, as after pid reuse.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        raw = json.loads((second.root / "run" / "processes.json").read_text())
        for item in raw:
            if item["name"] == "smtp":
                os.kill(item["pid"], signal.SIGKILL)
                item["pid"] = bystander.pid
        (second.root / "run" / "processes.json").write_text(json.dumps(raw))

        status = obsctl("stack", "status", "--dir", str(second.root))
        assert status.returncode == 1
        assert "not running" in status.stdout

        began = time.monotonic()
        result = obsctl("stack", "down", "--dir", str(second.root))
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - began < 15
        assert bystander.poll() is None, "down killed a process the stack did not start"
        wait_for("the stopped servers' ports to close", lambda: not listeners_in_range(base), 10)
        assert not listeners_in_range(base), listeners_in_range(base)
        assert not processes_mentioning(str(second.root))
    finally:
        bystander.kill()
        bystander.wait()
        obsctl("stack", "down", "--dir", str(second.root))


def test_down_on_an_empty_dir_is_harmless(tmp_path: Path) -> None:
    result = obsctl("stack", "down", "--dir", str(tmp_path))
    assert result.returncode == 0
    assert "nothing recorded" in result.stderr


def test_status_of_a_dir_without_a_stack_fails_clearly(tmp_path: Path) -> None:
    result = obsctl("stack", "status", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "no stack in" in result.stderr


def test_foreground_stack_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    base = SPARE_PORT_BASES[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "obsctl", "stack", "up", "--dir", str(tmp_path),
         "--port-base", str(base), "--foreground"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "press Ctrl-C" in line:
                break
        assert any(line.startswith("exporter ") for line in seen), "".join(seen)
        # What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            obsctl("stack", "down", "--dir", str(tmp_path))
    assert proc.returncode == 0, rest
    assert "stopping the stack" in rest and "mariadb          stopped" in rest
    assert not listeners_in_range(base), listeners_in_range(base)
