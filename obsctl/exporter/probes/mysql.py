"""MySQL probe: SELECT 1 round trip, server status, processlist by user, the exporter's own pool."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pymysql
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel, ConfigDict, Field, field_validator

from obsctl.config_types import (
    Duration,
    LabelValue,
    slow_below_timeout,
    timeout_within_interval,
)
from obsctl.exporter.probes._mysql_pool import (
    MySQLDsn,
    MySQLPool,
    PoolStats,
    describe_error,
    mysql_reason,
    retry_if_lost,
    timed_fetch,
)
from obsctl.exporter.probes.base import ProbeBase, ProbeOutcome, Reason, Status
from obsctl.metric_names import MySQLMetric

# The exporter's MySQL account is created WITH MAX_USER_CONNECTIONS 10: the pool must fit in it.
POOL_MAX_LIMIT = 10
# With no explicit user list, the first this-many users get their own label, the rest "other".
PROCESSLIST_USER_LIMIT = 20
OTHER = "other"

_STATUS_VARIABLES = (
    "Threads_connected",
    "Threads_running",
    "Max_used_connections",
    "Slow_queries",
    "Aborted_connects",
    "Questions",
    "Uptime",
)
_STATUS_SQL = "SHOW GLOBAL STATUS WHERE Variable_name IN ({})".format(
    ", ".join(f"'{name}'" for name in _STATUS_VARIABLES)
)
_MAX_CONNECTIONS_SQL = "SHOW GLOBAL VARIABLES LIKE 'max_connections'"
_PROCESSLIST_SQL = (
    "SELECT USER, COMMAND, COUNT(*) FROM information_schema.PROCESSLIST GROUP BY USER, COMMAND"
)

# (metric, status variable, HELP, is a counter)
_SERVER_SERIES = (
    (MySQLMetric.THREADS_CONNECTED, "Threads_connected", "Open client connections", False),
    (MySQLMetric.THREADS_RUNNING, "Threads_running", "Connections running a statement", False),
    (
        MySQLMetric.MAX_USED_CONNECTIONS,
        "Max_used_connections",
        "Most connections open at once since the server started",
        False,
    ),
    (MySQLMetric.SLOW_QUERIES, "Slow_queries", "Queries slower than long_query_time", True),
    (
        MySQLMetric.ABORTED_CONNECTS,
        "Aborted_connects",
        "Failed connection attempts (bad credentials, handshake errors)",
        True,
    ),
    (MySQLMetric.QUESTIONS, "Questions", "Statements sent by clients", True),
    (MySQLMetric.UPTIME, "Uptime", "Seconds since the server started", False),
)

UserName = Annotated[str, Field(min_length=1, max_length=80)]


class MySQLConfig(BaseModel):
    """Settings of the MySQL probe and of the exporter's MySQL pool."""

    # hide_input_in_errors: a rejected DSN must not be echoed (it carries the password).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    dsn: MySQLDsn
    interval: Duration = 15.0
    timeout: Duration = 2.0
    # SELECT 1 slower than this marks MySQL degraded: on a healthy server it takes well under
    # a millisecond, and the platform's P95 budget (200 ms) cannot absorb 50 ms per query.
    slow_threshold: Duration = 0.05
    pool_max: int = Field(default=4, ge=1, le=POOL_MAX_LIMIT)
    processlist_users: list[UserName] = Field(default_factory=list)
    target: LabelValue = "main"

    _timeout_fits_interval = field_validator("timeout")(timeout_within_interval)

    _slow_below_timeout = field_validator("slow_threshold")(slow_below_timeout)


class UserLabels:
    """Maps MySQL user names to a bounded set of label values; the rest become "other"."""

    def __init__(self, allowed: Iterable[str], limit: int = PROCESSLIST_USER_LIMIT) -> None:
        self._allowed = frozenset(allowed)
        self._limit = limit
        self._learned: set[str] = set()

    def label(self, user: str) -> str:
        """The label value for user."""
        if self._allowed:
            return user if user in self._allowed else OTHER
        if user in self._learned:
            return user
        if len(self._learned) < self._limit:
            self._learned.add(user)
            return user
        return OTHER


@dataclass(frozen=True)
class ServerSnapshot:
    """What one run read from the server."""

    status: Mapping[str, float]
    max_connections: float
    processlist: Mapping[tuple[str, str], int]


class MySQLProbe(ProbeBase):
    """SELECT 1, global status and processlist of one MySQL server, plus the exporter's pool."""

    kind = "mysql"
    expected_errors = (pymysql.MySQLError, OSError)

    def __init__(
        self,
        config: MySQLConfig,
        pool: MySQLPool | None = None,
        server_wide: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(config.target, config.interval, config.timeout)
        self.config = config
        # Among several sidecars only the leader reads the server's figures (one copy of each).
        self._server_wide = server_wide or (lambda: True)
        self._pool = pool or MySQLPool(
            config.dsn, maxsize=config.pool_max, connect_timeout=self.budget
        )
        self._users = UserLabels(config.processlist_users)
        self._pairs: set[tuple[str, str]] = set()

    @property
    def pool(self) -> MySQLPool:
        """The pool this probe uses (shared with the business probe when the core wires it so)."""
        return self._pool

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """SELECT 1, status, variables and processlist on one pooled connection."""
        server_wide = self._server_wide()
        snapshot = await retry_if_lost(lambda: self._read(phases, server_wide))
        server = self._server_families(snapshot) if snapshot else []
        slow = phases["select1"] > self.config.slow_threshold
        return self.outcome(
            began,
            Status.DEGRADED if slow else Status.OK,
            reason=Reason.SLOW if slow else None,
            detail=f"SELECT 1 took {phases['select1'] * 1000:.1f} ms" if slow else None,
            phases=phases,
            families=[*server, *self._pool_families()],
        )

    def reason(self, exc: BaseException) -> Reason:
        """aiomysql/PyMySQL errors mapped to a bounded reason."""
        return mysql_reason(exc)

    def describe(self, exc: BaseException) -> str:
        """A password-free detail."""
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.budget:g}s"
        return describe_error(exc)

    def down_families(self) -> list[Metric]:
        """The pool's series: they matter most while MySQL is down."""
        return self._pool_families()

    async def close(self) -> None:
        """Close the pool (idempotent; a shared pool is closed by whichever probe goes first)."""
        await self._pool.close()

    async def _read(self, phases: dict[str, float], server_wide: bool) -> ServerSnapshot | None:
        phases.clear()  # a retry reports its own timings only
        began = time.monotonic()
        async with self._pool.connection() as conn:
            phases["connect"] = time.monotonic() - began
            await timed_fetch(conn, phases, "select1", "SELECT 1")
            if not server_wide:
                return None
            status_rows = await timed_fetch(conn, phases, "status", _STATUS_SQL)
            variables = await timed_fetch(conn, phases, "status", _MAX_CONNECTIONS_SQL)
            processlist = await timed_fetch(conn, phases, "processlist", _PROCESSLIST_SQL)
        return ServerSnapshot(
            status={str(name): float(value) for name, value in status_rows},
            max_connections=float(variables[0][1]) if variables else float("nan"),
            processlist=self._group(processlist),
        )

    def _group(self, rows: Iterable[Any]) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for user, command, count in sorted(rows, key=lambda row: (str(row[0]), str(row[1]))):
            key = (self._users.label(str(user or "unknown")), str(command or "unknown"))
            counts[key] = counts.get(key, 0) + int(count)
        return counts

    def _server_families(self, snapshot: ServerSnapshot) -> list[Metric]:
        families: list[Metric] = []
        for name, variable, text, is_counter in _SERVER_SERIES:
            value = snapshot.status.get(variable, float("nan"))
            family: GaugeMetricFamily | CounterMetricFamily
            if is_counter:
                family = CounterMetricFamily(name, self.cached_help(text), labels=["target"])
            else:
                family = GaugeMetricFamily(name, self.cached_help(text), labels=["target"])
            family.add_metric([self.target], value)
            families.append(family)
        max_connections = GaugeMetricFamily(
            MySQLMetric.MAX_CONNECTIONS,
            self.cached_help("The server's max_connections"),
            labels=["target"],
        )
        max_connections.add_metric([self.target], snapshot.max_connections)
        families.append(max_connections)
        families.append(self._processlist_family(snapshot.processlist))
        return families

    def _processlist_family(self, counts: Mapping[tuple[str, str], int]) -> Metric:
        self._pairs.update(counts)
        family = GaugeMetricFamily(
            MySQLMetric.PROCESSLIST_CONNECTIONS,
            self.cached_help(
                "Server connections by user and command from the processlist; "
                f"users beyond the configured or first {PROCESSLIST_USER_LIMIT} are 'other'"
            ),
            labels=["target", "user", "command"],
        )
        for user, command in sorted(self._pairs):
            family.add_metric([self.target, user, command], counts.get((user, command), 0))
        return family

    def _pool_families(self) -> list[Metric]:
        stats: PoolStats = self._pool.stats()
        connections = GaugeMetricFamily(
            MySQLMetric.POOL_CONNECTIONS,
            self.cached_help(
                "Connections of the exporter's own MySQL pool: in_use (borrowed or being "
                "opened) and idle"
            ),
            labels=["target", "state"],
        )
        connections.add_metric([self.target, "in_use"], stats.in_use)
        connections.add_metric([self.target, "idle"], stats.idle)
        waiting = GaugeMetricFamily(
            MySQLMetric.POOL_WAITING,
            self.cached_help("Callers waiting for a connection of the exporter's MySQL pool"),
            labels=["target"],
        )
        waiting.add_metric([self.target], stats.waiting)
        maximum = GaugeMetricFamily(
            MySQLMetric.POOL_MAX,
            self.cached_help("Most connections the exporter's MySQL pool may open"),
            labels=["target"],
        )
        maximum.add_metric([self.target], stats.max)
        return [connections, waiting, maximum]
