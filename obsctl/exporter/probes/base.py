"""What every probe is and returns: the contract between probes, scheduler, /metrics, /health.

One rule for time: a run, and every client timeout inside it, keeps to the probe's `budget`
(a little under its `timeout`), so the run answers for itself with its phases and a reason;
`run_bounded`'s deadline at `timeout` is the only hard one, for a probe that overruns anyway.
"""

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
    # The dependency answers but cannot serve the probe without harm (business: a missing
    # column or index, or a statement that would scan tasks in full): it is not read.
    SCHEMA = "schema"
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


def failed(probe: Probe, began: float, reason: Reason, detail: str | None = None) -> ProbeOutcome:
    """The DOWN outcome of a run that started at `began` (time.monotonic()) and ends now."""
    return ProbeOutcome(
        probe=probe.kind,
        target=probe.target,
        status=Status.DOWN,
        duration_seconds=time.monotonic() - began,
        checked_at=time.time(),
        reason=reason,
        detail=detail[:200] if detail else None,
    )


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


def cached_help(text: str, interval: float) -> str:
    """HELP text with the freshness note every probe's own series carries."""
    return f"{text} (cached, refreshed every {interval:g} s)"


class ProbeBase:
    """The part every probe kind shares: identity, schedule, budget, the run skeleton, outcomes.

    A kind sets `kind` and `expected_errors` and writes `check`; `run` wraps it in the budget
    and turns an overrun or an expected error into a DOWN outcome (`failure`).
    """

    kind: str
    # Exceptions of the client library that mean "the dependency failed", not "a bug".
    expected_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, target: str, interval: float, timeout: float) -> None:
        self.target = target
        self.interval_seconds = interval
        self.timeout_seconds = timeout
        self.budget = run_budget(timeout)

    async def run(self) -> ProbeOutcome:
        """One run within the budget; expected failures come back as a DOWN outcome."""
        began = time.monotonic()
        phases: dict[str, float] = {}
        expected: tuple[type[BaseException], ...] = (TimeoutError, *self.expected_errors)
        try:
            async with asyncio.timeout(self.budget):
                return await self.check(began, phases)
        except asyncio.CancelledError:
            self.discard()
            raise
        except expected as exc:
            self.discard()
            return self.failure(exc, began, phases)

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """Probe the dependency once, timing each phase into `phases`."""
        raise NotImplementedError

    def failure(self, exc: BaseException, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """The outcome of a run that ran out of budget or met an expected error."""
        return self.outcome(
            began,
            Status.DOWN,
            reason=self.reason(exc),
            detail=self.describe(exc),
            phases=phases,
            families=self.down_families(),
        )

    def reason(self, exc: BaseException) -> Reason:
        """The bounded reason for a failure."""
        return classify(exc)

    def describe(self, exc: BaseException) -> str:
        """The detail of a failure (never a secret)."""
        if isinstance(exc, TimeoutError) and not str(exc):
            return f"no answer within {self.budget:g}s"
        return f"{type(exc).__name__}: {exc}"

    def down_families(self) -> Sequence[Metric]:
        """Series still exported when the dependency is down (none by default)."""
        return ()

    def discard(self) -> None:
        """Drop connections a failed or cancelled run may have left in an unknown state."""

    def outcome(
        self,
        began: float,
        status: Status,
        *,
        reason: Reason | None = None,
        detail: str | None = None,
        phases: Mapping[str, float] | None = None,
        families: Sequence[Metric] = (),
    ) -> ProbeOutcome:
        """The outcome of this probe's run that started at `began` (time.monotonic())."""
        return ProbeOutcome(
            probe=self.kind,
            target=self.target,
            status=status,
            duration_seconds=time.monotonic() - began,
            checked_at=time.time(),
            reason=reason,
            detail=detail[:200] if detail else None,
            phases=dict(phases or {}),
            families=tuple(families),
        )

    def cached_help(self, text: str, every: float | None = None) -> str:
        """HELP text for this probe's series, refreshed every interval (or `every` seconds)."""
        return cached_help(text, self.interval_seconds if every is None else every)

    async def close(self) -> None:
        """Release connections; called once at shutdown."""
