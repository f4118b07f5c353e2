"""What the business reader needs from the platform's schema, declared once from the mapping.

From `business_sql.BusinessTables`: the columns of each table with the types the reader can
work with (and, for the timestamps a platform may lack, the definition that adds them), the
index each table is walked by, and the statements the reader sends, built by the reader's own
`Statements` with parameters like a real run's. `business_inspect` checks a database against
these; `business_report` says what it found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from obsctl.exporter.probes.business_sql import (
    LEARNED_PROVIDER_LIMIT,
    BusinessTables,
    Statements,
    quote,
)

if TYPE_CHECKING:
    from obsctl.exporter.probes.business_config import BusinessConfig

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
NUMBER_TYPES = INTEGER_TYPES | {"decimal"}
TIME_TYPES = frozenset({"datetime", "timestamp"})
TEXT_TYPES = frozenset({"char", "varchar", "enum", "tinytext", "text"})

# Columns obsctl can propose to add: timestamps the database stamps itself. The others are the
# platform's own data; a missing one means the mapping names the wrong column.
_ADDABLE = {
    "created_at": "DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)",
    # ON UPDATE: every change is stamped by the server's clock, which the change feed relies on.
    "updated_at": "DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    " ON UPDATE CURRENT_TIMESTAMP(3)",
    "finished_at": "DATETIME(3) NULL",
}
_TASK_TYPES = {
    "id": INTEGER_TYPES,
    "feature": TEXT_TYPES,
    "provider": TEXT_TYPES,
    "status": TEXT_TYPES,
    "created_at": TIME_TYPES,
    "updated_at": TIME_TYPES,
    "finished_at": TIME_TYPES,
}
_QUOTA_TYPES = {"user_id": INTEGER_TYPES, "remaining": NUMBER_TYPES, "used": NUMBER_TYPES}
_MAPPING = "business.tables"


@dataclass(frozen=True)
class ColumnNeed:
    """A column the reader selects or filters on."""

    table: str
    name: str
    types: frozenset[str]
    mapping_key: str
    definition: str | None = None  # ADD COLUMN type and options, when obsctl may propose it

    def ddl(self) -> tuple[str, str] | None:
        """(ALTER TABLE that adds the column, the one that drops it), if it may be proposed."""
        if self.definition is None:
            return None
        table, column = quote(self.table), quote(self.name)
        return (
            f"ALTER TABLE {table} ADD COLUMN {column} {self.definition}",
            f"ALTER TABLE {table} DROP COLUMN {column}",
        )


@dataclass(frozen=True)
class IndexNeed:
    """An index the reader forces its walk through: its leading columns, unique or not."""

    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool
    mapping_key: str

    def ddl(self) -> tuple[str, str]:
        """(the statement that adds the index, the one that drops it)."""
        table = quote(self.table)
        columns = ", ".join(quote(c) for c in self.columns)
        if self.name.upper() == "PRIMARY":
            return (
                f"ALTER TABLE {table} ADD PRIMARY KEY ({columns})",
                f"ALTER TABLE {table} DROP PRIMARY KEY",
            )
        unique = "UNIQUE " if self.unique else ""
        # Online: the platform keeps writing while the index builds; a server that cannot build
        # it without locking the table refuses the statement instead.
        return (
            f"CREATE {unique}INDEX {quote(self.name)} ON {table} ({columns})"
            " ALGORITHM=INPLACE LOCK=NONE",
            f"DROP INDEX {quote(self.name)} ON {table}",
        )


@dataclass(frozen=True)
class TableNeed:
    """A table the reader reads, with what it needs of it."""

    key: str
    name: str
    columns: tuple[ColumnNeed, ...]
    index: IndexNeed | None
    why: str


def requirements(tables: BusinessTables, learn_providers: bool) -> tuple[TableNeed, ...]:
    """Every table, column and index the reader needs under this mapping."""
    t, q, p = tables.tasks, tables.quotas, tables.provider_configs
    task_columns = t.columns.model_dump()
    needs = [
        TableNeed(
            "tasks",
            t.name,
            tuple(
                ColumnNeed(
                    t.name,
                    name,
                    _TASK_TYPES[role],
                    f"{_MAPPING}.tasks.columns.{role}",
                    _ADDABLE.get(role),
                )
                for role, name in task_columns.items()
            ),
            IndexNeed(
                t.name,
                t.index,
                (task_columns["updated_at"], task_columns["id"]),
                unique=False,
                mapping_key=f"{_MAPPING}.tasks.index",
            ),
            why="the tasks",
        ),
        TableNeed(
            "quotas",
            q.name,
            tuple(
                ColumnNeed(q.name, name, _QUOTA_TYPES[role], f"{_MAPPING}.quotas.columns.{role}")
                for role, name in q.columns.model_dump().items()
            ),
            # Unique: the quota pass walks user_id > last as a keyset.
            IndexNeed(
                q.name,
                q.index,
                (q.columns.user_id,),
                unique=True,
                mapping_key=f"{_MAPPING}.quotas.index",
            ),
            why="the quotas",
        ),
    ]
    if learn_providers:
        provider = ColumnNeed(
            p.name, p.columns.provider, TEXT_TYPES, f"{_MAPPING}.provider_configs.columns.provider"
        )
        why = "the provider names (or list them in business.providers)"
        needs.append(TableNeed("provider_configs", p.name, (provider,), None, why))
    return tuple(needs)


@dataclass(frozen=True)
class SentStatement:
    """A statement the reader sends, with parameters like those of a real run."""

    name: str
    purpose: str
    sql: str
    args: tuple[object, ...]
    table: str
    # Whether it must reach its table through an index (provider_configs is small: read whole).
    indexed: bool = True


def sent_statements(
    sql: Statements, config: BusinessConfig, now: datetime
) -> tuple[SentStatement, ...]:
    """Every statement a cycle sends that reads a table (SELECT NOW(3) reads none)."""
    tasks, quotas = config.tables.tasks.name, config.tables.quotas.name
    horizon = now - timedelta(seconds=config.overlap)
    batch_args = sql.batch_args((horizon, 0), config.batch_size)
    sent = [
        SentStatement("batch", "the change feed", sql.batch, batch_args, tasks),
        SentStatement("newest", "at start", sql.newest, (), tasks),
        SentStatement("quotas", "the quota pass", sql.quotas, (0, config.batch_size), quotas),
    ]
    if not config.providers:
        providers = config.tables.provider_configs.name
        args = (LEARNED_PROVIDER_LIMIT,)
        sent.append(
            SentStatement("providers", "at start", sql.providers, args, providers, indexed=False)
        )
    return tuple(sent)
