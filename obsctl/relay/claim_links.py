"""Signed claim links: which alert a link claims, through which robot, until when.

A link is ``<claim.url>/claim/<payload>.<signature>``. The payload is base64url JSON naming the
robot target, the alert's Alertmanager fingerprint, the start of its firing episode and the
link's expiry; the signature is HMAC-SHA256 over the payload with ``claim.key``. A changed
character anywhere makes the link invalid, and the episode start keeps a link from claiming a
later episode of the same alert (that one's message carries its own link).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from obsctl.relay.alertmanager import Alert

PATH_PREFIX = "/claim/"


class BadLink(ValueError):
    """A claim link that is forged, damaged or expired; `reason` says which, for the page."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason  # cut, forged, unreadable or expired
        super().__init__(message)


@dataclass(frozen=True)
class ClaimTicket:
    """What a valid link claims."""

    target: str
    fingerprint: str
    # Unix seconds of the alert's startsAt: this episode and no later one.
    started: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ClaimLinks:
    """Makes and checks the claim links of one relay."""

    def __init__(self, base_url: str, key: bytes, ttl_seconds: float) -> None:
        self._base = base_url.rstrip("/")
        self._key = key
        self._ttl = ttl_seconds

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def link(self, target: str, alert: Alert, now: float | None = None) -> str | None:
        """The claim link of a firing alert, or None when it cannot be claimed (no fingerprint)."""
        if alert.status != "firing" or not alert.fingerprint or alert.startsAt is None:
            return None
        now = time.time() if now is None else now
        ticket = {
            "t": target,
            "f": alert.fingerprint[:64],
            "s": int(alert.startsAt.timestamp()),
            "x": int(now + self._ttl),
        }
        payload = _b64(json.dumps(ticket, separators=(",", ":")).encode())
        return f"{self._base}{PATH_PREFIX}{payload}.{self._sign(payload)}"

    def check(self, token: str, now: float | None = None) -> ClaimTicket:
        """The ticket of a link's last path segment; BadLink when forged, damaged or expired."""
        payload, dot, signature = token.partition(".")
        if not dot or not payload or len(token) > 1_000:
            raise BadLink("cut", "this is not a claim link (it was cut or changed)")
        if not hmac.compare_digest(
            self._sign(payload).encode(), signature.encode("ascii", "replace")
        ):
            raise BadLink("forged", "the link's signature does not match: it was changed or forged")
        try:
            fields = json.loads(_unb64(payload))
            ticket = ClaimTicket(
                str(fields["t"]), str(fields["f"]), int(fields["s"]), int(fields["x"])
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise BadLink("unreadable", "the link is signed but unreadable") from None
        if (time.time() if now is None else now) > ticket.expires:
            raise BadLink("expired", "the link has expired; claim in Alertmanager instead")
        return ticket
