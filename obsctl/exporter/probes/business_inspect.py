"""Check a database against what the business reader needs: information_schema and EXPLAIN.

`inspect` runs on one connection of the read-only exporter account and never changes anything:
it reads information_schema.COLUMNS and STATISTICS for the mapped tables and EXPLAINs each
statement the reader sends (in the tabular format MariaDB and MySQL share). The business probe
runs it before its first read and refuses to start on any problem; `obsctl check db` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pymysql

from obsctl.exporter.probes._mysql_pool import describe_error
from obsctl.exporter.probes.business_report import (
    Finding,
    IndexInfo,
    Plan,
    SchemaReport,
    plan_finding,
    plan_step,
    table_findings,
)
from obsctl.exporter.probes.business_schema import SentStatement, requirements, sent_statements
from obsctl.exporter.probes.business_sql import Statements

if TYPE_CHECKING:
    from obsctl.exporter.probes.business_config import BusinessConfig


async def inspect(conn: Any, database: str, config: BusinessConfig) -> SchemaReport:
    """Check database against what the reader needs; reads only, on the given connection."""
    ((version, now),) = await _fetch(conn, "SELECT VERSION(), NOW(3)")
    needs = requirements(config.tables, learn_providers=not config.providers)
    names = tuple(need.name for need in needs)
    columns = await _columns(conn, database, names)
    indexes = await _indexes(conn, database, names)
    findings: list[Finding] = []
    for need in needs:
        key = need.name.lower()
        findings.extend(table_findings(need, database, columns.get(key), indexes.get(key, [])))
    failing = {f.table.lower() for f in findings if not f.ok}
    plans: list[Plan] = []
    prefix = explain_prefix(_text(version))
    for statement in sent_statements(Statements(database, config.tables), config, now):
        plan = await _explain(conn, prefix, statement)
        plans.append(plan)
        findings.append(plan_finding(plan, failing))
    return SchemaReport(database, _text(version), tuple(findings), tuple(plans))


def explain_prefix(version: str) -> str:
    """EXPLAIN in its tabular format: MySQL 8 may default to TREE or JSON (explain_format)."""
    return "EXPLAIN " if "mariadb" in version.lower() else "EXPLAIN FORMAT=TRADITIONAL "


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


async def _fetch(conn: Any, sql: str, args: Sequence[object] | None = None) -> list[Any]:
    cursor = await conn.cursor()
    await cursor.execute(sql, args)
    return list(await cursor.fetchall())


async def _columns(conn: Any, database: str, tables: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """table -> column -> data type (all lower case), for the tables the account may read."""
    rows = await _fetch(
        conn,
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
        f" WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({_placeholders(tables)})",
        (database, *tables),
    )
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        found.setdefault(_text(table).lower(), {})[_text(column).lower()] = _text(data_type).lower()
    return found


async def _indexes(conn: Any, database: str, tables: tuple[str, ...]) -> dict[str, list[IndexInfo]]:
    """table (lower case) -> its indexes with their columns in order."""
    rows = await _fetch(
        conn,
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS"
        f" WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({_placeholders(tables)})"
        " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database, *tables),
    )
    columns: dict[tuple[str, str], list[str]] = {}
    unique: dict[tuple[str, str], bool] = {}
    for table, index, non_unique, column in rows:
        key = (_text(table).lower(), _text(index))
        columns.setdefault(key, []).append(_text(column).lower())
        unique[key] = not int(non_unique)
    found: dict[str, list[IndexInfo]] = {}
    for (table, index), cols in columns.items():
        found.setdefault(table, []).append(IndexInfo(index, tuple(cols), unique[(table, index)]))
    return found


async def _explain(conn: Any, prefix: str, statement: SentStatement) -> Plan:
    try:
        cursor = await conn.cursor()
        await cursor.execute(prefix + statement.sql, statement.args)
        names = [d[0] for d in cursor.description or ()]
        rows = await cursor.fetchall()
    except pymysql.MySQLError as exc:
        if _client_side(exc):
            raise  # the connection failed, not the statement
        return Plan(statement, error=describe_error(exc))
    return Plan(statement, tuple(plan_step(dict(zip(names, row, strict=True))) for row in rows))


def _client_side(exc: pymysql.MySQLError) -> bool:
    # Client error numbers (CR_*) start at 2000: connection lost, server gone, ...
    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return isinstance(exc, pymysql.InterfaceError) or errno >= 2000
