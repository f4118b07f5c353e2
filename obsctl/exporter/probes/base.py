"""What every probe is and returns: the contract between probes, scheduler, /metrics, /health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)


class Reason(StrEnum):
    """Why a probe did not succeed: a small, fixed set so it is safe as a label value."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    AUTH = "auth"
    TLS = "tls"
    DNS = "dns"
    HTTP_STATUS = "http_status"
    PROTOCOL = "protocol"
    SLOW = "slow"
    ERROR = "error"


class Status(StrEnum):
    """Health of one dependency as /health reports it."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class ProbeOutcome:
    """The immutable result of one probe run; /metrics and /health only ever read these."""

    probe: str
    target: str
    status: Status
    duration_seconds: float
    checked_at: float
    reason: Reason | None = None
    detail: str | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    families: Sequence[Metric] = ()

    @property
    def success(self) -> bool:
        """True unless the dependency is down (a slow answer is still an answer)."""
        return self.status is not Status.DOWN


class Probe(Protocol):
    """A probe kind: runs against one target, keeps its own connections, never raises."""

    kind: str
    target: str
    interval_seconds: float
    timeout_seconds: float

    async def run(self) -> ProbeOutcome:
        """Check the dependency once; may raise, the runner turns that into an outcome."""
        ...

    async def close(self) -> None:
        """Release connections; called once at shutdown."""
        ...


def outcome(
    probe: Probe,
    began: float,
    status: Status,
    *,
    reason: Reason | None = None,
    detail: str | None = None,
    phases: Mapping[str, float] | None = None,
    families: Sequence[Metric] = (),
) -> ProbeOutcome:
    """The outcome of a run that started at `began` (time.monotonic()) and ends now."""
    return ProbeOutcome(
        probe=probe.kind,
        target=probe.target,
        status=status,
        duration_seconds=time.monotonic() - began,
        checked_at=time.time(),
        reason=reason,
        detail=detail[:200] if detail else None,
        phases=dict(phases or {}),
        families=tuple(families),
    )


def failed(probe: Probe, began: float, reason: Reason, detail: str | None = None) -> ProbeOutcome:
    """An outcome for a run that did not reach the dependency."""
    return outcome(probe, began, Status.DOWN, reason=reason, detail=detail)


async def run_bounded(probe: Probe) -> ProbeOutcome:
    """Run a probe within its timeout; any exception or overrun becomes a DOWN outcome."""
    began = time.monotonic()
    try:
        return await asyncio.wait_for(probe.run(), timeout=probe.timeout_seconds)
    except TimeoutError:
        return failed(probe, began, Reason.TIMEOUT, f"no answer within {probe.timeout_seconds}s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe must never take the exporter down
        log.exception("probe %s/%s raised", probe.kind, probe.target)
        return failed(probe, began, classify(exc), f"{type(exc).__name__}: {exc}")


def classify(exc: BaseException) -> Reason:
    """Map a client library's exception to a bounded reason."""
    if isinstance(exc, TimeoutError):
        return Reason.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Reason.REFUSED
    text = f"{type(exc).__name__} {exc}".lower()
    if "access denied" in text or "auth" in text or "noperm" in text or "wrongpass" in text:
        return Reason.AUTH
    if "refused" in text or "errno 111" in text or "can't connect" in text:
        return Reason.REFUSED
    if "ssl" in text or "certificate" in text:
        return Reason.TLS
    if "name or service not known" in text or "nodename nor servname" in text:
        return Reason.DNS
    if "timeout" in text or "timed out" in text:
        return Reason.TIMEOUT
    return Reason.ERROR


def run_budget(timeout: float) -> float:
    """Seconds a run may use so it answers for itself before the runner's timeout fires."""
    return timeout - min(0.1, timeout * 0.1)
