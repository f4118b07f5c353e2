"""The dead man's switch as a drill sees it: its health, a drill's mark, what it delivered.

A drill that stops the alert path asks the switch (``obsctl deadman``) to announce the outage it
is about to cause as a drill (``PUT /api/v1/drill``), watches its ``/health`` turn missing and
back, and, on a target whose robot obsctl cannot read, takes the switch's own record of what
DingTalk accepted (``GET /api/v1/deliveries``) as the proof, as it takes the relay's for alerts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from obsctl.drills.target import DrillError, Message
from obsctl.mixin.config import ONCALL

# The switch's robot is the on-call robot (obsctl.yaml `oncall`, see alertmanager/deadman.yaml).
DINGTALK_CHANNEL = f"dingtalk:{ONCALL}"


@dataclass(frozen=True)
class DeadmanClient:
    """One dead man's switch, reached over HTTP with its webhook token."""

    url: str
    token: str | None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def health(self) -> tuple[int, dict[str, Any]]:
        """Status code and body of /health (0 and the error when it does not answer)."""
        try:
            response = httpx.get(f"{self.url}/health", timeout=3)
            return response.status_code, response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return 0, {"error": f"{type(exc).__name__}: {exc}"}

    def answering(self) -> bool:
        """Whether the switch serves (/ready)."""
        try:
            return httpx.get(f"{self.url}/ready", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def mark(self, drill_id: str, ttl: float) -> str:
        """Announce the outage the drill causes as drill `drill_id`, for at most `ttl` seconds."""
        body = {"id": drill_id, "ttl_seconds": round(ttl)}
        response = self._call("PUT", "/api/v1/drill", body)
        until = time.strftime("%H:%M:%S", time.localtime(response.json()["drill"]["until"]))
        return f"the dead man's switch announces the outage as drill {drill_id} (until {until})"

    def unmark(self, drill_id: str) -> str:
        """Remove the drill's mark (nothing happens when it is not set)."""
        cleared = self._call("DELETE", f"/api/v1/drill/{drill_id}").json().get("cleared")
        return "the dead man's switch's drill mark removed" if cleared else "no drill mark set"

    def deliveries(self, since: float) -> list[Message]:
        """The DingTalk messages the switch had accepted since a unix time."""
        response = self._call("GET", "/api/v1/deliveries", params={"since": since})
        return [
            Message(d["sent_at"], DINGTALK_CHANNEL, d["title"], d["text"], tuple(d["mobiles"]))
            for d in response.json()["deliveries"]
            if d["channel"] == "dingtalk"
        ]

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        try:
            response = httpx.request(
                method, f"{self.url}{path}", json=body, params=params,
                headers=self._headers(), timeout=5,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise DrillError(f"dead man's switch {self.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DrillError(
                f"dead man's switch {self.url} answered {response.status_code} to {method} "
                f"{path}: {response.text[:200]}"
            )
        return response


class DeadmanObserver:
    """What a drill target offers about its dead man's switch, when it names one."""

    deadman_client: DeadmanClient | None = None

    def _deadman(self) -> DeadmanClient:
        if self.deadman_client is None:
            raise DrillError(
                "this target names no dead man's switch (obsctl deadman): a local stack from "
                "before it ran one needs `obsctl stack down` and `up`; a target config needs "
                "`deadman: {url, token}`"
            )
        return self.deadman_client

    def deadman_health(self) -> tuple[int, dict[str, Any]]:
        """Status code and body of the switch's /health."""
        return self._deadman().health()

    def mark_deadman(self, drill_id: str, ttl: float) -> str:
        """Have the switch announce the outage this drill causes as a drill."""
        return self._deadman().mark(drill_id, ttl)

    def unmark_deadman(self, drill_id: str) -> str:
        """Remove the drill's mark from the switch."""
        return self._deadman().unmark(drill_id)
