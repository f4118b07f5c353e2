"""What a drill needs of the system it runs against, and the part every target shares.

The local stack (``obsctl.drills.local``) and a remote target (``obsctl.drills.remote``) both
observe through the HTTP APIs of Prometheus, Alertmanager and the exporter: ``ObservedSystem``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from obsctl.drills.scenarios import Expectation, Scenario
from obsctl.silences import Silences

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
    mentions: tuple[str, ...] = ()  # the mobiles a DingTalk message @-mentions, when known


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
    def prometheus_query(self, expr: str) -> list[dict[str, Any]]: ...
    def alertmanager_alerts(self) -> list[dict[str, Any]]: ...
    def alertmanager_silences(self) -> list[dict[str, Any]]: ...
    def dingtalk_messages(self, since: float) -> list[Message]: ...
    def emails(self, since: float) -> list[Message]: ...
    def label_alerts(self, drill_id: str, expected: list[Expectation]) -> None: ...
    def unlabel_alerts(self, drill_id: str) -> None: ...
    # The dead man's switch (obsctl deadman), for the scenarios that stop the alert path.
    def deadman_health(self) -> tuple[int, dict[str, Any]]: ...
    def deadman_messages(self, since: float) -> list[Message]: ...
    def mark_deadman(self, drill_id: str, ttl: float) -> str: ...
    def unmark_deadman(self, drill_id: str) -> str: ...


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

    def prometheus_query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query; DrillError when Prometheus refuses it."""
        response = httpx.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=5
        )
        body = response.json()
        if body.get("status") != "success":
            raise DrillError(f"Prometheus refused {expr}: {body.get('error', response.text)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Active alerts in Alertmanager."""
        response = httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5)
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def alertmanager_silences(self) -> list[dict[str, Any]]:
        """Silences in force in Alertmanager."""
        return Silences(self.alertmanager_url).active()


def wait_until(deadline: float, poll: float = 1.0) -> bool:
    """Sleep one poll interval; False once the deadline has passed."""
    if time.time() >= deadline:
        return False
    time.sleep(min(poll, max(0.0, deadline - time.time())))
    return True
