"""`obsctl check db`: can the business reader run on this database, and what must be added if not.

The check connects with the exporter's own (read-only) account, runs the same inspection the
business probe runs before its first read (`business_inspect.inspect`), and reports it: each
table, column and index the reader needs, the DDL for what is missing, and the EXPLAIN of each
statement the reader sends. It never changes the database; the DDL goes into a knex migration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from pydantic import SecretStr

from obsctl.checks.knex_migration import Migration
from obsctl.configfile import scrub
from obsctl.exporter.probes._mysql_pool import MySQLAddress, MySQLPool, describe_error, parse_dsn
from obsctl.exporter.probes.business_config import BusinessConfig
from obsctl.exporter.probes.business_inspect import inspect
from obsctl.exporter.probes.business_report import Finding, Kind, SchemaReport, Verdict

# Enough for a connect and a handful of information_schema reads and EXPLAINs on a busy server.
CHECK_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10.0
_MARKS = {Verdict.OK: "ok", Verdict.FAIL: "FAIL", Verdict.SKIPPED: "skip"}


class CannotCheck(Exception):
    """The database could not be reached or asked; the message never holds the password."""


@dataclass(frozen=True)
class DbCheck:
    """A finished check: where it looked and what it found."""

    address: MySQLAddress
    report: SchemaReport


def check_database(
    dsn: SecretStr, config: BusinessConfig, timeout: float = CHECK_TIMEOUT
) -> DbCheck:
    """Inspect the database named by dsn for the reader configured by config."""
    try:
        address = parse_dsn(dsn.get_secret_value())
    except ValueError as exc:
        raise CannotCheck(f"bad DSN: {exc}") from None
    if not address.database:
        raise CannotCheck("the DSN names no database: the business reader reads the one it names")
    database = address.database
    try:
        report = asyncio.run(_inspect(dsn, database, config, timeout))
    except TimeoutError:
        raise CannotCheck(f"{_where(address)}: no answer within {timeout:g}s") from None
    except (pymysql.MySQLError, OSError) as exc:
        # The server's messages name the user, never the password; scrubbed all the same.
        message = scrub(describe_error(exc), {address.password} - {""})
        raise CannotCheck(f"{_where(address)}: {message}") from None
    return DbCheck(address, report)


async def _inspect(
    dsn: SecretStr, database: str, config: BusinessConfig, timeout: float
) -> SchemaReport:
    pool = MySQLPool(dsn, maxsize=1, connect_timeout=min(_CONNECT_TIMEOUT, timeout))
    try:
        async with asyncio.timeout(timeout), pool.connection() as conn:
            return await inspect(conn, database, config)
    finally:
        await pool.close()


def _where(address: MySQLAddress) -> str:
    return f"{address.database or ''} on {address.host}:{address.port} as {address.user}"


def render_text(check: DbCheck, migration: Migration | None) -> str:
    """The report for people: one line per finding, its fix and DDL under each problem."""
    report = check.report
    lines = [f"obsctl check db: {_where(check.address)} ({report.server})"]
    schema = [f for f in report.findings if f.kind is not Kind.PLAN]
    plans = [f for f in report.findings if f.kind is Kind.PLAN]
    lines.extend(_finding_lines(f) for f in schema)
    lines.append("EXPLAIN of each statement the reader sends:")
    lines.extend(_finding_lines(f) for f in plans)
    problems = report.problems
    lines.append("")
    if not problems:
        lines.append("The business reader can run on this database.")
        return "\n".join(lines)
    lines.append(
        f"{len(problems)} problem(s): the business probe reads nothing from this database"
        " until they are fixed."
    )
    if migration is None:
        lines.append("No migration written: nothing above is DDL obsctl can propose.")
    else:
        verb = "written" if migration.written else "already written (not applied yet)"
        lines.append(f"knex migration {verb}: {_shown(migration.path)}")
        lines.append(
            "  apply it with the platform's migrations (npx knex migrate:latest),"
            " then run `obsctl check db` again."
        )
    return "\n".join(lines)


def _finding_lines(finding: Finding) -> str:
    lines = [f"  {_MARKS[finding.verdict]:<5} {finding.message}"]
    if not finding.ok:
        if finding.fix:
            lines.append(f"        fix: {finding.fix}")
        if finding.ddl:
            lines.append(f"        {finding.ddl};")
    return "\n".join(lines)


def to_json(check: DbCheck, migration: Migration | None) -> dict[str, Any]:
    """The report for machines."""
    report, address = check.report, check.address
    return {
        "database": report.database,
        "host": address.host,
        "port": address.port,
        "user": address.user,
        "server": report.server,
        "ok": report.ok,
        "problems": len(report.problems),
        "findings": [
            {
                "kind": f.kind.value,
                "table": f.table,
                "name": f.name,
                "verdict": f.verdict.value,
                "message": f.message,
                "fix": f.fix,
                "ddl": f.ddl,
            }
            for f in report.findings
        ],
        "plans": [
            {
                "statement": p.statement.name,
                "table": p.statement.table,
                "sql": p.statement.sql,
                "error": p.error,
                "full_scan": bool(p.full_scans),
                "steps": [
                    {
                        "table": s.table,
                        "type": s.type,
                        "key": s.key,
                        "rows": s.rows,
                        "extra": s.extra,
                    }
                    for s in p.steps
                ],
            }
            for p in report.plans
        ],
        "migration": None
        if migration is None
        else {"path": _shown(migration.path), "written": migration.written},
    }


def _shown(path: Path) -> str:
    """`path` relative to the current directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
