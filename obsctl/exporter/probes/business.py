"""Business metrics read incrementally from the platform's `tasks` and `quotas` tables.

Each run reads only the rows of `tasks` changed since the previous run, through the index
idx_tasks_updated_id (updated_at, id), as a range `updated_at >= watermark - overlap` walked
in keyset batches ordered by (updated_at, id): never OFFSET, never a scan of the whole table.
Cost per run grows with the number of changed rows, not with the size of `tasks`.

Counting rules (all times are the MySQL server's clock, SELECT NOW(3)):

- Counters start at 0: `counts_from` is the server's NOW(3) at the first run. A task counts as
  created if created_at >= counts_from, and as succeeded/failed if it reached that status with
  finished_at >= counts_from; earlier history is never counted.
- The watermark W of a run is the server's NOW(3) when it starts reading; the next run re-reads
  from W - overlap. A row version stamped at U but committed at C is therefore read as long
  as C - U <= overlap (the overlap absorbs transactions that commit after rows stamped later).
- The overlap means rows are read more than once. Each task id seen with updated_at >= the
  current range start ("horizon") is remembered with the terminal (status, finished_at) already
  counted for it, so a re-read never counts twice. Ids last changed before the horizon are
  forgotten: memory is bounded by the rows changed within overlap + one interval. A forgotten
  id that shows up again (a long task finishing later) has created_at < horizon, which is how
  we know its creation was already counted; its terminal transition is new iff finished_at >=
  horizon. A task created and finished between two runs is seen once, already terminal, and
  counts as both created and succeeded/failed.
- Limits: a transaction committing more than `overlap` after it stamped updated_at can be
  missed; stamps must come from one clock (the platform stamps NOW(3) in the database), and
  the exporter's session time zone must match the platform's (both use the server default).

Quotas have no index on updated_at, so quota figures come from a pass over `quotas` in primary
key batches every `quota_interval` (cost grows with users, never with tasks).
`quota_consumed_total` adds the growth of SUM(used) between passes: the platform only ever
increases `used` (charged in the task-creating transaction; top-ups change `remaining`), so
the sum of growths telescopes to exactly SUM(used)now - SUM(used)first-pass. A drop (a user
deleted, a manual reset) is re-based, never subtracted.

Names: the tables, columns, index and terminal status values above are the demo platform's;
`business.tables` maps them to a schema that names them differently (`business_sql`).

Before its first read the probe checks the schema (`business_inspect.inspect`): each column and
index the reader needs, and an EXPLAIN of each statement it sends. On any problem it reads
nothing: the outcome is DOWN with reason `schema`, logged once, and the check is repeated each
run until the schema serves the reader, so a migration applied later starts it without a restart.

Wiring: BusinessProbe(config, pool) takes the exporter's shared `MySQLPool`; the tables are
read from the database named in that pool's DSN.

Several sidecars: only the leader reads (obsctl.exporter.leader). With a `checkpoint`, the
reader saves its state beside the lease after every complete read and publishes only what it
saved; `take_over(token)` drops what is in memory, so a new leader continues from the last
checkpoint (`business_state`): the counters go on from where the old leader left them.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pymysql
import redis.exceptions as rexc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import Field, field_validator

from obsctl.config_types import (
    Duration,
    LabelValue,
    no_repeats,
    timeout_within_interval,
)
from obsctl.configfile import StrictModel
from obsctl.exporter.leader import Checkpoint, LeaseLost
from obsctl.exporter.probes import business_state
from obsctl.exporter.probes._mysql_pool import (
    MySQLPool,
    describe_error,
    mysql_reason,
    retry_if_lost,
    timed_fetch,
)
from obsctl.exporter.probes.base import ProbeBase, ProbeOutcome, Reason, Status, cached_help
from obsctl.exporter.probes.business_inspect import inspect
from obsctl.exporter.probes.business_report import SchemaRefused
from obsctl.exporter.probes.business_sql import (
    FAILED,
    LEARNED_PROVIDER_LIMIT,
    SUCCEEDED,
    BusinessTables,
    Statements,
)
from obsctl.exporter.probes.mysql import OTHER
from obsctl.metric_names import BusinessMetric

log = logging.getLogger(__name__)

TERMINAL_STATUSES = (SUCCEEDED, FAILED)
_DEFAULT_TERMINAL = {status: status for status in TERMINAL_STATUSES}
_FINISHED_METRICS = {SUCCEEDED: BusinessMetric.TASK_SUCCEEDED, FAILED: BusinessMetric.TASK_FAILED}
DEFAULT_FEATURES = ("matting", "outfit", "faceswap", "outpaint")
# AI image tasks take seconds to minutes: matting ~1-5 s, faceswap/outpaint 10-60 s, and a
# provider backlog can push them past 5 min; 600 s is the platform's give-up point.
DEFAULT_LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class BusinessConfig(StrictModel):
    """Settings of the business-metrics reader."""

    interval: Duration = 15.0
    timeout: Duration = 5.0
    # How far back each run re-reads: longer than any platform transaction stays open between
    # stamping updated_at and committing (the platform commits within milliseconds).
    overlap: Duration = 120.0
    quota_interval: Duration = 60.0
    features: list[LabelValue] = Field(default_factory=lambda: list(DEFAULT_FEATURES), min_length=1)
    providers: list[LabelValue] = Field(default_factory=list)
    batch_size: int = Field(default=5000, ge=100, le=100_000)
    latency_buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_LATENCY_BUCKETS), min_length=1
    )
    target: LabelValue = "platform"
    tables: BusinessTables = Field(default_factory=BusinessTables)

    _timeout_fits_interval = field_validator("timeout")(timeout_within_interval)

    _unique = field_validator("features", "providers")(no_repeats)

    @field_validator("latency_buckets")
    @classmethod
    def _buckets_increase(cls, value: list[float]) -> list[float]:
        if any(not math.isfinite(b) or b <= 0 for b in value):
            raise ValueError("latency buckets must be positive, finite numbers of seconds")
        if any(later <= earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError("latency buckets must be strictly increasing")
        return value


class TaskRow(NamedTuple):
    """One row of the change feed, in the column order of the batch query."""

    id: int
    feature: str
    provider: str
    status: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(slots=True)
class _Tracked:
    updated_at: datetime
    terminal: tuple[str, datetime] | None


@dataclass
class LatencyHistogram:
    """created_at -> finished_at of tasks reaching a terminal state, for one feature."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        """Add one task's latency."""
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (le, count of observations <= le), ending with +Inf."""
        counts = self.counts or [0] * (len(self.bounds) + 1)
        running, out = 0, []
        for bound, count in zip([*self.bounds, math.inf], counts, strict=True):
            running += count
            out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(running)))
        return out


class TaskLedger:
    """Counts each task's creation and terminal transition once, from rows read in key order."""

    def __init__(
        self,
        counts_from: datetime,
        features: Iterable[str],
        providers: Iterable[str],
        buckets: Sequence[float],
        terminal: Mapping[str, str] | None = None,
    ) -> None:
        self.counts_from = counts_from
        # Platform status value -> SUCCEEDED or FAILED; any other value is not terminal.
        self._terminal_of = dict(terminal) if terminal is not None else _DEFAULT_TERMINAL
        self.horizon = counts_from
        self._features = list(features)
        self._providers = list(providers)
        self._feature_set = frozenset(self._features)
        self._provider_set = frozenset(self._providers)
        self._buckets = buckets
        self._tracked: dict[int, _Tracked] = {}
        pairs = [(f, p) for f in self._features for p in self._providers]
        self.created = dict.fromkeys(pairs, 0)
        self.finished = {status: dict.fromkeys(pairs, 0) for status in TERMINAL_STATUSES}
        self.latency = {f: LatencyHistogram(buckets) for f in self._features}

    @property
    def tracked(self) -> int:
        """Task ids remembered for dedupe (those changed since the horizon)."""
        return len(self._tracked)

    def dump(self) -> dict[str, Any]:
        """The ledger as JSON-able data (datetimes as ISO text), for a leader's checkpoint."""
        return {
            "counts_from": self.counts_from.isoformat(),
            "horizon": self.horizon.isoformat(),
            "providers": self._providers,
            "tracked": {
                str(task): [t.updated_at.isoformat(), *(_terminal_text(t.terminal))]
                for task, t in self._tracked.items()
            },
            "created": [[f, p, n] for (f, p), n in self.created.items()],
            "finished": {
                status: [[f, p, n] for (f, p), n in counts.items()]
                for status, counts in self.finished.items()
            },
            "latency": {f: [h.counts, h.total] for f, h in self.latency.items()},
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from a dump: counts, the horizon and the ids remembered for dedupe."""
        self.horizon = datetime.fromisoformat(data["horizon"])
        self._tracked = {
            int(task): _Tracked(
                datetime.fromisoformat(updated),
                (status, datetime.fromisoformat(finished)) if status else None,
            )
            for task, (updated, status, finished) in data["tracked"].items()
        }
        for feature, provider, count in data["created"]:
            self.created[(feature, provider)] = int(count)
        for status, rows in data["finished"].items():
            for feature, provider, count in rows:
                self.finished[status][(feature, provider)] = int(count)
        for feature, (counts, total) in data["latency"].items():
            histogram = self.latency.setdefault(feature, LatencyHistogram(self._buckets))
            if len(counts) == len(self._buckets) + 1:  # buckets unchanged since the dump
                histogram.counts, histogram.total = [int(c) for c in counts], float(total)

    def set_horizon(self, horizon: datetime) -> None:
        """Start a new read range at horizon; forget ids last changed before it."""
        self.horizon = horizon
        self._tracked = {k: v for k, v in self._tracked.items() if v.updated_at >= horizon}

    def apply(self, row: TaskRow) -> None:
        """Account for one row version (rows re-read through the overlap count nothing twice)."""
        known = self._tracked.get(row.id)
        if known is None and row.created_at >= max(self.horizon, self.counts_from):
            self._count_created(row)
        terminal = self._terminal(row)
        if terminal is not None and self._terminal_is_new(known, terminal):
            self._count_finished(row, terminal)
        updated_at = row.updated_at if known is None else max(known.updated_at, row.updated_at)
        self._tracked[row.id] = _Tracked(updated_at, terminal)

    def labels(self, row: TaskRow) -> tuple[str, str]:
        """(feature, provider) label values, unknown ones as "other"."""
        feature = row.feature if row.feature in self._feature_set else OTHER
        provider = row.provider if row.provider in self._provider_set else OTHER
        return feature, provider

    def _terminal(self, row: TaskRow) -> tuple[str, datetime] | None:
        status = self._terminal_of.get(row.status)
        if status is None:
            return None
        # The platform always sets finished_at with a terminal status; updated_at is a fallback.
        return status, row.finished_at or row.updated_at

    def _terminal_is_new(self, known: _Tracked | None, terminal: tuple[str, datetime]) -> bool:
        if terminal[1] < self.counts_from:
            return False
        if known is None:
            # Forgotten ids were last changed before the horizon, so an earlier finish is old.
            return terminal[1] >= self.horizon
        return known.terminal != terminal

    def _count_created(self, row: TaskRow) -> None:
        key = self.labels(row)
        self.created[key] = self.created.get(key, 0) + 1

    def _count_finished(self, row: TaskRow, terminal: tuple[str, datetime]) -> None:
        key = self.labels(row)
        counts = self.finished[terminal[0]]
        counts[key] = counts.get(key, 0) + 1
        histogram = self.latency.setdefault(key[0], LatencyHistogram(self._buckets))
        histogram.observe(max(0.0, (terminal[1] - row.created_at).total_seconds()))


def _terminal_text(terminal: tuple[str, datetime] | None) -> tuple[str | None, str | None]:
    return (terminal[0], terminal[1].isoformat()) if terminal else (None, None)


@dataclass
class QuotaTotals:
    """Sums over the rows of `quotas` read by one pass."""

    users: int = 0
    remaining: int = 0
    used: int = 0
    exhausted: int = 0
    cursor: int = 0


@dataclass
class QuotaLedger:
    """The latest complete quota pass and the consumption counted since the first one."""

    latest: QuotaTotals | None = None
    consumed: int = 0

    def complete(self, totals: QuotaTotals) -> None:
        """Fold in a finished pass; growth of SUM(used) is consumption, a drop is re-based."""
        if self.latest is not None:
            self.consumed += max(0, totals.used - self.latest.used)
        self.latest = totals


@dataclass
class _Chain:
    """A read of the change feed in progress, possibly spread over several runs."""

    next_watermark: datetime
    cursor: tuple[datetime, int]


class BusinessProbe(ProbeBase):
    """The incremental reader of task and quota metrics (kind "business")."""

    kind = "business"
    expected_errors = (pymysql.MySQLError, OSError, SchemaRefused, rexc.RedisError, LeaseLost)

    def __init__(
        self, config: BusinessConfig, pool: MySQLPool, checkpoint: Checkpoint | None = None
    ) -> None:
        if not pool.database:
            raise ValueError("the MySQL DSN must name the platform database for business metrics")
        super().__init__(config.target, config.interval, config.timeout)
        self.config = config
        self._pool = pool
        self._sql = Statements(pool.database, config.tables)
        self._lock = asyncio.Lock()
        self._ledger: TaskLedger | None = None
        self._watermark: datetime | None = None
        self._chain: _Chain | None = None
        self._newest: datetime | None = None
        self._lag = 0.0
        self._rows_read = 0
        self._rows_before_run = 0
        self._quotas = QuotaLedger()
        self._quota_pass: QuotaTotals | None = None
        self._quota_done_at: float | None = None
        self._refused: str | None = None
        self._checkpoint = checkpoint
        self._token = 0
        self._published: list[Metric] = []

    def take_over(self, token: int) -> None:
        """A new lease: forget the state in memory, the next run continues from the checkpoint."""
        self._token = token
        self._ledger, self._watermark, self._chain, self._newest = None, None, None, None
        self._quotas, self._quota_pass, self._quota_done_at = QuotaLedger(), None, None
        self._published = []

    @property
    def counts_from(self) -> datetime | None:
        """Server time from which transitions are counted (None before the first run)."""
        return self._ledger.counts_from if self._ledger else None

    @property
    def watermark(self) -> datetime | None:
        """Server time the last complete read started; the next re-reads from here - overlap."""
        return self._watermark

    @property
    def ledger(self) -> TaskLedger | None:
        """The counters (None before the first successful start)."""
        return self._ledger

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """Read what changed since the last run (and the quotas when they are due)."""
        self._rows_before_run = self._rows_read
        async with self._lock:
            await retry_if_lost(lambda: self._cycle(phases))
        return self.outcome(began, Status.OK, phases=phases, families=self.families())

    def failure(self, exc: BaseException, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """DOWN, except a run that read rows before its budget ran out: it is catching up."""
        status, reason = Status.DOWN, mysql_reason(exc)
        if isinstance(exc, SchemaRefused):
            self._log_refusal(exc)
            reason, detail = Reason.SCHEMA, str(exc)
        elif isinstance(exc, TimeoutError):
            detail = f"no answer within {self.budget:g}s"
            read = self._rows_read - self._rows_before_run
            if read > 0:
                status, reason = Status.DEGRADED, Reason.SLOW
                detail = f"catching up: read {read} rows, more pending"
            else:
                reason = Reason.TIMEOUT
        else:
            detail = describe_error(exc)
        return self.outcome(
            began, status, reason=reason, detail=detail, phases=phases, families=self.families()
        )

    def _log_refusal(self, exc: SchemaRefused) -> None:
        summary = str(exc)
        if summary == self._refused:
            return  # said once; the outcome keeps saying it on every run
        self._refused = summary
        problems = "; ".join(p.message for p in exc.report.problems)
        log.error(
            "business/%s does not read %s: %s. Run `obsctl check db` for the DDL and a migration",
            self.target,
            exc.report.database,
            problems,
        )

    async def close(self) -> None:
        """Close the shared pool (idempotent)."""
        await self._pool.close()

    async def _cycle(self, phases: dict[str, float]) -> None:
        async with self._pool.connection() as conn:
            rows = await timed_fetch(conn, phases, "now", "SELECT NOW(3)")
            now: datetime = rows[0][0]
            if self._ledger is None:
                await self._check_schema(conn, phases)
                if not await self._restore(phases):
                    await self._start(conn, now, phases)
            await self._read_changes(conn, now, phases)
            if self._quota_due():
                await self._read_quotas(conn, phases)
        await self._save(phases)

    async def _restore(self, phases: dict[str, float]) -> bool:
        """Continue from the last leader's checkpoint, if there is one."""
        if self._checkpoint is None:
            return False
        began = time.monotonic()
        text = await self._checkpoint.load()
        phases["checkpoint"] = time.monotonic() - began
        state = business_state.load(text, self.config) if text else None
        if state is None:
            return False
        self._ledger, self._watermark, self._newest = state.ledger, state.watermark, state.newest
        self._rows_read, self._quotas = state.rows_read, state.quotas
        self._published = self._families_now()
        log.info("business/%s: continuing from the checkpoint of %s", self.target, state.watermark)
        return True

    async def _save(self, phases: dict[str, float]) -> None:
        """Checkpoint under the lease token; only a saved state is published."""
        if self._checkpoint is None:
            return
        assert self._ledger is not None and self._watermark is not None
        state = business_state.ReaderState(
            self._ledger, self._watermark, self._newest, self._rows_read, self._quotas
        )
        began = time.monotonic()
        await self._checkpoint.save(self._token, business_state.dump(state))
        phases["checkpoint"] = phases.get("checkpoint", 0.0) + time.monotonic() - began
        self._published = self._families_now()

    async def _check_schema(self, conn: Any, phases: dict[str, float]) -> None:
        """Refuse to read until the schema serves every statement through an index."""
        assert self._pool.database is not None
        began = time.monotonic()
        try:
            report = await inspect(conn, self._pool.database, self.config)
        finally:
            phases["schema"] = time.monotonic() - began
        if not report.ok:
            raise SchemaRefused(report)
        if self._refused is not None:
            log.info("business/%s: the schema now serves the reader, starting", self.target)
            self._refused = None

    async def _start(self, conn: Any, now: datetime, phases: dict[str, float]) -> None:
        providers = self.config.providers or await self._learn_providers(conn, phases)
        newest = await timed_fetch(conn, phases, "start", self._sql.newest)
        self._newest = newest[0][0] if newest and newest[0][0] else now
        self._watermark = now
        self._ledger = TaskLedger(
            now,
            self.config.features,
            providers,
            self.config.latency_buckets,
            self.config.tables.tasks.statuses.terminal(),
        )

    async def _learn_providers(self, conn: Any, phases: dict[str, float]) -> list[str]:
        rows = await timed_fetch(
            conn, phases, "start", self._sql.providers, (LEARNED_PROVIDER_LIMIT,)
        )
        return [str(row[0]) for row in rows if row[0]]

    async def _read_changes(self, conn: Any, now: datetime, phases: dict[str, float]) -> None:
        ledger, watermark = self._ledger, self._watermark
        assert ledger is not None and watermark is not None
        if self._chain is None:
            horizon = watermark - timedelta(seconds=self.config.overlap)
            ledger.set_horizon(horizon)
            self._chain = _Chain(next_watermark=now, cursor=(horizon, 0))
        chain, batch = self._chain, self.config.batch_size
        while True:
            args = Statements.batch_args(chain.cursor, batch)
            fetched = await timed_fetch(conn, phases, "tasks", self._sql.batch, args)
            rows = [TaskRow._make(r) for r in fetched]
            for row in rows:
                ledger.apply(row)
            self._rows_read += len(rows)
            if rows:
                chain.cursor = (rows[-1].updated_at, rows[-1].id)
                self._newest = max(self._newest or rows[-1].updated_at, rows[-1].updated_at)
            if len(rows) < batch:
                break
        self._watermark, self._chain = chain.next_watermark, None
        self._lag = max(0.0, (now - (self._newest or now)).total_seconds())

    def _quota_due(self) -> bool:
        if self._quota_pass is not None or self._quota_done_at is None:
            return True
        return time.monotonic() - self._quota_done_at >= self.config.quota_interval

    async def _read_quotas(self, conn: Any, phases: dict[str, float]) -> None:
        totals = self._quota_pass = self._quota_pass or QuotaTotals()
        batch = self.config.batch_size
        while True:
            rows = await timed_fetch(
                conn, phases, "quotas", self._sql.quotas, (totals.cursor, batch)
            )
            users, last_id, remaining, used, exhausted = rows[0]
            totals.users += int(users)
            totals.remaining += int(remaining)
            totals.used += int(used)
            totals.exhausted += int(exhausted)
            if users:
                totals.cursor = int(last_id)
            if users < batch:
                break
        self._quotas.complete(totals)
        self._quota_pass, self._quota_done_at = None, time.monotonic()

    def families(self) -> list[Metric]:
        """Every business series: as last checkpointed when there is a checkpoint."""
        if self._checkpoint is not None:
            return self._published
        return self._families_now()

    def _families_now(self) -> list[Metric]:
        """Every business series from the state in memory (empty before the first start)."""
        if self._ledger is None:
            return []
        return [
            *_task_families(self._ledger, self.interval_seconds),
            *self._quota_families(),
            *self._self_families(),
        ]

    def _quota_families(self) -> list[Metric]:
        latest = self._quotas.latest
        if latest is None:
            return []
        # Quotas are re-read on the first run after quota_interval has passed.
        every = (
            math.ceil(self.config.quota_interval / self.interval_seconds) * self.interval_seconds
        )
        consumed = CounterMetricFamily(
            BusinessMetric.QUOTA_CONSUMED,
            self.cached_help(
                "Quota units consumed since the exporter started (growth of SUM(quotas.used))",
                every,
            ),
        )
        consumed.add_metric([], self._quotas.consumed)
        remaining = GaugeMetricFamily(
            BusinessMetric.QUOTA_REMAINING,
            self.cached_help("Sum of remaining quota over all users", every),
        )
        remaining.add_metric([], latest.remaining)
        exhausted = GaugeMetricFamily(
            BusinessMetric.QUOTA_EXHAUSTED_USERS,
            self.cached_help("Users whose remaining quota is zero or less", every),
        )
        exhausted.add_metric([], latest.exhausted)
        return [consumed, remaining, exhausted]

    def _self_families(self) -> list[Metric]:
        assert self._ledger is not None
        rows = CounterMetricFamily(
            BusinessMetric.ROWS_READ,
            self.cached_help("Rows of tasks read by the business reader (re-reads included)"),
        )
        rows.add_metric([], self._rows_read)
        lag = GaugeMetricFamily(
            BusinessMetric.LAG,
            self.cached_help("Server time minus the newest tasks.updated_at the reader has seen"),
        )
        lag.add_metric([], self._lag)
        tracked = GaugeMetricFamily(
            BusinessMetric.TRACKED_TASKS,
            self.cached_help("Task ids remembered to dedupe the overlap re-read"),
        )
        tracked.add_metric([], self._ledger.tracked)
        return [rows, lag, tracked]


def _task_families(ledger: TaskLedger, interval: float) -> list[Metric]:
    since = "since the exporter started; earlier history is not counted"
    created = CounterMetricFamily(
        BusinessMetric.TASK_CREATED,
        cached_help(f"Tasks created, {since}", interval),
        labels=["feature", "provider"],
    )
    for (feature, provider), count in sorted(ledger.created.items()):
        created.add_metric([feature, provider], count)
    families: list[Metric] = [created]
    for status in TERMINAL_STATUSES:
        family = CounterMetricFamily(
            _FINISHED_METRICS[status],
            cached_help(f"Tasks that reached {status}, {since}", interval),
            labels=["feature", "provider"],
        )
        for (feature, provider), count in sorted(ledger.finished[status].items()):
            family.add_metric([feature, provider], count)
        families.append(family)
    latency = HistogramMetricFamily(
        BusinessMetric.TASK_LATENCY,
        cached_help(f"Task created_at to finished_at, tasks finished {since}", interval),
        labels=["feature"],
    )
    for feature, histogram in sorted(ledger.latency.items()):
        latency.add_metric([feature], histogram.cumulative(), histogram.total)
    families.append(latency)
    return families
