"""The business reader's SQL, built from the schema mapping: table, column and index names.

The mapping (`business.tables` in the exporter config) defaults to the demo platform's names;
a platform that names them differently maps them here instead of renaming its schema. Every
name is validated as a plain identifier and quoted, so a mapping can never change what a
statement does, only which table, column or index it reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from obsctl.configfile import StrictModel

SUCCEEDED = "succeeded"
FAILED = "failed"
# The columns of a change-feed row, in the order TaskRow (business_ledger.py) holds them.
TASK_ROW_ROLES = ("id", "feature", "provider", "status", "created_at", "updated_at", "finished_at")

# Providers learned from provider_configs beyond this many are labelled "other".
LEARNED_PROVIDER_LIMIT = 20

# MySQL identifiers as a schema names them (no quoting tricks, no database prefix).
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_$]{1,64}$")]
StatusValue = Annotated[str, Field(min_length=1, max_length=64)]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


StatusValues = Annotated[list[StatusValue], BeforeValidator(_as_list), Field(min_length=1)]


def quote(name: str) -> str:
    """name as a backquoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


class TaskColumns(StrictModel):
    """Column names of the tasks table, by the role the reader gives them."""

    id: Identifier = "id"
    feature: Identifier = "feature"
    provider: Identifier = "provider"
    status: Identifier = "status"
    created_at: Identifier = "created_at"
    updated_at: Identifier = "updated_at"
    finished_at: Identifier = "finished_at"

    @model_validator(mode="after")
    def _distinct(self) -> TaskColumns:
        names = [name.lower() for name in self.model_dump().values()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"each role needs its own column, repeated: {', '.join(repeated)}")
        return self


class TaskStatuses(StrictModel):
    """Values of the status column that mean a task reached a terminal state."""

    succeeded: StatusValues = Field(default_factory=lambda: [SUCCEEDED])
    failed: StatusValues = Field(default_factory=lambda: [FAILED])

    @model_validator(mode="after")
    def _disjoint(self) -> TaskStatuses:
        both = sorted(set(self.succeeded) & set(self.failed))
        if both:
            raise ValueError(f"a status cannot mean both succeeded and failed: {', '.join(both)}")
        return self

    def terminal(self) -> dict[str, str]:
        """Each terminal value of the column -> "succeeded" or "failed"."""
        return {
            **dict.fromkeys(self.succeeded, SUCCEEDED),
            **dict.fromkeys(self.failed, FAILED),
        }


class TasksTable(StrictModel):
    """The tasks table: its name, columns, change-feed index and terminal statuses."""

    name: Identifier = "tasks"
    columns: TaskColumns = Field(default_factory=TaskColumns)
    # The index on (updated_at, id) the reader's keyset walk is forced through.
    index: Identifier = "idx_tasks_updated_id"
    statuses: TaskStatuses = Field(default_factory=TaskStatuses)


class QuotaColumns(StrictModel):
    """Column names of the quotas table."""

    user_id: Identifier = "user_id"
    remaining: Identifier = "remaining"
    used: Identifier = "used"


class QuotasTable(StrictModel):
    """The quotas table: its name, columns and the unique index on user_id it is walked by."""

    name: Identifier = "quotas"
    columns: QuotaColumns = Field(default_factory=QuotaColumns)
    index: Identifier = "PRIMARY"


class ProviderConfigColumns(StrictModel):
    """Column names of the provider_configs table."""

    provider: Identifier = "provider"


class ProviderConfigsTable(StrictModel):
    """Where the provider names are learned from when `business.providers` is not set."""

    name: Identifier = "provider_configs"
    columns: ProviderConfigColumns = Field(default_factory=ProviderConfigColumns)


class BusinessTables(StrictModel):
    """Where the reader finds its tables, columns and indexes (the platform's names)."""

    tasks: TasksTable = Field(default_factory=TasksTable)
    quotas: QuotasTable = Field(default_factory=QuotasTable)
    provider_configs: ProviderConfigsTable = Field(default_factory=ProviderConfigsTable)

    @field_validator("quotas")
    @classmethod
    def _quota_columns_distinct(cls, value: QuotasTable) -> QuotasTable:
        names = [name.lower() for name in value.columns.model_dump().values()]
        if len(set(names)) != len(names):
            raise ValueError("user_id, remaining and used must be three different columns")
        return value


class Statements:
    """The SQL of one cycle, qualified with the platform database, names from the mapping."""

    def __init__(self, database: str, tables: BusinessTables) -> None:
        t, q, p = tables.tasks, tables.quotas, tables.provider_configs
        tasks = f"{quote(database)}.{quote(t.name)}"
        quotas = f"{quote(database)}.{quote(q.name)}"
        c = {role: quote(name) for role, name in t.columns.model_dump().items()}
        qc = {role: quote(name) for role, name in q.columns.model_dump().items()}
        selected = ", ".join(c[role] for role in TASK_ROW_ROLES)
        updated, ident = c["updated_at"], c["id"]
        # FORCE INDEX: the keyset walk must never turn into a table scan, whatever the stats say.
        self.batch = (
            f"SELECT {selected}"
            f" FROM {tasks} FORCE INDEX ({quote(t.index)})"
            f" WHERE ({updated} = %s AND {ident} > %s) OR {updated} > %s"
            f" ORDER BY {updated}, {ident} LIMIT %s"
        )
        user_id, remaining, used = qc["user_id"], qc["remaining"], qc["used"]
        self.quotas = (
            f"SELECT COUNT(*), MAX({user_id}), COALESCE(SUM({remaining}), 0),"
            f" COALESCE(SUM({used}), 0), COALESCE(SUM({remaining} <= 0), 0)"
            f" FROM (SELECT {user_id}, {remaining}, {used}"
            f" FROM {quotas} FORCE INDEX ({quote(q.index)})"
            f" WHERE {user_id} > %s ORDER BY {user_id} LIMIT %s) AS chunk"
        )
        self.newest = f"SELECT MAX({updated}) FROM {tasks}"
        provider = quote(p.columns.provider)
        self.providers = (
            f"SELECT DISTINCT {provider} FROM {quote(database)}.{quote(p.name)}"
            f" ORDER BY {provider} LIMIT %s"
        )

    @staticmethod
    def batch_args(after: tuple[datetime, int], limit: int) -> tuple[datetime, int, datetime, int]:
        """Parameters of `batch`: the rows after the keyset cursor `after`, at most `limit`."""
        after_at, after_id = after
        return after_at, after_id, after_at, limit
