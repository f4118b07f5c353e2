"""Claims kept where Alertmanager keeps them: a claim is a silence of exactly one alert.

The silence matches every label of the alert (so it mutes that alert and nothing else), names
the claimer as ``createdBy``, and carries a marker in its comment that ties it to the alert's
fingerprint and firing episode; that marker is how a second visit to the link, and the
escalation, know the alert is taken. The relay keeps no claim state of its own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import httpx

from obsctl.relay.claim_links import ClaimTicket
from obsctl.silences import Matcher

_MARKER = "[obsctl-claim {fingerprint} {started}]"
_MARKER_PATTERN = re.compile(r"\[obsctl-claim (\S+) (\d+)\]")


class AlertmanagerUnreachable(RuntimeError):
    """Alertmanager did not answer, or refused; the message says which."""


@dataclass(frozen=True)
class FiringAlert:
    """The alert a ticket points at, as Alertmanager holds it now."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: dt.datetime


@dataclass(frozen=True)
class Claim:
    """Who holds an alert, until when (an active claim silence)."""

    who: str
    until: dt.datetime
    silence_id: str


def marker(ticket: ClaimTicket) -> str:
    """The comment marker of a ticket's claim silence."""
    return _MARKER.format(fingerprint=ticket.fingerprint, started=ticket.started)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class ClaimDesk:
    """Reads alerts and claim silences from one Alertmanager, and records claims there."""

    def __init__(self, http: httpx.AsyncClient, alertmanager_url: str, timeout: float) -> None:
        self._http = http
        self._url = alertmanager_url.rstrip("/") + "/api/v2"
        self._timeout = timeout

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(
                method, self._url + path, timeout=self._timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise AlertmanagerUnreachable(
                f"Alertmanager cannot be reached ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise AlertmanagerUnreachable(
                f"Alertmanager answered {response.status_code}: {response.text.strip()[:200]}"
            )
        return response.json()

    async def alert(self, ticket: ClaimTicket) -> FiringAlert | None:
        """The ticket's alert if it still fires in the same episode, else None."""
        found = await self._call("GET", "/alerts", params={"active": "true"})
        for alert in found:
            if alert.get("fingerprint") != ticket.fingerprint:
                continue
            starts_at = _time(alert["startsAt"])
            if int(starts_at.timestamp()) != ticket.started:
                return None  # the same labels, a later episode
            return FiringAlert(alert["labels"], alert.get("annotations", {}), starts_at)
        return None

    async def episodes(self) -> dict[tuple[str, int], str]:
        """Every alert Alertmanager holds unresolved, by (fingerprint, episode start): its state
        ("active", or "suppressed" while silenced or inhibited)."""
        found = await self._call("GET", "/alerts", params={"active": "true"})
        return {
            (alert["fingerprint"], int(_time(alert["startsAt"]).timestamp())): alert.get(
                "status", {}
            ).get("state", "active")
            for alert in found
        }

    async def claim_of(self, ticket: ClaimTicket) -> Claim | None:
        """The active claim of a ticket's alert episode, if anyone holds it."""
        return (await self.claims()).get((ticket.fingerprint, ticket.started))

    async def claims(self) -> dict[tuple[str, int], Claim]:
        """Every active claim, by (fingerprint, episode start)."""
        silences = await self._call("GET", "/silences")
        held: dict[tuple[str, int], Claim] = {}
        for silence in silences:
            if silence.get("status", {}).get("state") != "active":
                continue
            found = _MARKER_PATTERN.search(silence.get("comment", ""))
            if found:
                key = (found.group(1), int(found.group(2)))
                claim = Claim(silence["createdBy"], _time(silence["endsAt"]), silence["id"])
                if key not in held or held[key].until < claim.until:
                    held[key] = claim
        return held

    async def claim(
        self, ticket: ClaimTicket, alert: FiringAlert, who: str, seconds: float, note: str
    ) -> Claim:
        """Silence exactly this alert for `seconds` in `who`'s name."""
        now = dt.datetime.now(dt.UTC)
        until = now + dt.timedelta(seconds=seconds)
        comment = f"{note} {marker(ticket)}" if note else f"claimed {marker(ticket)}"
        body = {
            "matchers": [Matcher(k, v).api() for k, v in sorted(alert.labels.items())],
            "startsAt": now.isoformat(),
            "endsAt": until.isoformat(),
            "createdBy": who,
            "comment": comment,
        }
        created = await self._call("POST", "/silences", json=body)
        return Claim(who, until, str(created["silenceID"]))
