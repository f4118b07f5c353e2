"""Scratch copies of the platform's schema in the stack's MariaDB, for the schema checks.

Each copy is its own database (the demo platform keeps writing `platform`), made as root over
the socket: the platform's tables with their rows and some older history, SELECT granted to the
exporter account and every privilege to the platform account (which applies migrations).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymysql

from conftest import RunningStack

EXPORTER = "'obsctl_exporter'@'127.0.0.1'"
PLATFORM = "'platform'@'127.0.0.1'"
TABLES = ("tasks", "quotas", "provider_configs")
HISTORY_ROWS = 20_000


@dataclass(frozen=True)
class ScratchDB:
    """A database the exporter account may read and the platform account may change."""

    name: str
    socket: Path
    exporter_dsn: str
    platform_dsn: str

    def query(self, sql: str, args: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement as root in this database and return its rows."""
        with (
            pymysql.connect(
                unix_socket=str(self.socket), user="root", database=self.name, autocommit=True
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(sql, args)
            return list(cur.fetchall())


def _in(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextlib.contextmanager
def scratch_db(stack: RunningStack, copy: bool = True) -> Iterator[ScratchDB]:
    """A new database; with copy, the platform's tables, their rows and older history."""
    name = f"chk_{uuid.uuid4().hex[:10]}"
    socket = stack.root / "mariadb" / "mysqld.sock"
    db = ScratchDB(
        name,
        socket,
        _in(stack.env["OBSCTL_MYSQL_DSN"], name),
        _in(stack.env["PLATFORM_MYSQL_DSN"], name),
    )
    with pymysql.connect(unix_socket=str(socket), user="root", autocommit=True) as root:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cur.execute(f"GRANT SELECT ON `{name}`.* TO {EXPORTER}")
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO {PLATFORM}")
        if copy:
            for table in TABLES:
                db.query(f"CREATE TABLE {table} LIKE platform.{table}")
                db.query(f"INSERT INTO {table} SELECT * FROM platform.{table}")
            add_history(db, HISTORY_ROWS)
        try:
            yield db
        finally:
            with root.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                for account in (EXPORTER, PLATFORM):
                    with contextlib.suppress(pymysql.OperationalError):  # already revoked
                        cur.execute(f"REVOKE ALL PRIVILEGES ON `{name}`.* FROM {account}")


def add_history(db: ScratchDB, rows: int) -> None:
    """Finished tasks from two days ago, so a full scan and a range read differ by far."""
    db.query(
        "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at,"
        " finished_at) SELECT 1 + seq % 100, 'matting', 'alpha', 'succeeded',"
        " NOW(3) - INTERVAL 2 DAY, NOW(3) - INTERVAL 2 DAY + INTERVAL seq MICROSECOND,"
        f" NOW(3) - INTERVAL 2 DAY FROM seq_1_to_{rows}"
    )
    db.query("ANALYZE TABLE tasks")


@contextlib.contextmanager
def general_log(db: ScratchDB) -> Iterator[list[str]]:
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
            row[0].decode() if isinstance(row[0], bytes) else str(row[0])
            for row in db.query(
                "SELECT argument FROM mysql.general_log WHERE command_type = 'Query'"
                " AND user_host LIKE 'obsctl_exporter%%' ORDER BY event_time"
            )
        )
        db.query("TRUNCATE mysql.general_log")


# A platform that names everything differently: the reader works on it once it is mapped.
RENAMED_DDL = (
    "CREATE TABLE jobs (job_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " kind VARCHAR(32) NOT NULL, vendor VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL,"
    " created DATETIME(3) NOT NULL, modified DATETIME(3) NOT NULL, done_at DATETIME(3) NULL,"
    " KEY idx_jobs_modified (modified, job_id))",
    "CREATE TABLE credits (uid BIGINT UNSIGNED NOT NULL PRIMARY KEY, left_units INT NOT NULL,"
    " spent_units INT NOT NULL DEFAULT 0)",
    "CREATE TABLE vendors (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32) NOT NULL)",
    "INSERT INTO vendors (name) VALUES ('alpha'), ('beta')",
    "INSERT INTO credits (uid, left_units, spent_units) VALUES (1, 10, 5), (2, 0, 20)",
)
RENAMED_MAPPING: dict[str, Any] = {
    "tasks": {
        "name": "jobs",
        "index": "idx_jobs_modified",
        "columns": {
            "id": "job_id",
            "feature": "kind",
            "provider": "vendor",
            "status": "state",
            "created_at": "created",
            "updated_at": "modified",
            "finished_at": "done_at",
        },
        "statuses": {"succeeded": "done", "failed": ["error", "timeout"]},
    },
    "quotas": {
        "name": "credits",
        "columns": {"user_id": "uid", "remaining": "left_units", "used": "spent_units"},
    },
    "provider_configs": {"name": "vendors", "columns": {"provider": "name"}},
}


def create_renamed(db: ScratchDB) -> None:
    """The renamed platform's tables in db (made without copy)."""
    for sql in RENAMED_DDL:
        db.query(sql)
