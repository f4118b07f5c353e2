"""The system a drill acts on and observes; here the local stack, through its stack.env.

A remote target (``obsctl.drills.remote``) observes the same way, through the HTTP APIs of
Prometheus, Alertmanager and the exporter, so that part lives in ``ObservedSystem``.
"""

from __future__ import annotations

import mailbox
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from obsctl.stack import envfile, manager
from obsctl.stack.layout import StackLayout
from obsctl.stack.process import ProcessTable, find_ours

if TYPE_CHECKING:
    from obsctl.drills.scenarios import Expectation, Scenario

Step = Callable[[], object]


class DrillError(RuntimeError):
    """A drill cannot go on; the message says why."""


@dataclass(frozen=True)
class Message:
    """A notification that arrived: a DingTalk message or an email."""

    received_at: float
    channel: str  # dingtalk:<target> | email
    title: str
    text: str


class DrillTarget(Protocol):
    """What a drill needs of the system it runs against (the local stack or a remote target)."""

    @property
    def description(self) -> str: ...
    @property
    def state_file(self) -> Path: ...
    def fault(
        self, scenario: Scenario, variant: str | None, drill_id: str
    ) -> tuple[Step, Step]: ...
    def expectations(self, scenario: Scenario) -> list[Expectation]: ...
    def servers_answering(self) -> dict[str, bool]: ...
    def exporter_health(self, group: str = "") -> tuple[int, dict[str, Any]]: ...
    def prometheus_alerts(self) -> list[dict[str, Any]]: ...
    def alertmanager_alerts(self) -> list[dict[str, Any]]: ...
    def dingtalk_messages(self, since: float) -> list[Message]: ...
    def emails(self, since: float) -> list[Message]: ...
    def label_alerts(self, drill_id: str) -> None: ...
    def unlabel_alerts(self, drill_id: str) -> None: ...


class ObservedSystem:
    """What every drill target can be asked over HTTP: the exporter, Prometheus, Alertmanager."""

    prometheus_url: str
    alertmanager_url: str
    exporter_url: str

    def exporter_health(self, group: str = "") -> tuple[int, dict[str, Any]]:
        """Status code and body of the exporter's /health[/group]."""
        url = f"{self.exporter_url}/health" + (f"/{group}" if group else "")
        try:
            response = httpx.get(url, timeout=2)
            return response.status_code, response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return 0, {"error": str(exc)}

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds (pending and firing)."""
        body = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5).json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Active alerts in Alertmanager."""
        response = httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5)
        alerts: list[dict[str, Any]] = response.json()
        return alerts


@dataclass
class StackTarget(ObservedSystem):
    """The local stack in one directory: its servers, URLs, sinks and knobs."""

    layout: StackLayout
    env: dict[str, str]

    def __post_init__(self) -> None:
        self.prometheus_url = self.env["PROMETHEUS_URL"]
        self.alertmanager_url = self.env["ALERTMANAGER_URL"]
        self.exporter_url = f"http://{self.env['OBSCTL_LISTEN']}"

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
        inject, restore = scenario.actions(variant)
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
            self.env["DINGTALK_ONCALL_TOKEN"]: "oncall",
            self.env["DINGTALK_TEAM_TOKEN"]: "team",
            self.env.get("DINGTALK_HEARTBEAT_TOKEN", ""): "heartbeat",
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
            found.append(Message(received, channel, markdown.get("title", ""), text))
        return found

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
        record = ProcessTable(self.layout.run_dir / "processes.json").load().get(name)
        proc = find_ours(record) if record else None
        if proc is None:
            return False
        os.kill(proc.pid, sig)
        return True

    def restart_missing_servers(self) -> None:
        """`obsctl stack up` again: starts whatever is not running, leaves the rest alone."""
        manager.up(self.layout.root, None, lambda _: None, do_install=False)

    def label_alerts(self, drill_id: str) -> None:
        """Add the external label drill=<id> to every alert Prometheus sends."""
        self._render_prometheus_config(drill_id)

    def unlabel_alerts(self, drill_id: str) -> None:
        """Remove the drill label again."""
        self._render_prometheus_config(None)

    def _render_prometheus_config(self, drill_id: str | None) -> None:
        from obsctl.stack.services import render_prometheus_config

        render_prometheus_config(self.layout, drill_id=drill_id)
        response = httpx.post(f"{self.env['PROMETHEUS_URL']}/-/reload", timeout=10)
        if response.status_code != 200:
            raise DrillError(f"Prometheus refused the reload: {response.text.strip()}")


def email_message(msg: EmailMessage | mailbox.MaildirMessage, received_at: float) -> Message:
    """A received email as a Message: decoded subject, every text part concatenated."""
    subject = str(make_header(decode_header(msg.get("Subject", ""))))
    parts = [msg] if not msg.is_multipart() else list(msg.walk())
    text = ""
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text += payload.decode(part.get_content_charset() or "utf-8", "replace")
    return Message(received_at, "email", subject, text)


def _iso_to_unix(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait_until(deadline: float, poll: float = 1.0) -> bool:
    """Sleep one poll interval; False once the deadline has passed."""
    if time.time() >= deadline:
        return False
    time.sleep(min(poll, max(0.0, deadline - time.time())))
    return True
