"""The demo platform's tasks_daily_stats aggregator (BE-DB-004) on the stack's real MariaDB."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import RunningStack, mysql_connect, wait_for

DEMO = Path(__file__).resolve().parents[2] / "obsctl" / "stack" / "demo_platform"
NODE = shutil.which("node")
Counts = dict[tuple[str, str], int]


def _snapshot(stack: RunningStack) -> tuple[Counts, Counts]:
    """(the summary, a recount of tasks up to its cursor), read in one consistent snapshot."""
    conn = mysql_connect(stack.env["PLATFORM_MYSQL_DSN"])
    try:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SELECT DATE_FORMAT(`date`, '%Y-%m-%d'), status, `count`"
                        " FROM tasks_daily_stats")  # fmt: skip
            summary = {(day, status): int(n) for day, status, n in cur.fetchall() if n}
            cur.execute(
                "SELECT DATE_FORMAT(t.finished_at, '%Y-%m-%d'), t.status, COUNT(*)"
                " FROM tasks t JOIN tasks_daily_stats_cursor c ON c.name = 'daily'"
                " WHERE t.status IN ('succeeded', 'failed') AND (t.finished_at < c.finished_at"
                " OR (t.finished_at = c.finished_at AND t.id <= c.task_id))"
                " GROUP BY 1, 2"
            )
            recount = {(day, status): int(n) for day, status, n in cur.fetchall()}
            cur.execute("COMMIT")
    finally:
        conn.close()
    return summary, recount


def _platform_metric(stack: RunningStack, name: str) -> float:
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not on the platform's /metrics"
    return float(found.group(1))


def _admin(stack: RunningStack, path: str) -> dict[str, object]:
    response = httpx.post(
        f"{stack.env['DEMO_APP_URL']}{path}",
        headers={"Authorization": f"Bearer {stack.env['DEMO_ADMIN_TOKEN']}"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, object] = response.json()
    return body


@pytest.fixture
def paused(stack: RunningStack) -> Iterator[None]:
    """The aggregator paused for the test, and always resumed after it."""
    assert _admin(stack, "/admin/daily-stats/pause") == {"daily_stats_paused": True}
    try:
        yield
    finally:
        _admin(stack, "/admin/daily-stats/resume")


def test_the_summary_counts_every_finished_task_up_to_its_cursor_once(
    stack: RunningStack,
) -> None:
    # Failed tasks come later than succeeded ones (three attempts first): wait for both.
    def counted() -> tuple[Counts, Counts] | None:
        summary, recount = _snapshot(stack)
        statuses = {status for _, status in summary}
        enough = sum(summary.values()) >= 20 and statuses == {"succeeded", "failed"}
        return (summary, recount) if enough else None

    summary, recount = wait_for("succeeded and failed tasks counted", counted, timeout=120)
    assert summary == recount


def test_a_paused_aggregator_falls_behind_then_catches_up_losing_nothing(
    stack: RunningStack, paused: None
) -> None:
    before, _ = _snapshot(stack)
    wait_for(
        "the aggregator's lag to grow while paused",
        lambda: _platform_metric(stack, "tasks_daily_stats_lag_seconds") >= 8,
        timeout=60,
    )
    during, _ = _snapshot(stack)
    assert during == before, "a paused aggregator changed the summary"
    assert _admin(stack, "/admin/daily-stats/resume") == {"daily_stats_paused": False}
    wait_for(
        "the aggregator to catch up after resume",
        lambda: _platform_metric(stack, "tasks_daily_stats_lag_seconds") < 5,
        timeout=30,
    )
    summary, recount = _snapshot(stack)
    assert summary == recount
    assert sum(summary.values()) > sum(before.values())


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_aggregators_of_several_processes_never_count_a_task_twice(stack: RunningStack) -> None:
    # A second aggregator, as another PM2 worker would run it, racing the platform's own.
    script = """
      const { createKnex } = require('./src/db');
      const { parseMysqlDsn } = require('./src/config');
      const { DailyStatsAggregator } = require('./src/daily-stats');
      const noop = { inc() {}, set() {} };
      const metrics = { lag: noop, lastRun: noop, applied: noop, runs: noop };
      const knex = createKnex(parseMysqlDsn(process.env.PLATFORM_MYSQL_DSN));
      const aggregator = new DailyStatsAggregator({ knex, metrics, options: { settleMs: 0 } });
      (async () => {
        let folded = 0;
        for (let i = 0; i < 40; i += 1) {
          folded += await aggregator.runOnce();
          await new Promise((r) => setTimeout(r, 100));
        }
        await knex.destroy();
        console.log(JSON.stringify({ folded }));
      })().catch((err) => { console.error(err); process.exit(1); });
    """
    assert NODE is not None
    env = {**os.environ, "PLATFORM_MYSQL_DSN": stack.env["PLATFORM_MYSQL_DSN"]}
    result = subprocess.run(
        [NODE, "-e", script], cwd=DEMO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["folded"] > 0
    summary, recount = _snapshot(stack)
    assert summary == recount
