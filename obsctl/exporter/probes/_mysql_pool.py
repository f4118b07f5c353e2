"""The exporter's own MySQL pool: one small aiomysql pool shared by every MySQL-backed probe.

Wiring (``obsctl.exporter.wiring``): one `MySQLPool(config.mysql.dsn,
maxsize=config.mysql.pool_max, connect_timeout=<the MySQL probe's budget>)` is handed to both
`MySQLProbe` and `BusinessProbe`. Nothing connects until the first probe run; `close()` may be
called by every probe that shares the pool (it is idempotent, and a later use would simply
reopen it).

Why it cannot wedge: a semaphore of `maxsize` slots sits in front of aiomysql's own acquire, so
aiomysql never has to wait for a connection to come back (its waiters are woken only by the
release of a healthy connection, not by the closing of a broken one, and would sleep on).
aiomysql closes a connection whose read is cancelled (a hung server hit by the run's timeout);
we also close one whose user raised anything else, so a half-read result is never reused.
Releasing never awaits, so a cancelled run leaves no lock held.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql
from pydantic import AfterValidator, SecretStr

from obsctl.exporter.probes.base import Reason, classify

DEFAULT_PORT = 3306
# MySQL error codes that mean the credentials (or the grants on the database) are wrong.
_AUTH_ERRNOS = frozenset({1044, 1045, 1698})
_CANT_CONNECT_ERRNOS = frozenset({2002, 2003})
# Server gone / lost connection / broken pipe: an idle pooled connection died under us.
_LOST_ERRNOS = frozenset({2006, 2013, 2055})
_CLOSE_TIMEOUT = 1.0
# Recycle idle connections so a middlebox that silently drops idle TCP cannot hand us a dead one.
_POOL_RECYCLE_SECONDS = 300
_PROGRAM_NAME = "obsctl-exporter"

T = TypeVar("T")


@dataclass(frozen=True)
class MySQLAddress:
    """Where and as whom to connect, parsed from a mysql:// DSN."""

    host: str
    port: int
    user: str
    password: str
    database: str | None

    def __repr__(self) -> str:
        return f"MySQLAddress({self.user}@{self.host}:{self.port}/{self.database or ''})"


def parse_dsn(dsn: str) -> MySQLAddress:
    """Split mysql://user:pass@host:port/db; errors never repeat the DSN (it holds a password)."""
    parts = urlsplit(dsn.strip())
    if parts.scheme != "mysql":
        raise ValueError("expected a DSN such as mysql://user:password@host:3306/database")
    if not parts.hostname:
        raise ValueError("the DSN names no host")
    if not parts.username:
        raise ValueError("the DSN names no user")
    if parts.query or parts.fragment:
        raise ValueError("the DSN must not carry ?options or #fragments")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the DSN's port is not a number between 1 and 65535") from None
    database = unquote(parts.path.lstrip("/")) or None
    if database is not None and "/" in database:
        raise ValueError("the DSN's path must be a single database name")
    return MySQLAddress(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        database=database,
    )


def _check_dsn(value: SecretStr) -> SecretStr:
    parse_dsn(value.get_secret_value())
    return value


# A mysql:// DSN kept secret; validation errors describe the problem, never the value.
MySQLDsn = Annotated[SecretStr, AfterValidator(_check_dsn)]


@dataclass(frozen=True)
class PoolStats:
    """The pool at one instant, for the BE-DB-005 pool metrics."""

    in_use: int
    idle: int
    waiting: int
    max: int


def mysql_reason(exc: BaseException) -> Reason:
    """Map an aiomysql/PyMySQL/socket error to a bounded reason, looking through its causes."""
    chain = _causes(exc)
    if any(isinstance(e, TimeoutError) for e in chain):
        return Reason.TIMEOUT
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Reason.REFUSED
    errno = _errno(exc)
    if errno in _AUTH_ERRNOS:
        return Reason.AUTH
    if errno in _CANT_CONNECT_ERRNOS:
        return Reason.REFUSED
    return classify(exc)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def describe_error(exc: BaseException) -> str:
    """A short, password-free description of a MySQL failure for ProbeOutcome.detail."""
    errno = _errno(exc)
    if errno is not None and len(exc.args) > 1:
        return f"{type(exc).__name__} {errno}: {exc.args[1]}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


class MySQLPool:
    """An aiomysql pool opened on first use; counts waiters; never hands out a broken connection."""

    def __init__(self, dsn: SecretStr, maxsize: int = 4, connect_timeout: float = 2.0) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._address = parse_dsn(dsn.get_secret_value())
        self._maxsize = maxsize
        self._connect_timeout = connect_timeout
        self._pool: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._pending_releases: set[asyncio.Future[Any]] = set()

    @property
    def database(self) -> str | None:
        """The database named by the DSN (the business probe reads its tables there)."""
        return self._address.database

    @property
    def maxsize(self) -> int:
        """Most connections the pool ever opens at once."""
        return self._maxsize

    def stats(self) -> PoolStats:
        """Connections in use (or being opened), idle, acquirers still waiting, and the cap."""
        pool = self._pool
        if pool is None:
            return PoolStats(in_use=0, idle=0, waiting=self._waiting, max=self._maxsize)
        idle = int(pool.freesize)
        return PoolStats(
            in_use=int(pool.size) - idle, idle=idle, waiting=self._waiting, max=self._maxsize
        )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """Borrow a connection (autocommit on); it is closed, not reused, if the body fails."""
        pool, slots = self._open()
        self._waiting += 1
        try:
            await slots.acquire()
            try:
                conn = await pool.acquire()
            except BaseException:
                slots.release()
                raise
        finally:
            self._waiting -= 1
        try:
            yield conn
        except BaseException:
            conn.close()  # mid-query or cancelled: its protocol state is unknown
            raise
        finally:
            self._give_back(pool, conn)
            slots.release()

    async def close(self) -> None:
        """Close every connection; idempotent, never waits longer than a second."""
        pool, self._pool, self._slots = self._pool, None, None
        if pool is None:
            return
        pool.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.wait_closed(), _CLOSE_TIMEOUT)

    def _open(self) -> tuple[Any, asyncio.Semaphore]:
        if self._pool is None or self._slots is None:
            address = self._address
            self._pool = aiomysql.Pool(
                minsize=0,
                maxsize=self._maxsize,
                echo=False,
                pool_recycle=_POOL_RECYCLE_SECONDS,
                loop=asyncio.get_running_loop(),
                host=address.host,
                port=address.port,
                user=address.user,
                password=address.password,
                db=address.database,
                connect_timeout=self._connect_timeout,
                autocommit=True,
                charset="utf8mb4",
                program_name=_PROGRAM_NAME,
            )
            self._slots = asyncio.Semaphore(self._maxsize)
        return self._pool, self._slots

    def _give_back(self, pool: Any, conn: Any) -> None:
        # pool.release() may return a task that wakes aiomysql waiters; never await it here,
        # a cancelled run must not block on aiomysql's lock. Keep a reference until it is done.
        done = pool.release(conn)
        if isinstance(done, asyncio.Future) and not done.done():
            self._pending_releases.add(done)
            done.add_done_callback(self._pending_releases.discard)


async def fetch_all(conn: Any, sql: str, args: Sequence[object] | None = None) -> list[Any]:
    """Run one statement on conn and return every row (a buffered cursor: nothing to close)."""
    cursor = await conn.cursor()
    await cursor.execute(sql, args)
    rows = await cursor.fetchall()
    return list(rows)


async def timed_fetch(
    conn: Any, phases: dict[str, float], phase: str, sql: str, args: Sequence[object] | None = None
) -> list[Any]:
    """fetch_all, recording its wall time in phases[phase] (added to, if the phase repeats)."""
    began = time.monotonic()
    try:
        return await fetch_all(conn, sql, args)
    finally:
        phases[phase] = phases.get(phase, 0.0) + time.monotonic() - began


async def retry_if_lost(work: Callable[[], Awaitable[T]]) -> T:
    """Run work; if its connection turned out dead (server restarted), run it once more.

    The pool closes the dead connection, so the second try opens a fresh one and either
    succeeds or fails for the server's real reason (refused, auth, ...).
    """
    try:
        return await work()
    except pymysql.OperationalError as exc:
        if _errno(exc) not in _LOST_ERRNOS:
            raise
    return await work()
