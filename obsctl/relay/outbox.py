"""One robot's queue: alerts by identity and priority, merged into paced messages, retried.

Intake and queueing
-------------------
A webhook's alerts are *admitted* (checked against the queue bound, matched to what is
already queued), written to the spool (``spool.Spool``; fsynced, group-committed) and only then
*released* to the worker; the webhook is answered 202 once they are on disk. A webhook is
refused (503, so Alertmanager keeps and retries it) only when the queue is full or the disk
write failed; then nothing of it stays queued.

An alert is queued by identity, Alertmanager's fingerprint plus its status: Alertmanager
re-sends a whole group on every change, so when a newer copy of a queued alert arrives it
replaces the queued one in place instead of queueing again. A new state after a different one
(firing, resolved, firing again) queues behind it, so a resolved message never overtakes its
firing one. The worker takes alerts by severity (critical first), then in arrival order.

Sending
-------
A single worker per robot sends rounds of messages: ``pacing.SendBudget`` decides when a round
may start (the budget is restored from the spool after a restart), ``compose`` packs as many
queued alerts as fit in one message, and the round continues with the rest. A failed send is
retried with capped, jittered backoff; DingTalk's "send too fast" answer blocks the robot for
``delivery.rate_limited_backoff`` (DingTalk's own 10-minute throttle), also across restarts.
Composing never fails (see ``compose``); an unexpected error while sending a chunk is retried a
few times and then those alerts are dropped, counted and logged, so one bad item can never
block the queue behind it.

Guarantees: an accepted alert is delivered unless dropped that way; with a spool it survives a
restart or kill -9. A duplicate is possible only when a send times out after DingTalk accepted
it, or the relay dies between a delivery and recording it in the spool.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum

from obsctl.relay.alertmanager import Alert
from obsctl.relay.compose import Composer, Entry, RobotMessage
from obsctl.relay.config import RetryConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.dingtalk import Failure, RobotClient, SendResult
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.pacing import SendBudget
from obsctl.relay.render import SEVERITY_RANK
from obsctl.relay.spool import Queued, Spool

log = logging.getLogger(__name__)

# Unexpected errors a chunk may cause before its alerts are dropped instead of retried.
MAX_INTERNAL_ERRORS = 3
INTERNAL_ERROR_PAUSE = 1.0
# How long "failing" is still reported after the last failure once nothing is queued.
FAILING_MEMORY_SECONDS = 60.0
# Notices (claim confirmations) waiting at most; they are short-lived news, kept in memory.
MAX_NOTICES = 100


class UnitState(Enum):
    """Where a queued alert is."""

    HELD = "held"  # admitted, not yet on disk: not sent yet
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DROPPED = "dropped"


class Health(StrEnum):
    """A robot queue's state as /health shows it."""

    OK = "ok"
    PACING = "pacing"
    THROTTLED = "throttled"
    FAILING = "failing"


class QueueFull(Exception):
    """The robot's queue cannot take a webhook's alerts now."""


@dataclass(eq=False)
class Unit:
    """One alert in the queue."""

    entry: Entry
    seq: int
    queued_at: float
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: UnitState = UnitState.PENDING
    errors: int = 0

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: severity first, then arrival."""
        return SEVERITY_RANK.get(self.entry.alert.severity, len(SEVERITY_RANK)), self.seq


@dataclass(frozen=True)
class Admission:
    """A webhook's alerts as matched against the queue: new units and replaced ones."""

    new: list[Unit]
    replaced: list[Unit]

    def to_persist(self) -> list[tuple[str, Entry]]:
        """What the spool must write: every new unit and the new state of every replaced one."""
        return [(unit.key, unit.entry) for unit in (*self.new, *self.replaced)]


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
        spool: Spool,
        max_queue: int,
        clock: Callable[[], float] = time.monotonic,
        deliveries: DeliveryLog | None = None,
        on_delivered: Callable[[str, Alert], None] = lambda target, alert: None,
    ) -> None:
        self.target = target
        self._composer = composer
        self._client = client
        self._budget = budget
        self._metrics = metrics
        self._retry = retry
        self._rate_limited_backoff = rate_limited_backoff
        self._spool = spool
        self._max_queue = max_queue
        self._clock = clock
        self._deliveries = deliveries
        self._on_delivered = on_delivered  # the escalation watches what robots accepted
        self._queue: list[Unit] = []  # PENDING units, sorted by rank
        self._held = 0
        self._in_flight: list[Unit] = []
        self._latest: dict[str, Unit] = {}  # fingerprint -> its newest unit not yet sent
        self._seq = 0
        self._wake = asyncio.Event()
        self._failures = 0
        self._failed_at = 0.0
        self._retry_at = 0.0
        self._blocked_until = 0.0
        self._after_failure = False
        self._notices: deque[RobotMessage] = deque(maxlen=MAX_NOTICES)
        self.last_failure: str | None = None

    # --- what the server sees ---------------------------------------------------------------

    def depth(self) -> int:
        """Alerts queued or being sent."""
        return len(self._queue) + self._held + len(self._in_flight)

    def oldest_age(self) -> float:
        """Seconds the oldest queued alert has waited (0 when nothing is queued)."""
        waiting = [unit.queued_at for unit in (*self._queue, *self._in_flight)]
        return max(0.0, self._clock() - min(waiting)) if waiting else 0.0

    def health(self) -> Health:
        """ok, pacing (waiting for budget), throttled (by DingTalk) or failing (retrying errors)."""
        now = self._clock()
        if self._blocked_until > now:
            return Health.THROTTLED
        if self._failures and (self.depth() or now - self._failed_at < FAILING_MEMORY_SECONDS):
            return Health.FAILING
        if self._queue and self._budget.delay() > 0:
            return Health.PACING
        return Health.OK

    def failure_age(self) -> float | None:
        """Seconds since the last failed send, None when the last send succeeded."""
        return self._clock() - self._failed_at if self._failures else None

    def restore(
        self, queued: Sequence[Queued], sent: Sequence[float], blocked_until: float
    ) -> None:
        """Take over what a previous run left: its queued alerts, recent sends and throttle."""
        wall, now = time.time(), self._clock()
        for item in queued:
            age = min(max(0.0, wall - item.accepted_at), 86_400.0)
            self._insert(Unit(item.entry, self._next_seq(), now - age, key=item.key))
        self._budget.restore([wall - at for at in sent])
        if blocked_until > wall:
            self._blocked_until = now + (blocked_until - wall)
        if self._queue:
            self._wake.set()

    def admit(self, entries: Sequence[Entry]) -> Admission:
        """Match a webhook's alerts to the queue (new units are held); QueueFull if no room."""
        matches: list[tuple[Entry, Unit | None]] = []
        for entry in entries:
            latest = self._latest.get(entry.alert.identity)
            same_state = (
                latest is not None
                and latest.entry.alert.status == entry.alert.status
                and latest.state in (UnitState.PENDING, UnitState.HELD)
            )
            matches.append((entry, latest if same_state else None))
        # Alertmanager never repeats an alert within a notification; if a sender does, the
        # last copy wins, in the first copy's place.
        fresh_by_state: dict[tuple[str, str], Entry] = {}
        for entry, unit in matches:
            if unit is None:
                fresh_by_state[(entry.alert.identity, entry.alert.status)] = entry
        fresh = list(fresh_by_state.values())
        if fresh and self.depth() + len(fresh) > self._max_queue:
            raise QueueFull(
                f"robot {self.target!r} has {self.depth()} alerts queued "
                f"(delivery.max_queue {self._max_queue}); retry later"
            )
        replaced: dict[int, Unit] = {}
        for entry, unit in matches:
            if unit is not None:
                unit.entry = entry  # the newer copy of the same state
                replaced[id(unit)] = unit
        now = self._clock()
        new = []
        for entry in fresh:
            unit = Unit(entry, self._next_seq(), now, state=UnitState.HELD)
            self._latest[entry.alert.identity] = unit  # a later copy in this webhook wins
            new.append(unit)
        self._held += len(new)
        for entry in entries:
            self._metrics.alerts_received.labels(self.target, entry.alert.status).inc()
        if replaced:
            self._metrics.alerts_merged.labels(self.target).inc(len(replaced))
        return Admission(new, list(replaced.values()))

    def release(self, admission: Admission) -> None:
        """The admitted alerts are on disk: let the worker send them."""
        for unit in admission.new:
            if unit.state is UnitState.HELD:
                unit.state = UnitState.PENDING
                self._held -= 1
                self._insert(unit)
        self._wake.set()

    def revoke(self, admission: Admission) -> None:
        """The admitted alerts could not be written: forget the new ones."""
        for unit in admission.new:
            if unit.state is UnitState.HELD:
                unit.state = UnitState.DROPPED
                self._held -= 1
                self._forget_latest(unit)

    def announce(
        self, title: str, text: str, mobiles: Sequence[str] = (), at_all: bool = False
    ) -> None:
        """Send a message not made of queued alerts (a claim, an escalation) ahead of them."""
        self._notices.append(self._composer.notice(title, text, mobiles, at_all))
        self._wake.set()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _insert(self, unit: Unit) -> None:
        unit.state = UnitState.PENDING
        bisect.insort(self._queue, unit, key=lambda u: u.rank)
        identity = unit.entry.alert.identity
        latest = self._latest.get(identity)
        if latest is None or latest.seq < unit.seq:
            self._latest[identity] = unit

    def _forget_latest(self, unit: Unit) -> None:
        identity = unit.entry.alert.identity
        if self._latest.get(identity) is unit:
            del self._latest[identity]

    # --- the worker ------------------------------------------------------------------------

    async def run(self) -> None:
        """Send rounds of messages until cancelled."""
        while True:
            if not self._queue and not self._notices:
                await self._sleep(None)
                continue
            now = self._clock()
            delay = max(self._budget.delay(), self._retry_at - now, self._blocked_until - now)
            if delay > 0:
                await self._sleep(delay)
                continue
            await self._round()

    async def _sleep(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _round(self) -> None:
        """Send what was queued when the round began, in as many messages as it takes."""
        if self._notices and not await self._send_notices():
            return
        started_with = set(self._queue)
        while self._budget.free() > 0 and started_with.intersection(self._queue):
            chunk: list[Unit] = []
            try:
                entries = [unit.entry for unit in self._queue]
                message, count = self._composer.compose(entries, datetime.now(UTC))
                chunk = self._queue[:count]
                if not await self._attempt(chunk, message):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._internal_error(chunk or self._queue[:1])
                return

    async def _send_notices(self) -> bool:
        """Send the waiting notices the budget allows; False when a send failed."""
        while self._notices and self._budget.free() > 0:
            message = self._notices[0]
            result = await self._client.send(message)
            self._metrics.send_duration.labels(self.target).observe(result.duration_seconds)
            if not result.ok:
                assert result.failure is not None
                self._failed(result.failure, result.detail)
                return False
            self._notices.popleft()
            self._succeeded(message)
        return True

    async def _attempt(self, chunk: list[Unit], message: RobotMessage) -> bool:
        for unit in chunk:
            unit.state = UnitState.IN_FLIGHT
            self._forget_latest(unit)
        self._in_flight = chunk
        self._queue = self._queue[len(chunk) :]
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
            for unit in chunk:  # cancelled mid-send: keep the alerts
                if unit.state is UnitState.IN_FLIGHT:
                    self._insert(unit)
            self._in_flight = []

    def _succeeded(self, message: RobotMessage, alerts: Iterable[Alert] = ()) -> None:
        """DingTalk took a message: the budget, the failure state, metrics, the delivery log."""
        self._budget.record()
        self._failures = 0
        self._after_failure = False
        self.last_failure = None
        self._metrics.sent.labels(self.target).inc()
        if self._deliveries is not None:
            self._deliveries.record(
                self.target, message.title, message.text, message.alerts, alerts
            )

    def _delivered(self, chunk: list[Unit], message: RobotMessage) -> None:
        self._succeeded(message, (unit.entry.alert for unit in chunk))
        sent_at = time.time()
        for unit in chunk:
            unit.state = UnitState.DELIVERED
            self._on_delivered(self.target, unit.entry.alert)
        self._spool.delivered(self.target, (unit.key for unit in chunk), sent_at)
        log.info(
            "%s: delivered a message with %d alerts (%d bytes, %d still queued)",
            self.target, message.alerts, len(message.payload), self.depth(),
        )  # fmt: skip

    def _returned(self, chunk: list[Unit], result: SendResult) -> None:
        for unit in chunk:
            self._insert(unit)
        assert result.failure is not None
        self._failed(result.failure, result.detail)

    def _failed(self, failure: Failure, detail: str) -> None:
        self._metrics.failed.labels(self.target, failure.value).inc()
        self._after_failure = True
        now = self._clock()
        if failure is Failure.RATE_LIMITED:
            self._metrics.rate_limited.labels(self.target).inc()
            self._blocked_until = now + self._rate_limited_backoff
            self._spool.blocked(self.target, time.time() + self._rate_limited_backoff)
            wait = self._rate_limited_backoff
        else:
            self._failures += 1
            self._failed_at = now
            self.last_failure = f"{failure.value}: {detail}"
            ceiling = min(self._retry.max, self._retry.base * 2 ** (self._failures - 1))
            wait = ceiling * random.uniform(0.5, 1.0)
            self._retry_at = now + wait
        log.warning(
            "%s: send failed (%s: %s); %d alerts queued, next try in %.1fs",
            self.target, failure.value, detail, self.depth(), wait,
        )  # fmt: skip

    def _internal_error(self, chunk: Iterable[Unit]) -> None:
        """A bug met while sending: retry the chunk a few times, then drop it, never block."""
        log.exception("%s: unexpected error while sending", self.target)
        dropped = []
        for unit in chunk:
            unit.errors += 1
            if unit.errors >= MAX_INTERNAL_ERRORS and unit in self._queue:
                self._queue.remove(unit)
                unit.state = UnitState.DROPPED
                self._forget_latest(unit)
                dropped.append(unit)
        if dropped:
            self._metrics.dropped.labels(self.target, "internal_error").inc(len(dropped))
            self._spool.discard(unit.key for unit in dropped)
            names = ", ".join(sorted({unit.entry.alert.name[:60] for unit in dropped}))
            log.error("%s: dropped %d alerts that kept failing: %s", self.target, len(dropped),
                      names)  # fmt: skip
        self._retry_at = self._clock() + INTERNAL_ERROR_PAUSE
