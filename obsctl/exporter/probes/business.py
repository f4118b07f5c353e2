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
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pymysql
import redis.exceptions as rexc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

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
from obsctl.exporter.probes.business_config import BusinessConfig
from obsctl.exporter.probes.business_inspect import inspect
from obsctl.exporter.probes.business_ledger import (
    TERMINAL_STATUSES,
    QuotaLedger,
    QuotaTotals,
    TaskLedger,
    TaskRow,
)
from obsctl.exporter.probes.business_report import SchemaRefused
from obsctl.exporter.probes.business_sql import (
    FAILED,
    LEARNED_PROVIDER_LIMIT,
    SUCCEEDED,
    Statements,
)
from obsctl.metric_names import BusinessMetric

log = logging.getLogger(__name__)

_FINISHED_METRICS = {SUCCEEDED: BusinessMetric.TASK_SUCCEEDED, FAILED: BusinessMetric.TASK_FAILED}


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
