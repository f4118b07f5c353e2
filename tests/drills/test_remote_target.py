"""Remote drill targets without a drill: the config, the --yes gate, actions, label tool, IMAP."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.header import Header
from email.mime.text import MIMEText
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from pydantic import SecretStr

from obsctl.configfile import ConfigError
from obsctl.drills import prometheus_label
from obsctl.drills.actions import HttpAction, RunAction, perform_all
from obsctl.drills.mailbox import ImapMailbox
from obsctl.drills.remote import RemoteTarget, load_target
from obsctl.drills.runner import DrillRun
from obsctl.drills.scenarios import SCENARIOS
from obsctl.drills.target import DrillError, Message
from obsctl.mixin.config import load as load_mixin
from obsctl.stack.fakes.launcher import free_port, start_fake

from conftest import imap_server, traversable_tmp_dir, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "drills" / "targets" / "staging.example.yaml"


def _config(tmp_path: Path, **changes: Any) -> Path:
    raw: dict[str, Any] = {
        "name": "staging",
        "prometheus": "http://127.0.0.1:1",
        "alertmanager": "http://127.0.0.1:2",
        "exporter": "http://127.0.0.1:3",
        "relay": {"url": "http://127.0.0.1:4", "token": "t"},
        "mailbox": {"imap": {"host": "mail.example", "username": "u", "password": "pw-123"}},
        "drill_label": {"set": [{"run": ["true"]}], "clear": [{"run": ["true"]}]},
        "faults": {
            "mysql-down": {
                "inject": [{"run": ["touch", str(tmp_path / "injected")]}],
                "restore": [{"run": ["touch", str(tmp_path / "restored")]}],
                "variants": {
                    "hang": {"inject": [{"run": ["true"]}], "restore": [{"run": ["true"]}]}
                },
            },
            "queue-backlog": {
                "labels": {"queue": "render"},
                "inject": [{"http": {"method": "PUT", "url": "http://127.0.0.1:5/pause"}}],
                "restore": [{"http": {"url": "http://127.0.0.1:5/resume"}}],
            },
        },
        "state_file": "state/active.json",
    }
    raw.update(changes)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --- the config --------------------------------------------------------------------------


def test_a_valid_config_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = load_target(_config(tmp_path))
    target = RemoteTarget(config)
    assert target.state_file == tmp_path / "state" / "active.json"
    [(_, labels)] = target.expectations(SCENARIOS["queue-backlog"])
    assert labels == {"queue": "render"}, "the target's own queue name replaces the stack's"
    plan = target.plan(SCENARIOS["mysql-down"], None)
    assert plan[0] == "label alerts:  run: true"
    assert plan[1] == f"inject:        run: touch {tmp_path / 'injected'}"


def test_the_shipped_example_is_a_valid_config() -> None:
    env = {"STAGING_RELAY_TOKEN": "x", "STAGING_ADMIN_TOKEN": "y", "STAGING_IMAP_PASSWORD": "z",
           "STAGING_DEADMAN_TOKEN": "w"}  # fmt: skip
    config = load_target(EXAMPLE, env)
    assert set(config.faults) == set(SCENARIOS), "the example shows every scenario"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"faults": {"disk-full": {"inject": [{"run": ["x"]}], "restore": [{"run": ["y"]}]}}},
         "faults: Value error, unknown scenario disk-full; scenarios: mysql-down"),
        ({"faults": {"api-errors": {"inject": [{"run": ["x"]}], "restore": [{"run": ["y"]}],
                                    "variants": {"hang": {"inject": [{"run": ["x"]}],
                                                          "restore": [{"run": ["y"]}]}}}}},
         "api-errors: unknown variant hang (variants: none)"),
        ({"prometheus": "prometheus:9090"},
         "prometheus: Value error, expected an http(s) URL such as http://prometheus:9090, found "
         "'prometheus:9090'"),
        ({"faults": {"api-errors": {"inject": [], "restore": [{"run": ["y"]}]}}},
         "faults.api-errors.inject: List should have at least 1 item"),
        ({"mailbox": None}, "mailbox: Input should be a valid dictionary"),
        ({"faults": {"alert-path-down": {"inject": [{"run": ["x"]}], "restore": [{"run": ["y"]}]}}},
         "alert-path-down stops the alert path: only the dead man's switch can tell, so name it "
         "(deadman: {url, token})"),
        ({"pager": "yes"}, "pager: unknown key"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_target(_config(tmp_path, **changes))
    assert expected in str(caught.value)
    assert "pw-123" not in str(caught.value)


def test_a_missing_secret_variable_is_named(tmp_path: Path) -> None:
    path = _config(tmp_path, relay={"url": "http://127.0.0.1:4", "token": "${NO_SUCH_TOKEN}"})
    with pytest.raises(ConfigError, match=r"relay\.token: .*NO_SUCH_TOKEN"):
        load_target(path, {})


# --- the --yes gate ----------------------------------------------------------------------


def _obsctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsctl", *args], capture_output=True, text=True, timeout=60
    )


def test_without_yes_the_plan_is_shown_and_nothing_is_touched(tmp_path: Path) -> None:
    done = _obsctl("drill", "run", "mysql-down", "--target", str(_config(tmp_path)))
    assert done.returncode == 2, done.stderr
    assert "drill mysql-down would act on target staging (prometheus http://127.0.0.1:1)" in (
        done.stderr
    )
    assert f"inject:        run: touch {tmp_path / 'injected'}" in done.stderr
    assert "re-run with --yes" in done.stderr
    assert not (tmp_path / "injected").exists() and not (tmp_path / "state").exists()


def test_list_shows_what_a_target_can_run(tmp_path: Path) -> None:
    done = _obsctl("drill", "list", "--target", str(_config(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "mysql-down       on staging [variants: hang]",
        "                 expects DependencyDown{dependency=mysql}",
        "queue-backlog    on staging",
        "                 expects QueueBacklogHigh{queue=render}",
    ]


def test_dir_and_target_together_are_refused(tmp_path: Path) -> None:
    done = _obsctl("drill", "run", "mysql-down", "--dir", str(tmp_path), "--target",
                   str(_config(tmp_path)), "--yes")  # fmt: skip
    assert done.returncode == 2 and "use it or --target, not both" in done.stderr


def test_a_scenario_the_target_does_not_configure_is_refused(tmp_path: Path) -> None:
    done = _obsctl("drill", "run", "cos-down", "--target", str(_config(tmp_path)), "--yes")
    assert done.returncode == 1
    assert (
        "target staging has no fault for cos-down (its config names: mysql-down, queue-backlog)"
        in (done.stderr)
    )
    assert not (tmp_path / "injected").exists()


def test_a_broken_target_config_is_reported_before_anything_runs(tmp_path: Path) -> None:
    path = _config(tmp_path, exporter="nowhere")
    done = _obsctl("drill", "run", "mysql-down", "--target", str(path), "--yes")
    assert done.returncode == 1
    assert f"{path}: invalid config" in done.stderr and "exporter:" in done.stderr


def test_a_leftover_of_a_killed_remote_drill_is_undone_first(tmp_path: Path) -> None:
    cleared = tmp_path / "cleared"
    path = _config(
        tmp_path,
        drill_label={"set": [{"run": ["true"]}], "clear": [{"run": ["touch", str(cleared)]}]},
    )
    target = RemoteTarget(load_target(path))
    target.state_file.parent.mkdir(parents=True)
    target.state_file.write_text(json.dumps({"scenario": "mysql-down", "drill_id": "d-1"}))
    demo = load_mixin(REPO / "obsctl.yaml")
    run = DrillRun(target, SCENARIOS["mysql-down"], None, tmp_path / "j.json", lambda _: None, demo)
    assert "restored after an interrupted mysql-down drill (d-1)" in run._recover_leftovers()
    assert (tmp_path / "restored").exists() and cleared.exists()
    assert not target.state_file.exists()


def test_a_drill_refuses_at_once_while_another_holds_the_system_and_touches_nothing(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path)
    target = RemoteTarget(load_target(path))
    target.state_file.parent.mkdir(parents=True)
    running = {"scenario": "mysql-down", "drill_id": "d-running"}
    target.state_file.write_text(json.dumps(running))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from obsctl.drills.lock import drill_lock\n"
         "with drill_lock(Path(sys.argv[1]), 'mysql-down', 'd-running'):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(60)\n",
         str(target.state_file)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        said: list[str] = []
        demo = load_mixin(REPO / "obsctl.yaml")
        began = time.monotonic()
        journal = DrillRun(target, SCENARIOS["mysql-down"], None, tmp_path / "j.json",
                           said.append, demo).run()  # fmt: skip
        elapsed = time.monotonic() - began
        done = _obsctl("drill", "run", "mysql-down", "--target", str(path), "--yes",
                       "--project", str(REPO))  # fmt: skip
    finally:
        holder.kill()
        holder.wait()

    assert journal.status == "locked" and elapsed < 5
    assert "another drill is running on this system: mysql-down (d-running, pid" in said[-1]
    assert json.loads(target.state_file.read_text()) == running, "its state is left alone"
    assert not (tmp_path / "restored").exists() and not (tmp_path / "injected").exists()
    assert done.returncode == 4, done.stdout + done.stderr
    journal_again = DrillRun(target, SCENARIOS["mysql-down"], None, tmp_path / "k.json",
                             said.append, demo)  # fmt: skip
    assert "restored after an interrupted mysql-down drill (d-running)" in (
        journal_again._recover_leftovers()
    ), "once the holder is gone, its state is a crashed drill's"


# --- the dead man's switch of a remote target ----------------------------------------------

DEADMAN_TOKEN = "deadman-remote-7f3e"
ROBOT_SECRET = "SECremote0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef012345678"
WATCHDOG = {"version": "4", "status": "firing", "receiver": "heartbeat",
            "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog"}}]}  # fmt: skip


@pytest.fixture
def remote_deadman(tmp_path: Path) -> Iterator[str]:
    """A real `obsctl deadman` (10 s timeout) paging a fake robot: the remote target's switch."""
    robots = tmp_path / "robots.json"
    robots.write_text(json.dumps({"tok-oncall": {"secret": ROBOT_SECRET}}))
    store = tmp_path / "messages.jsonl"
    robot = start_fake(
        "obsctl.stack.fakes.dingtalk", ["--robots", str(robots), "--store", str(store)]
    )
    port = free_port()
    config = tmp_path / "deadman.yaml"
    mobiles = load_mixin(REPO / "obsctl.yaml").oncall.mobiles
    config.write_text(yaml.safe_dump({
        "listen": f"127.0.0.1:{port}", "webhook": {"token": DEADMAN_TOKEN},
        "state_dir": "deadman-state",
        "heartbeats": [{"name": "alert-path", "timeout": "10s", "reminder": 0}],
        "notify": {"dingtalk": {"url": f"{robot.base_url}/robot/send?access_token=tok-oncall",
                                "secret": ROBOT_SECRET, "mobiles": mobiles}},
    }))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "obsctl", "deadman", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the deadman", lambda: _answers(f"{url}/ready"), 20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        robot.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _beat(url: str) -> None:
    headers = {"Authorization": f"Bearer {DEADMAN_TOKEN}"}
    httpx.post(f"{url}/heartbeat/alert-path", json=WATCHDOG, headers=headers).raise_for_status()


def test_a_remote_alert_path_drill_takes_its_proof_from_the_deadman(
    tmp_path: Path, remote_deadman: str
) -> None:
    fault = {"inject": [{"run": ["true"]}], "restore": [{"run": ["true"]}]}
    path = _config(tmp_path, faults={"alert-path-down": fault},
                   deadman={"url": remote_deadman, "token": DEADMAN_TOKEN})  # fmt: skip
    target = RemoteTarget(load_target(path))
    scenario = SCENARIOS["alert-path-down"]
    assert target.plan(scenario, None) == [
        f"mark drill:    PUT {remote_deadman}/api/v1/drill",
        "inject:        run: true",
        "restore:       run: true",
        "remove label:  run: true",
        f"unmark drill:  DELETE {remote_deadman}/api/v1/drill/<id>",
    ], "no alert to label: only the switch is told"
    assert target.servers_answering()["deadman"] is True
    demo = load_mixin(REPO / "obsctl.yaml")
    run = DrillRun(target, scenario, None, tmp_path / "j.json", lambda _: None, demo)
    drill_id = run.journal.drill_id

    assert "heartbeat alert-path is waiting" in run._deadman_problems()["dead man's switch"]
    _beat(remote_deadman)
    assert run._deadman_problems() == {}
    assert f"announces the outage as drill {drill_id}" in run._label_alerts()
    run.journal.moments["fault"] = time.time()
    assert "(timeout 10s)" in run._deadman_missing()
    # Where the project's deadman.yaml pages (email is read back over IMAP, as for alerts).
    assert run._deadman_channels() == ["dingtalk:oncall", "email"]
    # The switch's own record of what DingTalk accepted, with the @-mentions: the proof.
    assert "WatchdogMissing alert-path" in run._deadman_notified("dingtalk:oncall", False)
    [page] = target.deadman_messages(run.journal.moments["fault"])
    assert page.channel == "dingtalk:oncall" and page.mentions == tuple(demo.oncall.mobiles)
    assert page.title == "[演练] [告警中] WatchdogMissing alert-path"

    run._restore_began = run.journal.moments["restore"] = time.time()
    _beat(remote_deadman)
    assert "a Watchdog arrived" in run._deadman_back()
    assert "[演练] [已恢复] WatchdogMissing" in run._deadman_notified("dingtalk:oncall", True)
    assert run._unlabel_alerts() == "the dead man's switch's drill mark removed"
    assert httpx.get(f"{remote_deadman}/health").json()["drill"] is None


def test_a_page_without_the_drill_id_or_the_mentions_is_not_the_drills_proof(
    tmp_path: Path, remote_deadman: str
) -> None:
    fault = {"inject": [{"run": ["true"]}], "restore": [{"run": ["true"]}]}
    path = _config(tmp_path, faults={"alert-path-down": fault},
                   deadman={"url": remote_deadman, "token": DEADMAN_TOKEN})  # fmt: skip
    target = RemoteTarget(load_target(path))
    demo = load_mixin(REPO / "obsctl.yaml")
    run = DrillRun(target, SCENARIOS["alert-path-down"], None, tmp_path / "j.json",
                   lambda _: None, demo)  # fmt: skip
    _beat(remote_deadman)
    run.journal.moments["fault"] = time.time()  # no mark: a real outage's page, unmarked
    run._deadman_missing()
    [page] = wait_for("the page", lambda: target.deadman_messages(0), 15)
    assert page.title == "[告警中] WatchdogMissing alert-path"
    assert "does not name drill" in run._deadman_message_problem(page, demo.oncall.mobiles)
    unmentioned = Message(page.received_at, page.channel, page.title,
                          f"{page.text} {run.journal.drill_id}")  # fmt: skip
    assert "does not @-mention 13800000000" in run._deadman_message_problem(
        unmentioned, demo.oncall.mobiles
    )

    # A crashed remote drill's mark is cleared by the next run, with its restore.
    target.mark_deadman("alert-path-down-crashed", 300)
    target.state_file.parent.mkdir(parents=True)
    target.state_file.write_text(
        json.dumps({"scenario": "alert-path-down", "drill_id": "alert-path-down-crashed"})
    )
    assert "restored after an interrupted alert-path-down drill" in run._recover_leftovers()
    assert httpx.get(f"{remote_deadman}/health").json()["drill"] is None


def test_the_wait_for_firing_follows_the_alerts_for_duration(tmp_path: Path) -> None:
    from obsctl.mixin.config import AlertName

    mixin = load_mixin(REPO / "obsctl.yaml")
    slow = mixin.model_copy(deep=True)
    slow.alerts[AlertName.DEPENDENCY_DOWN].for_ = 600.0  # a target paged only after 10 minutes
    target = RemoteTarget(load_target(_config(tmp_path)))

    def timeout(config: Any) -> float:
        run = DrillRun(target, SCENARIOS["mysql-down"], None, tmp_path / "j", print, config)
        return run.firing_timeout(AlertName.DEPENDENCY_DOWN)

    assert timeout(slow) - timeout(mixin) == 600.0 - (
        mixin.policy(AlertName.DEPENDENCY_DOWN).for_ or 0
    )
    assert timeout(mixin) >= 150.0, "the shipped 20 s alerts keep the tested margin"


# --- actions -----------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                          "body": json.loads(body or b"null")})  # fmt: skip
        status = 200 if self.path.startswith("/ok") else 409
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"conflict: workers already paused" if status != 200 else b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_action_sends_the_token_and_fills_in_the_drill_id(recorder: str) -> None:
    action = HttpAction.model_validate(
        {"http": {"method": "PUT", "url": f"{recorder}/ok/{{drill_id}}", "bearer_token": "s3",
                  "json": {"reason": "drill {drill_id}", "n": 1}}}
    )  # fmt: skip
    assert action.perform("d-7") == f"PUT {recorder}/ok/d-7 -> 200"
    assert _Recorder.seen == [
        {"path": "/ok/d-7", "auth": "Bearer s3", "body": {"reason": "drill d-7", "n": 1}}
    ]
    assert "s3" not in action.describe()


def test_http_action_failure_names_url_status_and_body(recorder: str) -> None:
    action = HttpAction.model_validate({"http": {"method": "PUT", "url": f"{recorder}/pause"}})
    with pytest.raises(DrillError, match=r"PUT .*/pause answered 409: conflict: workers"):
        action.perform("d")
    accepted = HttpAction.model_validate(
        {"http": {"method": "PUT", "url": f"{recorder}/pause", "expect_status": [409]}}
    )
    assert accepted.perform("d").endswith("-> 409")
    refused = HttpAction.model_validate({"http": {"url": f"http://127.0.0.1:{free_port()}/"}})
    with pytest.raises(DrillError, match="ConnectError"):
        refused.perform("d")


def test_run_action_failures_say_what_happened(tmp_path: Path) -> None:
    assert RunAction(run=["echo", "{drill_id}"]).perform("d-1") == "d-1"
    with pytest.raises(DrillError, match=r"`sh -c echo nope >&2; exit 3` exited 3: nope"):
        RunAction(run=["sh", "-c", "echo nope >&2; exit 3"]).perform("d")
    with pytest.raises(DrillError, match="no-such-tool: command not found"):
        RunAction(run=["no-such-tool"]).perform("d")
    started = time.monotonic()
    with pytest.raises(DrillError, match=r"still running after 0.5s"):
        RunAction(run=["sleep", "30"], timeout=0.5).perform("d")
    assert time.monotonic() - started < 5


def test_a_restore_tries_every_action_even_after_one_fails(tmp_path: Path) -> None:
    actions = [RunAction(run=["false"]), RunAction(run=["touch", str(tmp_path / "second")])]
    with pytest.raises(DrillError, match="`false` exited 1"):
        perform_all(list(actions), "d", keep_going=True)
    assert (tmp_path / "second").exists()
    (tmp_path / "second").unlink()
    with pytest.raises(DrillError):
        perform_all(list(actions), "d")
    assert not (tmp_path / "second").exists(), "an inject stops at the first failure"


# --- the label tool, against a real Prometheus ----------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "# hand-written, with comments that must survive a drill\n"
        "global:\n  scrape_interval: 15s  # keep\n  external_labels:\n    site: sh\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'data'}", "--web.enable-lifecycle"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus ready", lambda: _ready(f"{url}/-/ready"), 30)
        yield config, url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _loaded(url: str) -> dict[str, Any]:
    raw = httpx.get(f"{url}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
    loaded: dict[str, Any] = yaml.safe_load(raw)
    return loaded


def _marks(url: str) -> list[tuple[str, str]]:
    """(regex, replacement) of each drill mark in the config Prometheus runs."""
    relabels = (_loaded(url).get("alerting") or {}).get("alert_relabel_configs") or []
    return [(r["regex"], r["replacement"]) for r in relabels if r.get("target_label") == "drill"]


def test_label_tool_sets_and_clears_the_label_and_restores_the_file_exactly(
    prometheus: tuple[Path, str],
) -> None:
    config, url = prometheus
    original = config.read_bytes()
    done = _obsctl("drill", "label", "set", "d-42", "--prometheus-config", str(config),
                   "--reload-url", f"{url}/-/reload",
                   "--alerts", "DependencyDown/dependency=mysql,ApiHighErrorRate")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _marks(url) == [("DependencyDown;mysql", "d-42"), ("ApiHighErrorRate", "d-42")]
    assert _loaded(url)["global"]["external_labels"] == {"site": "sh"}, "no label on all alerts"
    # A second set (the next drill after a crash) still starts from the original.
    prometheus_label.set_label(config, f"{url}/-/reload", "d-43", [("QueueStalled", {})])
    assert _marks(url) == [("QueueStalled", "d-43")]

    done = _obsctl("drill", "label", "clear", "--prometheus-config", str(config),
                   "--reload-url", f"{url}/-/reload")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert config.read_bytes() == original
    assert _marks(url) == []
    assert not prometheus_label.backup_of(config).exists()
    assert "no drill label set" in prometheus_label.clear_label(config, f"{url}/-/reload")


def test_label_tool_puts_the_original_back_when_the_reload_fails(
    prometheus: tuple[Path, str],
) -> None:
    config, _ = prometheus
    original = config.read_bytes()
    dead = f"http://127.0.0.1:{free_port()}/-/reload"
    with pytest.raises(DrillError, match="cannot reload Prometheus"):
        prometheus_label.set_label(config, dead, "d-1", [("ApiDown", {})])
    assert config.read_bytes() == original
    assert not prometheus_label.backup_of(config).exists()


# --- reading alert emails back over IMAP -----------------------------------------------------


@pytest.fixture
def maildir() -> Iterator[Path]:
    root = traversable_tmp_dir("obsctl-maildir-")
    try:
        yield root / "maildir"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _deliver(box: Path, subject: str, body: str, at: float) -> None:
    msg = MIMEText(body, "html", "utf-8")
    msg["Subject"] = Header(subject, "utf-8")
    msg["From"], msg["To"] = "alertmanager@example.com", "oncall@example.com"
    key = mailbox.Maildir(box, create=True).add(msg)
    os.utime(box / "new" / key, (at, at))  # Dovecot takes the arrival time from the file


def test_imap_mailbox_reads_only_what_arrived_since(maildir: Path) -> None:
    now = time.time()
    _deliver(maildir, "[FIRING:1] 旧的 old alert", "<p>old</p>", now - 3_600)
    _deliver(maildir, "[FIRING:1] DependencyDown 严重", "<td>DependencyDown drill=d-9</td>", now)
    with imap_server(maildir) as server:
        box = ImapMailbox(host="127.0.0.1", port=server.port, security="none",
                          username=server.username, password=server.password)  # fmt: skip
        [message] = box.messages_since(now - 60)
        assert message.title == "[FIRING:1] DependencyDown 严重"
        assert "drill=d-9" in message.text and message.channel == "email"
        assert abs(message.received_at - now) < 2
        assert len(box.messages_since(now - 7_200)) == 2
        again = box.messages_since(now - 60)
        assert [m.title for m in again] == [message.title], "reading marks nothing as read"

        wrong = box.model_copy(update={"password": SecretStr("not-the-password")})
        with pytest.raises(DrillError) as caught:
            wrong.messages_since(now)
        assert f"imap oncall@127.0.0.1:{server.port}/INBOX" in str(caught.value)
        assert "not-the-password" not in str(caught.value)


def test_imap_over_tls_and_starttls_verifies_the_server_certificate(maildir: Path) -> None:
    _deliver(maildir, "[FIRING:1] DependencyDown", "<td>drill=d-3</td>", time.time())
    with imap_server(maildir, tls=True) as server:
        assert server.tls_port is not None
        ca = server.ca_file
        account = {"host": "127.0.0.1", "username": server.username, "password": server.password}
        imaps = ImapMailbox(**account, port=server.tls_port, security="tls", ca_file=ca)
        starttls = ImapMailbox(**account, port=server.port, security="starttls", ca_file=ca)
        for box in (imaps, starttls):
            [message] = box.messages_since(time.time() - 60)
            assert "drill=d-3" in message.text
        untrusted = ImapMailbox(**account, port=server.tls_port, security="tls")
        with pytest.raises(DrillError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.messages_since(0)
