"""What a database lacks for the business reader: findings, EXPLAIN plans and their verdicts.

Pure functions over what `business_inspect` read (no I/O here): each table, column and index of
`business_schema.requirements` becomes a Finding, passed or failed with its fix and, when obsctl
can propose one, its DDL; each statement's EXPLAIN becomes a Plan, failed when it would read
its table from end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from obsctl.exporter.probes.business_schema import (
    ColumnNeed,
    IndexNeed,
    SentStatement,
    TableNeed,
)
from obsctl.exporter.probes.business_sql import quote

# EXPLAIN access types that read a table (or a whole index of it) from end to end.
FULL_SCAN_TYPES = frozenset({"ALL", "index"})
HINT = "run `obsctl check db` for the DDL"


class Verdict(StrEnum):
    """The result of one finding."""

    OK = "ok"
    FAIL = "fail"
    SKIPPED = "skipped"


class Kind(StrEnum):
    """What a finding is about."""

    TABLE = "table"
    COLUMN = "column"
    INDEX = "index"
    PLAN = "plan"


@dataclass(frozen=True)
class Finding:
    """One thing checked: a table, column or index the reader needs, or a statement's plan."""

    kind: Kind
    table: str
    name: str
    verdict: Verdict
    message: str
    fix: str | None = None
    ddl: str | None = None  # the statement that adds what is missing, when obsctl can propose one
    undo: str | None = None  # the statement that removes it again

    @property
    def ok(self) -> bool:
        """Not a problem (passed, or skipped because another finding explains it)."""
        return self.verdict is not Verdict.FAIL


@dataclass(frozen=True)
class PlanStep:
    """One row of EXPLAIN's traditional output (MariaDB's and MySQL's share these columns)."""

    table: str | None
    type: str | None
    key: str | None
    rows: int | None
    extra: str


@dataclass(frozen=True)
class Plan:
    """What EXPLAIN said about one statement the reader sends."""

    statement: SentStatement
    steps: tuple[PlanStep, ...] = ()
    error: str | None = None

    @property
    def full_scans(self) -> tuple[PlanStep, ...]:
        """Steps that would read the statement's indexed table from end to end."""
        if not self.statement.indexed:
            return ()
        return tuple(s for s in self.steps if reads_in_full(s, self.statement.table))


@dataclass(frozen=True)
class SchemaReport:
    """Everything found on one database."""

    database: str
    server: str
    findings: tuple[Finding, ...]
    plans: tuple[Plan, ...]

    @property
    def problems(self) -> tuple[Finding, ...]:
        """The findings that keep the reader from running."""
        return tuple(f for f in self.findings if not f.ok)

    @property
    def ok(self) -> bool:
        """True when the reader can run on this schema without a full scan."""
        return not self.problems

    def summary(self) -> str:
        """One line naming the first problem, for a probe's detail."""
        problems = self.problems
        if not problems:
            return "the schema serves every statement of the reader through an index"
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{problems[0].message}{more}; {HINT}"


class SchemaRefused(Exception):
    """The schema cannot serve the reader: something is missing or a statement would scan."""

    def __init__(self, report: SchemaReport) -> None:
        self.report = report
        super().__init__(report.summary())


@dataclass(frozen=True)
class IndexInfo:
    """An index as information_schema.STATISTICS describes it (column names in lower case)."""

    name: str
    columns: tuple[str, ...]
    unique: bool


def reads_in_full(step: PlanStep, table: str) -> bool:
    """Whether an EXPLAIN step reads `table` whole: type ALL or index, or no key at all."""
    if step.table is None or step.table.lower() != table.lower():
        return False
    return step.type in FULL_SCAN_TYPES or not step.key


def plan_step(row: Mapping[str, Any]) -> PlanStep:
    """A PlanStep from one EXPLAIN row as a dict (column names in any case)."""
    lower = {str(k).lower(): v.decode() if isinstance(v, bytes) else v for k, v in row.items()}
    rows = lower.get("rows")
    return PlanStep(
        table=lower.get("table"),
        type=lower.get("type"),
        key=lower.get("key"),
        rows=int(rows) if rows is not None else None,
        extra=str(lower.get("extra") or ""),
    )


def describe_step(step: PlanStep) -> str:
    """One EXPLAIN step in a few words: table, access type, key and rows estimate."""
    if step.table is None:
        return step.extra or "no table read"
    key = f" key={step.key}" if step.key else " no key"
    rows = f" rows~{step.rows:,}" if step.rows is not None else ""
    return f"{step.table} {step.type}{key}{rows}"


def table_findings(
    need: TableNeed,
    database: str,
    columns: Mapping[str, str] | None,
    indexes: list[IndexInfo],
) -> list[Finding]:
    """The findings of one table, given its columns (lower case -> data type) and indexes."""
    if columns is None:
        return [
            Finding(
                Kind.TABLE,
                need.name,
                need.name,
                Verdict.FAIL,
                f"no table {need.name} in {database} (or the exporter account may not read it)",
                fix=f"set business.tables.{need.key}.name to the table that holds {need.why},"
                f" or GRANT SELECT ON {quote(database)}.* to the exporter account",
            )
        ]
    found = [Finding(Kind.TABLE, need.name, need.name, Verdict.OK, f"table {need.name}")]
    found.extend(column_finding(c, columns.get(c.name.lower())) for c in need.columns)
    if need.index is not None:
        found.append(index_finding(need.index, indexes))
    return found


def column_finding(need: ColumnNeed, data_type: str | None) -> Finding:
    """Whether the column is there with a type the reader can use."""
    where = f"{need.table}.{need.name}"

    def fail(message: str, fix: str, ddl: tuple[str, str] | None = None) -> Finding:
        add, undo = ddl or (None, None)
        return Finding(Kind.COLUMN, need.table, need.name, Verdict.FAIL, message, fix, add, undo)

    if data_type is not None and data_type in need.types:
        message = f"column {where} ({data_type})"
        return Finding(Kind.COLUMN, need.table, need.name, Verdict.OK, message)
    if data_type is not None:
        wanted = " or ".join(sorted(need.types))
        return fail(
            f"column {where} is {data_type}; the reader needs {wanted}",
            f"set {need.mapping_key} to a column of that type",
        )
    ddl = need.ddl()
    if ddl is None:
        return fail(f"no column {where}", f"set {need.mapping_key} to the column that holds it")
    return fail(
        f"no column {where}",
        f"add it, or set {need.mapping_key} if it exists under another name",
        ddl,
    )


def index_finding(need: IndexNeed, indexes: list[IndexInfo]) -> Finding:
    """Whether the named index leads with the needed columns; else another that does, or DDL."""
    wanted = tuple(c.lower() for c in need.columns)
    shown = f"{need.name} ({', '.join(need.columns)})"

    def fits(index: IndexInfo) -> bool:
        return index.columns[: len(wanted)] == wanted and (index.unique or not need.unique)

    def fail(message: str, fix: str, ddl: tuple[str, str] | None = None) -> Finding:
        add, undo = ddl or (None, None)
        return Finding(Kind.INDEX, need.table, need.name, Verdict.FAIL, message, fix, add, undo)

    named = next((i for i in indexes if i.name.lower() == need.name.lower()), None)
    if named is not None and fits(named):
        return Finding(Kind.INDEX, need.table, need.name, Verdict.OK, f"index {shown}")
    if named is None:
        message = f"no {'unique index' if need.unique else 'index'} {shown} on {need.table}"
    else:
        not_unique = ", not unique" if need.unique and not named.unique else ""
        message = (
            f"index {need.name} on {need.table} is ({', '.join(named.columns)}){not_unique};"
            f" the reader needs {shown}"
        )
    other = next((i for i in sorted(indexes, key=lambda i: i.name) if fits(i)), None)
    if other is not None:
        columns = ", ".join(other.columns)
        return fail(message, f"{other.name} ({columns}) fits: set {need.mapping_key}: {other.name}")
    if named is not None:
        return fail(
            message,
            f"the name is taken: set {need.mapping_key} to a new name, then run"
            " `obsctl check db` again for its DDL",
        )
    return fail(message, "add it", need.ddl())


def plan_finding(plan: Plan, failing: set[str]) -> Finding:
    """A statement's verdict; an EXPLAIN that failed on a table with problems is skipped."""
    statement = plan.statement
    table, named = statement.table, f"{statement.name} ({statement.purpose})"

    def result(verdict: Verdict, message: str, fix: str | None = None) -> Finding:
        return Finding(Kind.PLAN, table, statement.name, verdict, message, fix)

    if plan.error is not None:
        if table.lower() in failing:
            return result(Verdict.SKIPPED, f"{named}: not explained until {table} is fixed")
        return result(
            Verdict.FAIL,
            f"{named}: EXPLAIN failed: {plan.error}",
            "the exporter account needs SELECT on the tables it reads",
        )
    shown = "; ".join(describe_step(s) for s in plan.steps) or "no table read"
    scans = plan.full_scans
    if scans:
        rows = sum(s.rows or 0 for s in scans)
        return result(
            Verdict.FAIL,
            f"{named} would read {table} in full (about {rows:,} rows): {shown}",
            f"the reader will not send it: see what {table} lacks above",
        )
    return result(Verdict.OK, f"{named}: {shown}")
