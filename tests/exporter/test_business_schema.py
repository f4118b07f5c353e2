"""The business probe against schemas that cannot serve it, and against one that names it all
differently: it refuses to read rather than scan `tasks`, and reads a mapped schema exactly."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr, ValidationError

from obsctl.exporter.collector import build_registry
from obsctl.exporter.config import ExporterConfig
from obsctl.exporter.probes._mysql_pool import MySQLPool
from obsctl.exporter.probes.base import Reason, Status, run_bounded
from obsctl.exporter.probes.business import BusinessProbe
from obsctl.exporter.probes.business_config import BusinessConfig
from obsctl.exporter.probes.business_inspect import explain_prefix
from obsctl.exporter.probes.business_ledger import TaskRow
from obsctl.exporter.probes.business_report import plan_step, reads_in_full
from obsctl.exporter.probes.business_sql import TASK_ROW_ROLES, BusinessTables
from obsctl.exporter.results import ResultStore
from obsctl.exporter.wiring import build_probes

from conftest import RunningStack
from scratch_schema import (
    RENAMED_MAPPING,
    ScratchDB,
    create_renamed,
    general_log,
    scratch_db,
)

BROKEN = {
    "missing": "ALTER TABLE tasks DROP INDEX idx_tasks_updated_id",
    # The name is there, but FORCE INDEX cannot turn it into a range read on updated_at.
    "wrong columns": "ALTER TABLE tasks DROP INDEX idx_tasks_updated_id,"
    " ADD INDEX idx_tasks_updated_id (status, updated_at)",
}


@pytest.fixture
def copy(stack: RunningStack) -> Iterator[ScratchDB]:
    """A copy of the platform's schema and rows."""
    with scratch_db(stack) as db:
        yield db


@pytest.fixture
def empty(stack: RunningStack) -> Iterator[ScratchDB]:
    """A database with no tables."""
    with scratch_db(stack, copy=False) as db:
        yield db


def probe_on(db: ScratchDB, **settings: object) -> BusinessProbe:
    """A business probe reading db, on its own pool."""
    config = BusinessConfig.model_validate({"interval": "5s", "quota_interval": "1ms", **settings})
    return BusinessProbe(config, MySQLPool(SecretStr(db.exporter_dsn), maxsize=2))


def reads_of(db: ScratchDB, statements: list[str]) -> list[str]:
    """The statements on db's tables that are neither an EXPLAIN nor an information_schema read."""
    return [
        s
        for s in statements
        if db.name in s and not s.startswith("EXPLAIN ") and "information_schema" not in s
    ]


@pytest.mark.parametrize("broken", sorted(BROKEN))
async def test_a_probe_that_would_scan_tasks_refuses_to_read(
    copy: ScratchDB, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    copy.query(BROKEN[broken])
    probe = probe_on(copy)
    try:
        with caplog.at_level(logging.ERROR), general_log(copy) as statements:
            first = await run_bounded(probe)
            second = await run_bounded(probe)
        copy.query(
            "ALTER TABLE tasks DROP INDEX IF EXISTS idx_tasks_updated_id,"
            " ADD INDEX idx_tasks_updated_id (updated_at, id)"
        )
        fixed = await run_bounded(probe)
    finally:
        await probe.close()
    for outcome in (first, second):
        assert (outcome.status, outcome.reason) == (Status.DOWN, Reason.SCHEMA), outcome
        assert outcome.families == ()
        assert outcome.detail is not None
        assert "idx_tasks_updated_id" in outcome.detail and "obsctl check db" in outcome.detail
    assert "schema" in first.phases
    assert statements, "the general log caught nothing: the check cannot have run"
    assert any(s.startswith("EXPLAIN ") and copy.name in s for s in statements), statements
    assert reads_of(copy, statements) == [], "a statement read the broken tables"
    refusals = [r for r in caplog.records if r.name == "obsctl.exporter.probes.business"]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "idx_tasks_updated_id" in refusals[0].getMessage()
    # The index added while the exporter runs: the next run starts reading, no restart.
    assert fixed.status is Status.OK, (fixed.reason, fixed.detail)
    assert probe.ledger is not None


async def test_a_missing_column_is_refused_too(copy: ScratchDB) -> None:
    copy.query("ALTER TABLE tasks DROP COLUMN finished_at")
    probe = probe_on(copy)
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert (outcome.status, outcome.reason) == (Status.DOWN, Reason.SCHEMA)
    assert outcome.detail is not None and "tasks.finished_at" in outcome.detail


async def test_the_other_probes_keep_working(copy: ScratchDB) -> None:
    copy.query(BROKEN["missing"])
    config = ExporterConfig.model_validate(
        {"mysql": {"dsn": copy.exporter_dsn}, "business": {"interval": "5s"}}
    )
    probes = build_probes(config)
    store = ResultStore()
    try:
        for probe in probes:
            store.register(probe.kind, probe.target, probe.interval_seconds)
            store.record(await run_bounded(probe))
    finally:
        for probe in probes:
            await probe.close()
    text = generate_latest(build_registry(store)).decode()
    assert 'obsctl_probe_success{probe="mysql",target="main"} 1.0' in text
    assert 'obsctl_probe_success{probe="business",target="platform"} 0.0' in text
    assert (
        'obsctl_probe_failure_reason{probe="business",reason="schema",target="platform"} 1.0'
        in text
    )
    assert "task_created_total" not in text


async def test_a_renamed_schema_is_read_once_mapped(empty: ScratchDB) -> None:
    create_renamed(empty)
    unmapped = probe_on(empty)
    try:
        refused = await run_bounded(unmapped)
    finally:
        await unmapped.close()
    assert (refused.status, refused.reason) == (Status.DOWN, Reason.SCHEMA)
    assert refused.detail is not None and "no table tasks" in refused.detail

    probe = probe_on(empty, tables=RENAMED_MAPPING, features=["matting"])
    try:
        first = await run_bounded(probe)
        assert first.status is Status.OK, (first.reason, first.detail)
        empty.query(
            "INSERT INTO jobs (kind, vendor, state, created, modified, done_at) VALUES"
            " ('matting', 'alpha', 'done', NOW(3), NOW(3), NOW(3)),"
            " ('matting', 'alpha', 'done', NOW(3), NOW(3), NOW(3)),"
            " ('matting', 'alpha', 'error', NOW(3), NOW(3), NOW(3)),"
            " ('matting', 'beta', 'timeout', NOW(3), NOW(3), NOW(3)),"
            " ('matting', 'beta', 'running', NOW(3), NOW(3), NULL),"
            # 'succeeded' means nothing on this platform: not a terminal status.
            " ('matting', 'beta', 'succeeded', NOW(3), NOW(3), NULL)"
        )
        empty.query("UPDATE credits SET spent_units = spent_units + 6 WHERE uid = 1")
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.OK, (outcome.reason, outcome.detail)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in outcome.families
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    assert value("task_created_total", feature="matting", provider="alpha") == 3
    assert value("task_created_total", feature="matting", provider="beta") == 3
    assert value("task_succeeded_total", feature="matting", provider="alpha") == 2
    assert value("task_succeeded_total", feature="matting", provider="beta") == 0
    assert value("task_failed_total", feature="matting", provider="alpha") == 1
    assert value("task_failed_total", feature="matting", provider="beta") == 1
    assert value("quota_remaining") == 10
    assert value("quota_exhausted_users") == 1
    assert value("quota_consumed_total") == 6


def test_the_change_feed_selects_the_columns_of_a_task_row() -> None:
    assert TaskRow._fields == TASK_ROW_ROLES


@pytest.mark.parametrize(
    ("mapping", "where"),
    [
        ({"tasks": {"name": "tasks`; DROP TABLE x"}}, ("tasks", "name")),
        ({"tasks": {"columns": {"updated_at": "id"}}}, ("tasks", "columns")),
        ({"tasks": {"statuses": {"succeeded": ["ok"], "failed": ["ok"]}}}, ("tasks", "statuses")),
        ({"tasks": {"statuses": {"succeeded": []}}}, ("tasks", "statuses", "succeeded")),
        ({"quotas": {"columns": {"used": "user_id"}}}, ("quotas",)),
        ({"tasks": {"colour": "blue"}}, ("tasks", "colour")),
    ],
)
def test_the_mapping_rejects_names_it_cannot_use(
    mapping: dict[str, object], where: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as bad:
        BusinessTables.model_validate(mapping)
    assert [e["loc"][: len(where)] for e in bad.value.errors()] == [where]


def test_mysql_explain_rows_are_judged_like_mariadb_ones() -> None:
    # MySQL 8's traditional EXPLAIN: rows as an int, plus partitions and filtered.
    scan = plan_step(
        {"id": 1, "select_type": "SIMPLE", "table": "tasks", "partitions": None, "type": "ALL",
         "possible_keys": None, "key": None, "key_len": None, "ref": None, "rows": 1_200_345,
         "filtered": 33.33, "Extra": "Using where; Using filesort"}
    )  # fmt: skip
    ranged = plan_step(
        {"id": 1, "select_type": "SIMPLE", "table": "tasks", "partitions": None, "type": "range",
         "possible_keys": "idx_tasks_updated_id", "key": "idx_tasks_updated_id", "key_len": "15",
         "ref": None, "rows": 812, "filtered": 100.0, "Extra": "Using index condition"}
    )  # fmt: skip
    assert (scan.rows, reads_in_full(scan, "tasks")) == (1_200_345, True)
    assert (ranged.rows, reads_in_full(ranged, "tasks")) == (812, False)
    assert explain_prefix("8.0.36") == "EXPLAIN FORMAT=TRADITIONAL "
    assert explain_prefix("10.11.19-MariaDB-0+deb12u1-log") == "EXPLAIN "
