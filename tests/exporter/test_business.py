"""Business reader against real MariaDB: exact counts under concurrent writers, index-only cost.

Each test works in its own database (created as root, same DDL as the platform's migrations via
CREATE TABLE ... LIKE platform.*), because the demo platform keeps writing platform.tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from prometheus_client.metrics_core import Metric
from pydantic import SecretStr, ValidationError

from obsctl.exporter.probes._mysql_pool import MySQLPool
from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status, run_bounded
from obsctl.exporter.probes.business import BusinessProbe
from obsctl.exporter.probes.business_config import BusinessConfig

from conftest import RunningStack

EXPORTER = "'obsctl_exporter'@'127.0.0.1'"
FEATURES = ("matting", "outfit", "faceswap", "outpaint")
PROVIDERS = ("alpha", "beta")  # what the demo platform's provider_configs holds
# Writers also use a feature and a provider the exporter does not know: they count as "other".
RAW_FEATURES = (*FEATURES, "sketch")
RAW_PROVIDERS = (*PROVIDERS, "gamma")
BUCKETS = (0.5, 1.0, 2.0, 5.0, 30.0, 3600.0, 7200.0)
TERMINAL = ("succeeded", "failed")
_DEADLOCK_ERRNOS = (1205, 1213)
BULK_USER = 999  # the advancers leave this user's tasks to the bulk writer

Row = tuple[Any, ...]


@dataclass
class BizDB:
    """A scratch copy of the platform schema the exporter account may read."""

    name: str
    socket: Path
    dsn: str
    _local: threading.local = field(default_factory=threading.local)

    def connect(self, autocommit: bool = True) -> pymysql.connections.Connection:
        """A new root connection to this database."""
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=self.name,
            autocommit=autocommit,
            connect_timeout=5,
        )

    def query(self, sql: str, args: Sequence[object] | None = None) -> list[Row]:
        """Run one statement as root (one connection per thread) and return its rows."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


@pytest.fixture
def bizdb(stack: RunningStack) -> Iterator[BizDB]:
    """A fresh bizt_<random> database; dropped (and its grant revoked) afterwards."""
    name = f"bizt_{uuid.uuid4().hex[:10]}"
    socket = stack.root / "mariadb" / "mysqld.sock"
    parts = urlsplit(stack.env["OBSCTL_MYSQL_DSN"])
    db = BizDB(name, socket, urlunsplit(parts._replace(path=f"/{name}")))
    with pymysql.connect(unix_socket=str(socket), user="root", autocommit=True) as root:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            for table in ("tasks", "quotas", "provider_configs"):
                cur.execute(f"CREATE TABLE `{name}`.{table} LIKE platform.{table}")
            cur.execute(
                f"INSERT INTO `{name}`.provider_configs SELECT * FROM platform.provider_configs"
            )
            cur.execute(f"GRANT SELECT ON `{name}`.* TO {EXPORTER}")
        try:
            yield db
        finally:
            with root.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                with contextlib.suppress(pymysql.OperationalError):  # already revoked
                    cur.execute(f"REVOKE ALL PRIVILEGES ON `{name}`.* FROM {EXPORTER}")


def business_probe(db: BizDB, **settings: object) -> BusinessProbe:
    """A BusinessProbe on its own pool, reading db."""
    defaults: dict[str, object] = {
        "interval": "5s",
        "timeout": "5s",
        "quota_interval": "1ms",  # every run re-reads quotas, so tests see them at once
        "latency_buckets": list(BUCKETS),
    }
    config = BusinessConfig.model_validate({**defaults, **settings})
    return BusinessProbe(config, MySQLPool(SecretStr(db.dsn), maxsize=2))


async def run_ok(probe: BusinessProbe) -> ProbeOutcome:
    """One run that must succeed."""
    outcome = await run_bounded(probe)
    assert outcome.status is Status.OK, (outcome.reason, outcome.detail)
    return outcome


def seed_quotas(db: BizDB, users: int) -> None:
    """users rows of quotas with 1000 remaining each."""
    db.query(
        "INSERT INTO quotas (user_id, remaining, used, updated_at)"
        f" SELECT seq, 1000, 0, NOW(3) FROM seq_1_to_{users}"
    )


def label(value: str, known: Sequence[str]) -> str:
    """The exporter's label for a raw feature/provider."""
    return value if value in known else "other"


# --- ground truth, computed in SQL at the end -------------------------------------------------


def truth(db: BizDB, since: datetime, quota_used_at_start: int) -> dict[str, Any]:
    """What the counters must say: every transition at or after `since`, by label."""
    created: Counter[tuple[str, str]] = Counter()
    for feature, provider, count in db.query(
        "SELECT feature, provider, COUNT(*) FROM tasks WHERE created_at >= %s GROUP BY 1, 2",
        (since,),
    ):
        created[label(feature, FEATURES), label(provider, PROVIDERS)] += count
    finished: dict[str, Counter[tuple[str, str]]] = {s: Counter() for s in TERMINAL}
    latencies: dict[str, list[float]] = {}
    for feature, provider, status, micros in db.query(
        "SELECT feature, provider, status, TIMESTAMPDIFF(MICROSECOND, created_at, finished_at)"
        " FROM tasks WHERE status IN ('succeeded', 'failed') AND finished_at >= %s",
        (since,),
    ):
        finished[status][label(feature, FEATURES), label(provider, PROVIDERS)] += 1
        latencies.setdefault(label(feature, FEATURES), []).append(micros / 1e6)
    ((used, remaining, exhausted),) = db.query(
        "SELECT SUM(used), SUM(remaining), SUM(remaining <= 0) FROM quotas"
    )
    return {
        "created": created,
        **finished,
        "latency": latencies,
        "quota_consumed": int(used) - quota_used_at_start,
        "quota_remaining": int(remaining),
        "quota_exhausted": int(exhausted),
    }


def samples(families: Sequence[Metric], name: str) -> dict[tuple[str, ...], float]:
    """Samples of one series name, keyed by their label values (in label-name order)."""
    found: dict[tuple[str, ...], float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name == name:
                found[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return found


def assert_counts_match(outcome: ProbeOutcome, expected: dict[str, Any]) -> None:
    """Every counter, histogram and quota series equals the ground truth (zeros included)."""
    families = outcome.families
    for key, series in (
        ("created", "task_created_total"),
        ("succeeded", "task_succeeded_total"),
        ("failed", "task_failed_total"),
    ):
        got = samples(families, series)
        for feature in FEATURES:
            for provider in PROVIDERS:
                assert (feature, provider) in got, (
                    f"{series} lost the zero for {feature}/{provider}"
                )
        want = expected[key]
        pairs = set(got) | set(want)
        diff = {
            p: (got.get(p, 0), want.get(p, 0)) for p in pairs if got.get(p, 0) != want.get(p, 0)
        }
        assert not diff, f"{series} (got, truth): {diff}"
    counts = samples(families, "task_latency_seconds_count")
    sums = samples(families, "task_latency_seconds_sum")
    buckets = samples(families, "task_latency_seconds_bucket")
    for feature, values in expected["latency"].items():
        assert counts[(feature,)] == len(values), feature
        assert sums[(feature,)] == pytest.approx(sum(values), abs=1e-6 * len(values))
        for bound in BUCKETS:
            want = sum(1 for v in values if v <= bound)
            assert buckets[(feature, repr(bound))] == want, (feature, bound)
    assert samples(families, "quota_consumed_total")[()] == expected["quota_consumed"]
    assert samples(families, "quota_remaining")[()] == expected["quota_remaining"]
    assert samples(families, "quota_exhausted_users")[()] == expected["quota_exhausted"]


# --- concurrent writers -------------------------------------------------------------------------


def _retrying(conn: Any, work: Callable[[Any], None]) -> None:
    """Run work in a transaction, giving up (rolled back) on a deadlock or lock timeout."""
    try:
        with conn.cursor() as cur:
            work(cur)
        conn.commit()
    except pymysql.OperationalError as exc:
        conn.rollback()
        if exc.args[0] not in _DEADLOCK_ERRNOS:
            raise


def creator(db: BizDB, seed: int, rounds: int, users: int) -> None:
    """Charges quota and inserts tasks like the platform; multi-row inserts share one NOW(3)."""
    rng = random.Random(seed)
    conn = db.connect(autocommit=False)
    for _ in range(rounds):
        n, user = rng.choice((1, 1, 1, 5, 40)), rng.randint(1, users)
        # A fifth are created already finished: seen once, terminal, between two probe runs.
        done = rng.random() < 0.2
        rows = [
            (user, rng.choice(RAW_FEATURES), rng.choice(RAW_PROVIDERS), rng.choice(TERMINAL))
            for _ in range(n)
        ]

        def work(
            cur: Any, rows: list[Row] = rows, n: int = n, user: int = user, done: bool = done
        ) -> None:
            cur.execute(
                "UPDATE quotas SET remaining = remaining - %s, used = used + %s,"
                " updated_at = NOW(3) WHERE user_id = %s",
                (n, n, user),
            )
            if done:
                cur.executemany(
                    "INSERT INTO tasks (user_id, feature, provider, status, created_at,"
                    " updated_at, finished_at) VALUES (%s, %s, %s, %s, NOW(3), NOW(3), NOW(3))",
                    rows,
                )
            else:
                cur.executemany(
                    "INSERT INTO tasks (user_id, feature, provider, status, created_at,"
                    " updated_at) VALUES (%s, %s, %s, 'queued', NOW(3), NOW(3))",
                    [r[:3] for r in rows],
                )

        _retrying(conn, work)
    conn.close()


def advancer(db: BizDB, seed: int, rounds: int) -> None:
    """Moves random open tasks queued -> processing -> succeeded/failed, many per statement."""
    rng = random.Random(seed)
    conn = db.connect(autocommit=False)
    for _ in range(rounds):

        def work(cur: Any) -> None:
            cur.execute(
                "SELECT id, status FROM tasks WHERE status IN ('queued', 'processing')"
                " AND id > 20 AND user_id <> %s ORDER BY RAND() LIMIT 30",
                (BULK_USER,),
            )
            picked = cur.fetchall()
            queued = [i for i, s in picked if s == "queued"]
            processing = [i for i, s in picked if s == "processing"]
            if queued:
                cur.execute(
                    "UPDATE tasks SET status = 'processing', updated_at = NOW(3)"
                    " WHERE status = 'queued' AND id IN %s",
                    (queued,),
                )
            if processing:
                cur.execute(
                    "UPDATE tasks SET status = %s, finished_at = NOW(3), updated_at = NOW(3)"
                    " WHERE status NOT IN ('succeeded', 'failed') AND id IN %s",
                    (rng.choice(TERMINAL), processing),
                )

        _retrying(conn, work)
    conn.close()


def bulk(db: BizDB) -> None:
    """3000 tasks inserted with one updated_at, then all finished with another one."""
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
            f" SELECT {BULK_USER}, ELT(1 + seq % 5, 'matting', 'outfit', 'faceswap', 'outpaint',"
            " 'sketch'), ELT(1 + seq % 3, 'alpha', 'beta', 'gamma'), 'queued', NOW(3), NOW(3)"
            " FROM seq_1_to_3000"
        )
        first = cur.lastrowid
        cur.execute(
            "UPDATE quotas SET used = used + 3000, remaining = remaining - 3000 WHERE user_id = 1"
        )
    conn.commit()
    time.sleep(0.5)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE tasks SET status = IF(id %% 7 = 0, 'failed', 'succeeded'),"
            " finished_at = NOW(3), updated_at = NOW(3)"
            " WHERE id BETWEEN %s AND %s AND status NOT IN ('succeeded', 'failed')",
            (first, first + 2999),
        )
    conn.commit()
    conn.close()


@dataclass
class LateCommit:
    """Rows stamped at `stamped` but committed only at `committed` (server times)."""

    stamped: datetime | None = None
    committed: datetime | None = None


def late_committer(db: BizDB, hold: float, result: LateCommit) -> None:
    """Stamps new and finishing rows, holds the transaction open, then commits."""
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT NOW(3)")
        (result.stamped,) = cur.fetchone() or (None,)
        cur.executemany(
            "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
            " VALUES (2, %s, %s, 'queued', NOW(3), NOW(3))",
            [(f, p) for f in RAW_FEATURES for p in RAW_PROVIDERS],
        )
        cur.execute(
            "UPDATE quotas SET used = used + 15, remaining = remaining - 15 WHERE user_id = 2"
        )
        # Old tasks (created before the exporter started) finishing in the same late transaction.
        cur.execute(
            "UPDATE tasks SET status = 'succeeded', finished_at = NOW(3), updated_at = NOW(3)"
            " WHERE id <= 10 AND status NOT IN ('succeeded', 'failed')"
        )
    time.sleep(hold)
    with conn.cursor() as cur:
        cur.execute("SELECT NOW(3)")
        (result.committed,) = cur.fetchone() or (None,)
    conn.commit()
    conn.close()


def seed_history(db: BizDB) -> None:
    """Tasks from before the exporter started: open ones (some finish later) and finished ones."""
    db.query(
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
        " SELECT 1 + seq % 50, ELT(1 + seq % 4, 'matting', 'outfit', 'faceswap', 'outpaint'),"
        " ELT(1 + seq % 2, 'alpha', 'beta'), IF(seq % 2, 'queued', 'processing'),"
        " NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR FROM seq_1_to_300"
    )
    db.query(
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at,"
        " finished_at) SELECT 1, 'matting', 'alpha', 'succeeded', NOW(3) - INTERVAL 2 HOUR,"
        " NOW(3) - INTERVAL 10 SECOND, NOW(3) - INTERVAL 10 SECOND FROM seq_1_to_100"
    )


async def test_counts_equal_sql_truth_under_concurrent_writers(bizdb: BizDB) -> None:
    seed_quotas(bizdb, 50)
    seed_history(bizdb)
    probe = business_probe(bizdb, overlap="30s", batch_size=500)
    try:
        await run_ok(probe)
        since = probe.counts_from
        assert since is not None
        ((used_at_start,),) = bizdb.query("SELECT SUM(used) FROM quotas")
        late = LateCommit()
        writers = asyncio.gather(
            *(asyncio.to_thread(creator, bizdb, seed, 120, 50) for seed in range(3)),
            *(asyncio.to_thread(advancer, bizdb, 100 + seed, 150) for seed in range(2)),
            asyncio.to_thread(bulk, bizdb),
            asyncio.to_thread(late_committer, bizdb, 3.0, late),
        )
        watermarks: list[datetime] = []
        runs = 0
        while not writers.done():
            await run_ok(probe)
            runs += 1
            if probe.watermark is not None:
                watermarks.append(probe.watermark)
            await asyncio.sleep(0.05)
        await writers
        await run_ok(probe)
        final = await run_ok(probe)
    finally:
        await probe.close()

    assert late.stamped is not None and late.committed is not None
    assert any(late.stamped < w < late.committed for w in watermarks), (
        "no run completed between the late transaction's stamp and its commit"
    )
    ((ties,),) = bizdb.query(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM tasks GROUP BY updated_at) AS t"
    )
    assert ties >= 3000, "the burst should leave thousands of rows on one updated_at"
    expected = truth(bizdb, since, int(used_at_start))
    assert sum(expected["created"].values()) > 3000 and sum(expected["succeeded"].values()) > 2000
    assert_counts_match(final, expected)
    ((total_rows,),) = bizdb.query("SELECT COUNT(*) FROM tasks WHERE updated_at >= %s", (since,))
    rows_read = samples(final.families, "obsctl_business_rows_read_total")[()]
    print(f"\n{runs} runs under load; {rows_read:.0f} rows read for {total_rows} changed rows")
    assert rows_read > total_rows, "the overlap re-read (and its dedupe) was not exercised"


async def test_a_commit_later_than_the_overlap_is_missed(bizdb: BizDB) -> None:
    """The documented limit, shown so the exactness test above is known to be able to fail."""
    seed_quotas(bizdb, 5)
    probe = business_probe(bizdb, overlap="300ms")
    try:
        await run_ok(probe)
        late = LateCommit()
        holder = asyncio.create_task(asyncio.to_thread(late_committer, bizdb, 1.5, late))
        while not holder.done():
            await run_ok(probe)
            await asyncio.sleep(0.1)
        await holder
        outcome = await run_ok(probe)
    finally:
        await probe.close()
    assert sum(samples(outcome.families, "task_created_total").values()) == 0
    ((in_table,),) = bizdb.query("SELECT COUNT(*) FROM tasks")
    assert in_table == len(RAW_FEATURES) * len(RAW_PROVIDERS)


async def test_dedupe_memory_is_bounded_and_forgotten_ids_are_not_recounted(bizdb: BizDB) -> None:
    seed_quotas(bizdb, 5)
    probe = business_probe(bizdb, overlap="500ms")

    async def settle() -> ProbeOutcome:
        await asyncio.sleep(0.6)
        await run_ok(probe)  # its range now starts after every earlier change
        return await run_ok(probe)

    def count(outcome: ProbeOutcome, series: str) -> float:
        return sum(samples(outcome.families, series).values())

    try:
        await run_ok(probe)
        bizdb.query(
            "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
            " SELECT 1, 'outfit', 'beta', 'queued', NOW(3), NOW(3) FROM seq_1_to_50"
        )
        outcome = await run_ok(probe)
        assert count(outcome, "task_created_total") == 50
        assert samples(outcome.families, "obsctl_business_tracked_tasks")[()] == 50
        outcome = await settle()
        assert samples(outcome.families, "obsctl_business_tracked_tasks")[()] == 0
        # Long-running tasks finish after they were forgotten: finished counts, created does not.
        bizdb.query(
            "UPDATE tasks SET status = 'succeeded', finished_at = NOW(3), updated_at = NOW(3)"
            " ORDER BY id LIMIT 20"
        )
        outcome = await run_ok(probe)
        assert count(outcome, "task_created_total") == 50
        assert count(outcome, "task_succeeded_total") == 20
        outcome = await settle()
        # A later touch of a finished, forgotten task is not a new finish.
        bizdb.query("UPDATE tasks SET vendor_task_id = CONCAT('v', id), updated_at = NOW(3)")
        outcome = await run_ok(probe)
        assert count(outcome, "task_succeeded_total") == 20
        assert count(outcome, "task_created_total") == 50
        assert samples(outcome.families, "obsctl_business_tracked_tasks")[()] == 50
    finally:
        await probe.close()


async def test_a_backlog_is_caught_up_over_several_runs(bizdb: BizDB) -> None:
    seed_quotas(bizdb, 5)
    probe = business_probe(bizdb, timeout="300ms", interval="1s")
    try:
        await run_ok(probe)
        bizdb.query(
            "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at,"
            " finished_at) SELECT 1, 'outpaint', 'alpha', 'succeeded', NOW(3), NOW(3),"
            " NOW(3) + INTERVAL seq MICROSECOND FROM seq_1_to_150000"
        )
        statuses = []
        for _ in range(40):
            outcome = await run_bounded(probe)
            statuses.append((outcome.status, outcome.reason))
            if outcome.status is Status.OK:
                break
        assert outcome.duration_seconds < 0.3
    finally:
        await probe.close()
    # Runs cut short by their timeout keep what they read and resume where they stopped.
    assert statuses[0] == (Status.DEGRADED, Reason.SLOW), statuses
    assert statuses[-1] == (Status.OK, None), statuses
    assert samples(outcome.families, "task_created_total")[("outpaint", "alpha")] == 150_000
    assert samples(outcome.families, "task_succeeded_total")[("outpaint", "alpha")] == 150_000


async def test_counters_survive_a_failing_run_and_carry_on(bizdb: BizDB) -> None:
    seed_quotas(bizdb, 5)
    probe = business_probe(bizdb)
    insert = (
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
        " SELECT 1, 'matting', 'beta', 'queued', NOW(3), NOW(3) FROM seq_1_to_7"
    )
    try:
        await run_ok(probe)
        bizdb.query(insert)
        assert (
            samples((await run_ok(probe)).families, "task_created_total")[("matting", "beta")] == 7
        )
        bizdb.query(insert)
        bizdb.query("RENAME TABLE tasks TO tasks_away")
        try:
            failing = await run_bounded(probe)
        finally:
            bizdb.query("RENAME TABLE tasks_away TO tasks")
        assert failing.status is Status.DOWN and failing.reason is Reason.ERROR, failing
        assert "tasks" in (failing.detail or "")
        assert samples(failing.families, "task_created_total")[("matting", "beta")] == 7
        back = await run_ok(probe)
        assert samples(back.families, "task_created_total")[("matting", "beta")] == 14
    finally:
        await probe.close()


# --- cost does not grow with the table ----------------------------------------------------------


def insert_history(db: BizDB, first: int, last: int) -> float:
    """Finished tasks from two days ago (outside any overlap), fast via the SEQUENCE engine."""
    began = time.monotonic()
    db.query(
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at,"
        " finished_at) SELECT 1 + seq % 1000, ELT(1 + seq % 4, 'matting', 'outfit', 'faceswap',"
        " 'outpaint'), ELT(1 + seq % 2, 'alpha', 'beta'), IF(seq % 10 = 0, 'failed', 'succeeded'),"
        " NOW(3) - INTERVAL 2 DAY + INTERVAL seq * 100 MICROSECOND,"
        " NOW(3) - INTERVAL 2 DAY + INTERVAL seq * 100 + 5000000 MICROSECOND,"
        " NOW(3) - INTERVAL 2 DAY + INTERVAL seq * 100 + 5000000 MICROSECOND"
        f" FROM seq_{first}_to_{last}"
    )
    db.query("ANALYZE TABLE tasks")
    return time.monotonic() - began


async def median_cycle(probe: BusinessProbe, runs: int = 7) -> float:
    """Median wall time of a run (each re-reads the same overlap window)."""
    durations = [(await run_ok(probe)).duration_seconds for _ in range(runs)]
    return statistics.median(durations)


def recent_workload(db: BizDB) -> None:
    """3000 fresh tasks, a third of them finished: what one cycle has to read."""
    db.query(
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
        " SELECT 1 + seq % 1000, 'faceswap', 'alpha', 'processing', NOW(3), NOW(3)"
        " FROM seq_1_to_3000"
    )
    db.query(
        "UPDATE tasks SET status = 'succeeded', finished_at = NOW(3), updated_at = NOW(3)"
        " WHERE status = 'processing' ORDER BY id LIMIT 1000"
    )


@contextlib.contextmanager
def general_log(db: BizDB) -> Iterator[list[str]]:
    """Statements the exporter account sends while the block runs, from the server's own log."""
    statements: list[str] = []
    ((output,),) = db.query("SELECT @@GLOBAL.log_output")
    db.query("TRUNCATE mysql.general_log")
    db.query("SET GLOBAL log_output = 'TABLE'")
    db.query("SET GLOBAL general_log = ON")
    try:
        yield statements
    finally:
        db.query("SET GLOBAL general_log = OFF")
        db.query("SET GLOBAL log_output = %s", (output,))
        statements.extend(
            str(row[0], "utf8") if isinstance(row[0], bytes) else str(row[0])
            for row in db.query(
                "SELECT argument FROM mysql.general_log WHERE command_type = 'Query'"
                " AND user_host LIKE 'obsctl_exporter%%' ORDER BY event_time"
            )
        )
        db.query("TRUNCATE mysql.general_log")


def assert_index_plans(db: BizDB, statements: list[str]) -> None:
    """EXPLAIN every SELECT: each real table is read through an index range/ref, never ALL."""
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    others = [s for s in statements if s not in selects]
    assert all(s.lstrip().upper().startswith("SET ") for s in others), others
    tables: set[str] = set()
    for sql in selects:
        conn = db.connect()
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(f"EXPLAIN {sql}")
            plan = cur.fetchall()
        conn.close()
        print(f"EXPLAIN {sql[:90]}...")
        for step in plan:
            print(f"   {step['table']} type={step['type']} key={step['key']} rows={step['rows']}")
            table = step["table"]
            if table is None or str(table).startswith("<derived"):
                continue  # no table, or the <= batch_size rows a subquery already read by index
            tables.add(str(table))
            assert step["type"] in ("range", "ref", "eq_ref", "const"), (sql, step)
            assert step["key"], (sql, step)
            if table == "tasks":
                assert step["key"] == "idx_tasks_updated_id", (sql, step)
    assert tables == {"tasks", "quotas"}, tables


async def test_cycle_cost_does_not_grow_with_the_table(bizdb: BizDB) -> None:
    seed_quotas(bizdb, 1000)
    insert_history(bizdb, 1, 10_000)
    probe = business_probe(bizdb, batch_size=1000)
    try:
        await run_ok(probe)
        recent_workload(bizdb)
        small = await median_cycle(probe)
        grow = insert_history(bizdb, 10_001, 1_000_000)
        ((rows,),) = bizdb.query("SELECT COUNT(*) FROM tasks")
        assert rows >= 1_000_000
        big = await median_cycle(probe)
        with general_log(bizdb) as statements:
            await run_ok(probe)
        outcome = await run_ok(probe)
    finally:
        await probe.close()
    print(
        f"\none cycle (3000 changed rows, batch 1000, quotas of 1000 users): "
        f"{small * 1000:.1f} ms with 13,000 rows, {big * 1000:.1f} ms with {rows:,} rows "
        f"(grew the table in {grow:.1f} s)"
    )
    assert_index_plans(bizdb, statements)
    assert big < 3 * small + 0.05, f"cycle went from {small:.3f}s to {big:.3f}s"
    assert sum(samples(outcome.families, "task_created_total").values()) == 3000


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError) as bad:
        BusinessConfig.model_validate(
            {
                "latency_buckets": [1, 5, 2],
                "features": ["matting", "matting"],
                "batch_size": 10,
                "timeout": "20s",
                "overlap": "-1s",
                "colour": "blue",
            }
        )
    assert {e["loc"][0] for e in bad.value.errors()} == {
        "latency_buckets",
        "features",
        "batch_size",
        "timeout",
        "overlap",
        "colour",
    }


def test_probe_needs_a_database_in_the_dsn() -> None:
    pool = MySQLPool(SecretStr("mysql://u:p@127.0.0.1:3306"))
    with pytest.raises(ValueError, match="database"):
        BusinessProbe(BusinessConfig(), pool)


def test_defaults_match_the_platform() -> None:
    config = BusinessConfig()
    assert (config.interval, config.timeout, config.overlap) == (15.0, 5.0, 120.0)
    assert tuple(config.features) == FEATURES
    assert config.latency_buckets == [1, 2, 5, 10, 20, 30, 60, 120, 300, 600]
