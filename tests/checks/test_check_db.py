"""`obsctl check db` against the stack's real MariaDB, run as the real command line.

Broken copies of the platform's schema must be named with their exact DDL, the knex migration
written for them must load in the real `node` and, applied by the real knex, make the check
pass; a full scan is refused; a database that cannot be reached exits 2 without the password.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import yaml

from obsctl.stack.fakes.launcher import free_port

from conftest import RunningStack
from scratch_schema import HISTORY_ROWS, RENAMED_MAPPING, ScratchDB, create_renamed, scratch_db

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORTER_CONFIG = "exporters/obsctl-exporter.yml"

INDEX_DDL = (
    "CREATE INDEX `idx_tasks_updated_id` ON `tasks` (`updated_at`, `id`)"
    " ALGORITHM=INPLACE LOCK=NONE"
)
COLUMN_DDL = "ALTER TABLE `tasks` ADD COLUMN `finished_at` DATETIME(3) NULL"
MIGRATION_NAME = re.compile(r"\d{14}_obsctl_business_reader\.js")
DEMO_PLATFORM = REPO_ROOT / "obsctl" / "stack" / "demo_platform"
# Applies or rolls back a migrations directory with the demo platform's own knex and mysql2.
KNEX = r"""
const { createRequire } = require('node:module');
const requireFromPlatform = createRequire(process.env.DEMO_PLATFORM + '/package.json');
const knex = requireFromPlatform('knex')({
  client: 'mysql2', connection: JSON.parse(process.env.CONNECTION),
});
knex.migrate[process.argv[1]]({ directory: process.env.MIGRATIONS, loadExtensions: ['.js'] })
  .then((result) => { console.log(JSON.stringify(result)); })
  .catch((err) => { console.error(err.message); process.exitCode = 1; })
  .finally(() => knex.destroy());
"""
REQUIRE = r"""
const migration = require(process.argv[1]);
if (typeof migration.up !== 'function' || typeof migration.down !== 'function') process.exit(3);
"""


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


def stack_env(stack: RunningStack, **overrides: str) -> dict[str, str]:
    """The environment of a shell that loaded stack.env."""
    return {**os.environ, **stack.env, **overrides}


def check_db(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`obsctl check db ARGS` in cwd."""
    return subprocess.run(
        [sys.executable, "-m", "obsctl", "check", "db", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrations_in(directory: Path) -> list[Path]:
    """The migrations obsctl wrote there."""
    return sorted(directory.glob("*_obsctl_business_reader.js"))


def node_requires(path: Path) -> None:
    """The real node loads the file and finds exports.up and exports.down."""
    done = subprocess.run(["node", "-e", REQUIRE, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def knex(action: str, db: ScratchDB, directory: Path) -> Any:
    """Run knex.migrate.latest or .rollback on db as the platform account; its result."""
    parts = urlsplit(db.platform_dsn)
    connection = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": db.name,
    }
    env = {
        **os.environ,
        "DEMO_PLATFORM": str(DEMO_PLATFORM),
        "CONNECTION": json.dumps(connection),
        "MIGRATIONS": str(directory),
    }
    done = subprocess.run(
        ["node", "-e", KNEX, action], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def password_of(dsn: str) -> str:
    """The password part of a DSN."""
    return unquote(urlsplit(dsn).password or "")


def test_the_demo_schema_passes(stack: RunningStack, tmp_path: Path) -> None:
    # The default config is the exporter config of the project the user stands in.
    (tmp_path / "exporters").mkdir()
    shutil.copy(REPO_ROOT / EXPORTER_CONFIG, tmp_path / EXPORTER_CONFIG)
    shutil.copy(REPO_ROOT / "obsctl.yaml", tmp_path / "obsctl.yaml")
    result = check_db(cwd=tmp_path, env=stack_env(stack))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "obsctl check db: platform on 127.0.0.1:" in out
    assert "ok    index idx_tasks_updated_id (updated_at, id)" in out
    assert "ok    column tasks.finished_at (datetime)" in out
    assert "ok    batch (the change feed): tasks range key=idx_tasks_updated_id rows~" in out
    assert "ok    newest (at start): Select tables optimized away" in out
    assert "The business reader can run on this database." in out
    assert "FAIL" not in out
    assert not (tmp_path / "migrations").exists()
    assert password_of(stack.env["OBSCTL_MYSQL_DSN"]) not in out + result.stderr


@pytest.mark.needs_tools("node")
def test_a_missing_index_is_named_with_its_ddl_and_the_migration_adds_it(
    stack: RunningStack, copy: ScratchDB, tmp_path: Path
) -> None:
    copy.query("ALTER TABLE tasks DROP INDEX idx_tasks_updated_id")
    env = stack_env(stack, OBSCTL_MYSQL_DSN=copy.exporter_dsn)
    config = str(REPO_ROOT / EXPORTER_CONFIG)
    result = check_db("--config", config, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "FAIL  no index idx_tasks_updated_id (updated_at, id) on tasks" in out
    assert f"        {INDEX_DDL};" in out
    # Without the index, even the start-up MAX(updated_at) would read the whole table.
    assert re.search(
        r"FAIL  newest \(at start\) would read tasks in full \(about [\d,]+ rows\)", out
    )
    assert "column tasks.finished_at (datetime)" in out
    (migration,) = migrations_in(tmp_path / "migrations")
    assert MIGRATION_NAME.fullmatch(migration.name)
    assert f"knex migration written: migrations/{migration.name}" in out
    text = migration.read_text()
    assert json.dumps(INDEX_DDL) in text and "ADD COLUMN" not in text
    node_requires(migration)

    again = check_db("--config", config, "--json", cwd=tmp_path, env=env)
    assert again.returncode == 1, again.stderr
    report = json.loads(again.stdout)
    assert report["migration"] == {"path": f"migrations/{migration.name}", "written": False}
    assert migrations_in(tmp_path / "migrations") == [migration]
    (index,) = [f for f in report["findings"] if f["verdict"] == "fail" and f["kind"] == "index"]
    assert (index["name"], index["ddl"]) == ("idx_tasks_updated_id", INDEX_DDL)

    applied = knex("latest", copy, tmp_path / "migrations")
    assert applied[1] == [migration.name]
    assert copy.query(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
        " AND INDEX_NAME = 'idx_tasks_updated_id' ORDER BY SEQ_IN_INDEX",
        (copy.name,),
    ) == [("updated_at",), ("id",)]
    fixed = check_db("--config", config, cwd=tmp_path, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "The business reader can run on this database." in fixed.stdout

    knex("rollback", copy, tmp_path / "migrations")
    undone = check_db("--config", config, cwd=tmp_path, env=env)
    assert undone.returncode == 1 and "FAIL  no index idx_tasks_updated_id" in undone.stdout


@pytest.mark.needs_tools("node")
def test_a_missing_finished_at_is_named_with_its_ddl(copy: ScratchDB, tmp_path: Path) -> None:
    copy.query("ALTER TABLE tasks DROP COLUMN finished_at")
    where = tmp_path / "platform" / "migrations"
    # --dsn alone: no config needed, the mapping is the default one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
    result = check_db(
        "--dsn", copy.exporter_dsn, "--migration-dir", str(where), cwd=tmp_path, env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  no column tasks.finished_at" in result.stdout
    assert f"        {COLUMN_DDL};" in result.stdout
    assert "ok    index idx_tasks_updated_id (updated_at, id)" in result.stdout
    (migration,) = migrations_in(where)
    text = migration.read_text()
    assert (
        f"exports.up = async (knex) => {{\n  await knex.raw({json.dumps(COLUMN_DDL)});\n}};" in text
    )
    undo = json.dumps("ALTER TABLE `tasks` DROP COLUMN `finished_at`")
    assert f"exports.down = async (knex) => {{\n  await knex.raw({undo});\n}};" in text
    node_requires(migration)
    knex("latest", copy, where)
    fixed = check_db(
        "--dsn", copy.exporter_dsn, "--migration-dir", str(where), cwd=tmp_path, env=env
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert migrations_in(where) == [migration]


def test_a_renamed_schema_passes_once_mapped(empty: ScratchDB, tmp_path: Path) -> None:
    create_renamed(empty)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
    unmapped = check_db("--dsn", empty.exporter_dsn, cwd=tmp_path, env=env)
    assert unmapped.returncode == 1, unmapped.stdout + unmapped.stderr
    assert f"FAIL  no table tasks in {empty.name}" in unmapped.stdout
    assert (
        "fix: set business.tables.tasks.name to the table that holds the tasks" in unmapped.stdout
    )
    assert "No migration written" in unmapped.stdout
    assert not (tmp_path / "migrations").exists()

    # The mapping from the config, the DSN from --dsn (the config names none).
    config = tmp_path / "exporter.yml"
    config.write_text(
        yaml.safe_dump({"mysql": {"interval": "10s"}, "business": {"tables": RENAMED_MAPPING}})
    )
    mapped = check_db("--config", str(config), "--dsn", empty.exporter_dsn, cwd=tmp_path, env=env)
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
    assert "ok    index idx_jobs_modified (modified, job_id)" in mapped.stdout
    assert "ok    index PRIMARY (uid)" in mapped.stdout
    assert "batch (the change feed): jobs range key=idx_jobs_modified" in mapped.stdout


def test_a_full_scan_is_refused(copy: ScratchDB, tmp_path: Path) -> None:
    copy.query(
        "ALTER TABLE tasks DROP INDEX idx_tasks_updated_id,"
        " ADD INDEX idx_tasks_updated_id (status, updated_at)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
    result = check_db("--dsn", copy.exporter_dsn, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r"FAIL  batch \(the change feed\) would read tasks in full \(about [\d,]+ rows\):"
        r" tasks ALL no key",
        result.stdout,
    ), result.stdout
    assert "index idx_tasks_updated_id on tasks is (status, updated_at)" in result.stdout
    report = json.loads(
        check_db("--dsn", copy.exporter_dsn, "--json", cwd=tmp_path, env=env).stdout
    )
    plans = {p["statement"]: p for p in report["plans"]}
    assert plans["batch"]["full_scan"] is True
    (step,) = plans["batch"]["steps"]
    assert (step["table"], step["type"], step["key"]) == ("tasks", "ALL", None)
    assert step["rows"] >= HISTORY_ROWS
    assert "FORCE INDEX (`idx_tasks_updated_id`)" in plans["batch"]["sql"]
    assert plans["quotas"]["full_scan"] is False
    # The name is taken by another index: obsctl proposes no DDL that would drop it.
    assert report["migration"] is None and not (tmp_path / "migrations").exists()


def test_a_database_that_cannot_be_checked_exits_2_without_the_password(
    copy: ScratchDB, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
    parts = urlsplit(copy.exporter_dsn)
    wrong = "Wr0ng-Passw0rd-4711"
    bad_password = urlunsplit(
        parts._replace(netloc=f"obsctl_exporter:{wrong}@{parts.netloc.split('@')[1]}")
    )
    closed = urlunsplit(parts._replace(netloc=f"u:{wrong}@127.0.0.1:{free_port()}"))
    no_database = urlunsplit(parts._replace(path=""))
    for dsn, expected in (
        (bad_password, "Access denied for user 'obsctl_exporter'"),
        (closed, "Can't connect"),
        (no_database, "the DSN names no database"),
        ("postgres://u:" + wrong + "@127.0.0.1/x", "bad DSN: expected a DSN such as mysql://"),
    ):
        result = check_db("--dsn", dsn, cwd=tmp_path, env=env)
        assert result.returncode == 2, (expected, result.stdout, result.stderr)
        assert expected in result.stderr, result.stderr
        assert wrong not in result.stdout + result.stderr
        assert password_of(copy.exporter_dsn) not in result.stdout + result.stderr
    missing = check_db(cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert f"no obsctl.yaml in {tmp_path} or any directory above it" in missing.stderr
    assert not (tmp_path / "migrations").exists()


def test_validate_live_runs_check_db_on_the_exporters_database(
    stack: RunningStack, copy: ScratchDB, tmp_path: Path
) -> None:
    def validate_live(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "obsctl", "validate", "--live", "--project", str(REPO_ROOT)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    good = validate_live(stack_env(stack))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok  live: database (check db)" in good.stderr
    copy.query("ALTER TABLE tasks DROP INDEX idx_tasks_updated_id")
    bad = validate_live(stack_env(stack, OBSCTL_MYSQL_DSN=copy.exporter_dsn))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL  live: database (check db)" in bad.stderr
    assert "no index idx_tasks_updated_id (updated_at, id) on tasks" in bad.stdout
    assert "fix: " in bad.stdout and "ok  promtool" in bad.stderr, "the offline checks still ran"
    assert password_of(copy.exporter_dsn) not in bad.stdout + bad.stderr
