"""One robot's queue: merges alerts into paced messages, retries, and settles each webhook.

Delivery, acknowledgement and merging
-------------------------------------
Every alert of a webhook becomes a queued *unit*; the webhook holds a *ticket* for its units
and waits. A single worker per robot sends rounds of messages (``pacing.SendBudget`` decides
when a round may start; ``compose`` packs as many queued alerts, oldest first, as fit in one
message and the round continues with the rest of what was queued when it began).

The webhook is answered when its ticket is *settled*:

- all its alerts delivered before the deadline -> 200;
- at the deadline (``webhook.deliver_timeout`` minus one ``send_timeout``) the ticket stops
  joining new sends, waits for a send already carrying its alerts (at most ``send_timeout``)
  and then:

  - if the robot is failing (the last attempt got a 5xx, a timeout, a connection error or a
    non-zero errcode other than "too fast") and none of its alerts went out, its alerts are
    *withdrawn* from the queue and the answer is 503: Alertmanager keeps the notification and
    retries it, and the relay never sends the withdrawn copy, so the retry is not a duplicate;
  - otherwise the alerts are only waiting for the rate-limit budget (or part of them already
    went out): they are *committed*, written to the spool when one is configured, and the
    answer is 202. Committed alerts are never withdrawn; they are retried with capped backoff
    until delivered, merged into later messages.

Guarantees: an alert is never dropped while the relay runs; with ``delivery.spool_dir`` a
committed alert also survives a restart (without it, a restart loses committed alerts, which
the log reports). A duplicate is possible only when a send times out after DingTalk accepted
it, or the relay dies between a delivery and recording it in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum

from obsctl.relay.compose import Composer, Entry, RobotMessage
from obsctl.relay.config import RetryConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.dingtalk import Failure, RobotClient, SendResult
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.pacing import SendBudget
from obsctl.relay.spool import Spool

log = logging.getLogger(__name__)


class UnitState(Enum):
    """Where a queued alert is."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    WITHDRAWN = "withdrawn"


class Outcome(StrEnum):
    """How a webhook was settled."""

    DELIVERED = "delivered"
    QUEUED = "queued"
    REJECTED = "rejected"


class Health(StrEnum):
    """A robot queue's state as /health shows it."""

    OK = "ok"
    PACING = "pacing"
    FAILING = "failing"


@dataclass(eq=False)
class Unit:
    """One alert in the queue."""

    entry: Entry
    ticket: Ticket | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: UnitState = UnitState.PENDING
    committed: bool = False


@dataclass(eq=False)
class Ticket:
    """A webhook waiting for its alerts."""

    units: list[Unit]
    done: asyncio.Future[None]
    settling: bool = False


@dataclass(frozen=True)
class Settlement:
    """How a webhook ends: the outcome and a sentence for the answer body."""

    outcome: Outcome
    detail: str


class Outbox:
    """The queue and worker of one target robot."""

    def __init__(
        self,
        target: str,
        composer: Composer,
        client: RobotClient,
        budget: SendBudget,
        metrics: RelayMetrics,
        retry: RetryConfig,
        rate_limited_backoff: float,
        spool: Spool | None = None,
        clock: Callable[[], float] = time.monotonic,
        deliveries: DeliveryLog | None = None,
    ) -> None:
        self.target = target
        self._composer = composer
        self._client = client
        self._budget = budget
        self._metrics = metrics
        self._retry = retry
        self._rate_limited_backoff = rate_limited_backoff
        self._spool = spool
        self._clock = clock
        self._deliveries = deliveries
        self._queue: list[Unit] = []
        self._in_flight: list[Unit] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failures = 0
        self._retry_at = 0.0
        self._blocked_until = 0.0
        self._after_failure = False
        self.last_failure: str | None = None

    # --- what the server sees ---------------------------------------------------------------

    def depth(self) -> int:
        """Alerts queued or being sent."""
        return len(self._queue) + len(self._in_flight)

    def health(self) -> Health:
        """ok, pacing (waiting for the rate-limit budget) or failing (retrying after errors)."""
        if self._failures:
            return Health.FAILING
        now = self._clock()
        if self._queue and (self._blocked_until > now or self._budget.delay() > 0):
            return Health.PACING
        return Health.OK

    def restore(self) -> int:
        """Queue the committed alerts a previous run left in the spool; return how many."""
        if self._spool is None:
            return 0
        for key, entry in self._spool.load():
            self._queue.append(Unit(entry, key=key, committed=True))
        if self._queue:
            self._wake.set()
        return len(self._queue)

    def submit(self, entries: Sequence[Entry]) -> Ticket:
        """Queue a webhook's alerts and return the ticket its answer waits on."""
        ticket = Ticket([], asyncio.get_running_loop().create_future())
        for entry in entries:
            unit = Unit(entry, ticket)
            ticket.units.append(unit)
            self._metrics.alerts_received.labels(self.target, entry.alert.status).inc()
        self._queue.extend(ticket.units)
        self._wake.set()
        return ticket

    async def settle(self, ticket: Ticket) -> Settlement:
        """Decide the webhook's answer (see the module docstring); call at its deadline."""
        ticket.settling = True
        while any(unit.state is UnitState.IN_FLIGHT for unit in ticket.units):
            await self._idle.wait()
            await asyncio.sleep(0)
        pending = [unit for unit in ticket.units if unit.state is UnitState.PENDING]
        if not pending:
            settlement = Settlement(Outcome.DELIVERED, "delivered")
        elif len(pending) < len(ticket.units) or not self._failures:
            settlement = self._commit(pending, partly=len(pending) < len(ticket.units))
        else:
            self._withdraw(pending)
            settlement = Settlement(
                Outcome.REJECTED,
                f"DingTalk robot {self.target!r} is failing ({self.last_failure}); "
                "nothing was queued, retry later",
            )
        self._metrics.notifications.labels(self.target, settlement.outcome.value).inc()
        return settlement

    def abandon(self, ticket: Ticket) -> None:
        """Withdraw what is still queued of a webhook whose request went away."""
        ticket.settling = True
        self._withdraw([unit for unit in ticket.units if unit.state is UnitState.PENDING])

    def _commit(self, units: list[Unit], partly: bool) -> Settlement:
        if self._spool is not None:
            try:
                self._spool.add((unit.key, unit.entry) for unit in units)
            except OSError as exc:
                log.error("%s: cannot write the spool (%s)", self.target, exc.strerror)
                if not partly:
                    self._withdraw(units)
                    return Settlement(
                        Outcome.REJECTED, "cannot persist the queue; nothing was queued"
                    )
        for unit in units:
            unit.committed = True
        why = "partly delivered, the rest" if partly else f"{len(units)} alerts"
        return Settlement(
            Outcome.QUEUED,
            f"{why} queued for robot {self.target!r}, to be sent merged within its rate limit",
        )

    def _withdraw(self, units: list[Unit]) -> None:
        for unit in units:
            unit.state = UnitState.WITHDRAWN
        self._queue = [unit for unit in self._queue if unit.state is UnitState.PENDING]

    # --- the worker ------------------------------------------------------------------------

    def _eligible(self) -> list[Unit]:
        return [
            unit
            for unit in self._queue
            if unit.committed or unit.ticket is None or not unit.ticket.settling
        ]

    async def run(self) -> None:
        """Send rounds of messages until cancelled."""
        while True:
            eligible = self._eligible()
            if not eligible:
                await self._sleep(None)
                continue
            now = self._clock()
            delay = max(self._budget.delay(), self._retry_at - now, self._blocked_until - now)
            if delay > 0:
                await self._sleep(delay)
                continue
            try:
                await self._round(eligible)
            except Exception:
                log.exception("%s: unexpected error while sending; retrying", self.target)
                self._failed(Failure.BAD_ANSWER, "internal error")

    async def _sleep(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _round(self, eligible: list[Unit]) -> None:
        """Send what was queued when the round began, in as many messages as it takes."""
        started_with = set(eligible)
        while self._budget.free() > 0:
            eligible = self._eligible()
            if not started_with.intersection(eligible):
                return
            entries = [unit.entry for unit in eligible]
            message, count = self._composer.compose(entries, datetime.now(UTC))
            if not await self._attempt(eligible[:count], message):
                return

    async def _attempt(self, chunk: list[Unit], message: RobotMessage) -> bool:
        for unit in chunk:
            unit.state = UnitState.IN_FLIGHT
        self._in_flight = chunk
        self._queue = [unit for unit in self._queue if unit.state is UnitState.PENDING]
        self._idle.clear()
        try:
            if self._after_failure:
                self._metrics.retries.labels(self.target).inc()
            result = await self._client.send(message)
            self._metrics.send_duration.labels(self.target).observe(result.duration_seconds)
            if result.ok:
                self._delivered(chunk, message)
            else:
                self._returned(chunk, result)
            return result.ok
        finally:
            interrupted = [unit for unit in chunk if unit.state is UnitState.IN_FLIGHT]
            for unit in interrupted:  # cancelled mid-send: keep the alerts, in order
                unit.state = UnitState.PENDING
            self._queue = interrupted + self._queue
            self._in_flight = []
            self._idle.set()

    def _delivered(self, chunk: list[Unit], message: RobotMessage) -> None:
        self._budget.record()
        self._failures = 0
        self._after_failure = False
        self.last_failure = None
        self._metrics.sent.labels(self.target).inc()
        if self._deliveries is not None:
            self._deliveries.record(self.target, message.title, message.text, message.alerts)
        for unit in chunk:
            unit.state = UnitState.DELIVERED
        if self._spool is not None:
            self._spool.done(unit.key for unit in chunk if unit.committed)
        for ticket in {unit.ticket for unit in chunk if unit.ticket is not None}:
            if not ticket.done.done() and all(
                unit.state is UnitState.DELIVERED for unit in ticket.units
            ):
                ticket.done.set_result(None)
        log.info(
            "%s: delivered a message with %d alerts (%d bytes, %d still queued)",
            self.target, message.alerts, len(message.payload), self.depth() - len(chunk),
        )  # fmt: skip

    def _returned(self, chunk: list[Unit], result: SendResult) -> None:
        for unit in chunk:
            unit.state = UnitState.PENDING
        self._queue = chunk + self._queue
        assert result.failure is not None
        self._failed(result.failure, result.detail)

    def _failed(self, failure: Failure, detail: str) -> None:
        self._metrics.failed.labels(self.target, failure.value).inc()
        self._after_failure = True
        now = self._clock()
        if failure is Failure.RATE_LIMITED:
            self._metrics.rate_limited.labels(self.target).inc()
            self._blocked_until = now + self._rate_limited_backoff
            wait = self._rate_limited_backoff
        else:
            self._failures += 1
            self.last_failure = f"{failure.value}: {detail}"
            ceiling = min(self._retry.max, self._retry.base * 2 ** (self._failures - 1))
            wait = ceiling * random.uniform(0.5, 1.0)
            self._retry_at = now + wait
        log.warning(
            "%s: send failed (%s: %s); %d alerts queued, next try in %.1fs",
            self.target, failure.value, detail, self.depth(), wait,
        )  # fmt: skip

    def undelivered_committed(self) -> int:
        """Committed alerts not yet delivered (lost on exit unless spooled)."""
        return sum(unit.committed for unit in (*self._queue, *self._in_flight))
