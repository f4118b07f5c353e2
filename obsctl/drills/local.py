"""The local stack as a drill target: its servers, sinks and knobs, and each scenario's fault.

LOCAL_FAULTS holds, per scenario name, how the fault is injected and undone on this stack: the
counterpart of a remote target's ``faults:`` config (``obsctl.drills.remote``).
"""

from __future__ import annotations

import mailbox
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from obsctl.drills.deadman import DINGTALK_CHANNEL, DeadmanClient, DeadmanObserver
from obsctl.drills.mailbox import email_message
from obsctl.drills.prometheus_label import relabels
from obsctl.drills.scenarios import (
    BACKLOG_JOBS,
    PROVIDER,
    QUEUE,
    STORM_REQUESTS_PER_SECOND,
    STORM_USER_ID,
    UNSAFE_EVICTION_POLICY,
    Expectation,
    Scenario,
)
from obsctl.drills.target import DrillError, Message, ObservedSystem, Step
from obsctl.mixin import config as mixin_config
from obsctl.reload import ReloadError, reload
from obsctl.stack import envfile, manager
from obsctl.stack.checkout import demo_project
from obsctl.stack.configs import render_prometheus_config
from obsctl.stack.layout import StackLayout
from obsctl.stack.process import ProcessTable, find_ours
from obsctl.stack.secrets import robot_env
from obsctl.stack.services import REDIS_EVICTION_POLICY


@dataclass
class StackTarget(ObservedSystem, DeadmanObserver):
    """The local stack in one directory: its servers, URLs, sinks and knobs."""

    layout: StackLayout
    env: dict[str, str]

    def __post_init__(self) -> None:
        self.prometheus_url = self.env["PROMETHEUS_URL"]
        self.alertmanager_url = self.env["ALERTMANAGER_URL"]
        self.exporter_url = f"http://{self.env['OBSCTL_LISTEN']}"
        if "DEADMAN_URL" in self.env:  # absent from a stack started before it ran one
            self.deadman_client = DeadmanClient(
                self.env["DEADMAN_URL"], self.env.get("OBSCTL_DEADMAN_TOKEN")
            )

    @classmethod
    def open(cls, root: Path) -> StackTarget:
        """Attach to the stack in root (it must be up)."""
        env_file = root / "stack.env"
        if not env_file.exists():
            raise DrillError(f"no stack in {root}: run `obsctl stack up --dir {root}` first")
        return cls(manager.layout_for(root), envfile.read(env_file))

    @property
    def description(self) -> str:
        """Which system this is, for the journal and the progress lines."""
        return f"local stack {self.layout.root}"

    @property
    def state_file(self) -> Path:
        """Where a running drill notes what to undo should it be killed."""
        return self.layout.run_dir / "drill-active.json"

    def fault(self, scenario: Scenario, variant: str | None, drill_id: str) -> tuple[Step, Step]:
        """(inject, restore) for a scenario on this stack."""
        inject, restore = LOCAL_FAULTS[scenario.name].actions(variant)
        return (lambda: inject(self)), (lambda: restore(self))

    def expectations(self, scenario: Scenario) -> list[Expectation]:
        """The alerts the scenario must fire here, with the labels that pick them."""
        return scenario.expect

    # --- observing ---------------------------------------------------------------------

    def servers_answering(self) -> dict[str, bool]:
        """Each server of the stack and whether it answers."""
        return {s.name: s.answering for s in manager.status(self.layout.root)}

    def dingtalk_messages(self, since: float) -> list[Message]:
        """Messages the DingTalk endpoint accepted since a unix time, on every robot."""
        robots = {
            self.env.get(f"{robot_env(target)}_TOKEN", ""): target
            for target in mixin_config.load(demo_project().config_file).relay_targets()
        }
        response = httpx.get(
            f"{self.env['DINGTALK_SINK_URL']}/_messages", params={"accepted": "true"}, timeout=5
        )
        found = []
        for record in response.json()["messages"]:
            received = _iso_to_unix(record["received_at"])
            body = record.get("body") or {}
            if received < since or not isinstance(body, dict):
                continue
            markdown = body.get("markdown") or {}
            text = markdown.get("text") or (body.get("text") or {}).get("content", "")
            channel = f"dingtalk:{robots.get(record.get('token', ''), 'unknown')}"
            mentions = tuple((record.get("at") or {}).get("atMobiles") or ())
            found.append(Message(received, channel, markdown.get("title", ""), text, mentions))
        return found

    def deadman_messages(self, since: float) -> list[Message]:
        """What the on-call robot accepted (signature verified by the fake), the switch's too."""
        return [m for m in self.dingtalk_messages(since) if m.channel == DINGTALK_CHANNEL]

    def emails(self, since: float) -> list[Message]:
        """Emails in the SMTP sink's maildir delivered since a unix time."""
        box = Path(self.env["SMTP_SINK_DIR"])
        if not box.exists():
            return []
        found = []
        for key, msg in mailbox.Maildir(box, create=False).items():
            path = box / "new" / key
            if not path.exists():
                path = box / "cur" / key
            received = path.stat().st_mtime if path.exists() else 0.0
            if received >= since:
                found.append(email_message(msg, received))
        return found

    # --- acting ------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the demo platform's admin API."""
        response = httpx.request(
            method,
            f"{self.env['DEMO_APP_URL']}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.env['DEMO_ADMIN_TOKEN']}"},
            timeout=30,
        )
        if response.status_code >= 400:
            raise DrillError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def signal_server(self, name: str, sig: signal.Signals) -> bool:
        """Send sig to one server of the stack; False when it is not running."""
        record = ProcessTable(self.layout.processes_file).load().get(name)
        proc = find_ours(record) if record else None
        if proc is None:
            return False
        os.kill(proc.pid, sig)
        return True

    def restart_missing_servers(self) -> None:
        """`obsctl stack up` again: starts whatever is not running, leaves the rest alone."""
        manager.up(self.layout.root, None, lambda _: None, do_install=False)

    def label_alerts(self, drill_id: str, expected: list[Expectation]) -> None:
        """Mark the alerts the drill expects (and only those) drill=<id>."""
        marked = relabels(drill_id, [(alert.value, labels) for alert, labels in expected])
        self._render_prometheus_config(marked)

    def unlabel_alerts(self, drill_id: str) -> None:
        """Remove the drill marks again."""
        self._render_prometheus_config([])

    def _render_prometheus_config(self, marks: list[dict[str, Any]]) -> None:
        render_prometheus_config(self.layout, drill_relabels=marks)
        try:
            reload(f"{self.env['PROMETHEUS_URL']}/-/reload")
        except ReloadError as exc:
            raise DrillError(f"Prometheus did not reload: {exc}") from None


def _iso_to_unix(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- the faults, keyed by scenario name ------------------------------------------------

Action = Callable[[StackTarget], None]


@dataclass(frozen=True)
class LocalFault:
    """How one scenario's fault is injected into and undone on the local stack."""

    inject: Action
    restore: Action
    variants: dict[str, tuple[Action, Action]] = field(default_factory=dict)

    def actions(self, variant: str | None) -> tuple[Action, Action]:
        """(inject, restore) for the chosen variant."""
        if variant is None:
            return self.inject, self.restore
        return self.variants[variant]


def _stop(server: str) -> Action:
    def inject(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGKILL)

    return inject


def _hang(server: str) -> Action:
    def inject(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGSTOP)

    return inject


def _bring_back(server: str) -> Action:
    """Undo both stop and hang: resume a frozen process, restart a missing one."""

    def restore(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGCONT)
        target.restart_missing_servers()

    return restore


def _api_faults(error_rate: float, latency_ms: int) -> Action:
    def act(target: StackTarget) -> None:
        target.admin("PUT", "/admin/faults", {"error_rate": error_rate, "latency_ms": latency_ms})

    return act


def _backlog(target: StackTarget) -> None:
    target.admin("POST", "/admin/workers/pause")
    target.admin("POST", "/admin/workload/burst", {"count": BACKLOG_JOBS, "feature": QUEUE})


def _drain(target: StackTarget) -> None:
    target.admin("POST", "/admin/workers/resume")


def _provider_mode(mode: str) -> Action:
    def act(target: StackTarget) -> None:
        target.admin("PUT", f"/admin/providers/{PROVIDER}", {"mode": mode})

    return act


def _eviction_policy(policy: str) -> Action:
    """CONFIG SET the queue Redis's maxmemory-policy, as an operator's mistake would."""

    def act(target: StackTarget) -> None:
        import redis

        client = redis.Redis.from_url(target.env["OBSCTL_REDIS_URL"], socket_timeout=5)
        try:
            client.config_set("maxmemory-policy", policy)
        except redis.RedisError as exc:
            raise DrillError(f"cannot set Redis's maxmemory-policy to {policy}: {exc}") from None
        finally:
            client.close()

    return act


def _flood(requests_per_second: float) -> Action:
    """The demo platform's one flooding client (PUT /admin/flood); 0 stops it."""

    def act(target: StackTarget) -> None:
        flood = {"requests_per_second": requests_per_second, "user_id": STORM_USER_ID}
        target.admin("PUT", "/admin/flood", flood)

    return act


def _daily_stats(action: str) -> Action:
    """Pause or resume the demo platform's tasks_daily_stats aggregator."""

    def act(target: StackTarget) -> None:
        target.admin("POST", f"/admin/daily-stats/{action}")

    return act


def _config_cache_storm(on: bool) -> Action:
    """The demo platform's config cache miss storm (PUT /admin/config-cache); off refills it."""

    def act(target: StackTarget) -> None:
        target.admin("PUT", "/admin/config-cache", {"storm": on})

    return act


def _server_down(server: str) -> LocalFault:
    """Stop a server; the `hang` variant freezes it with SIGSTOP instead."""
    back = _bring_back(server)
    return LocalFault(_stop(server), back, {"hang": (_hang(server), back)})


LOCAL_FAULTS: dict[str, LocalFault] = {
    "mysql-down": _server_down("mariadb"),
    "redis-down": _server_down("redis"),
    "queue-backlog": LocalFault(_backlog, _drain),
    "redis-eviction-policy": LocalFault(
        _eviction_policy(UNSAFE_EVICTION_POLICY), _eviction_policy(REDIS_EVICTION_POLICY)
    ),
    "api-errors": LocalFault(_api_faults(0.05, 0), _api_faults(0.0, 0)),
    "api-latency": LocalFault(_api_faults(0.0, 400), _api_faults(0.0, 0)),
    "provider-outage": LocalFault(_provider_mode("timeout"), _provider_mode("ok")),
    "breaker-open": LocalFault(_provider_mode("submit_error"), _provider_mode("ok")),
    "dead-letter": LocalFault(_provider_mode("task_failure"), _provider_mode("ok")),
    "cos-down": LocalFault(_stop("s3"), _bring_back("s3")),
    "rate-limit-storm": LocalFault(_flood(STORM_REQUESTS_PER_SECOND), _flood(0)),
    "stats-lag": LocalFault(_daily_stats("pause"), _daily_stats("resume")),
    "cache-miss-storm": LocalFault(_config_cache_storm(True), _config_cache_storm(False)),
    "alert-path-down": _server_down("alertmanager"),
}
