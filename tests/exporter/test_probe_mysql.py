"""MySQL probe against real MariaDB: the stack's server, and a throwaway one we freeze and kill."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from obsctl.exporter.probes._mysql_pool import MySQLPool, PoolStats, fetch_all
from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status, run_bounded
from obsctl.exporter.probes.mysql import MySQLConfig, MySQLProbe

from conftest import RunningStack

PROBE_USER = "probe"
PROBE_PASSWORD = "pr0be-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayMariaDB:
    """A private mariadbd this module may SIGSTOP, SIGKILL and restart."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        """Unix socket for root."""
        return self.root / "mysqld.sock"

    def install(self) -> None:
        """Create the data directory."""
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        """Start mariadbd and wait until root can connect."""
        log = open(self.root / "mariadbd.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--socket={self.socket_path}",
                f"--pid-file={self.root / 'mariadbd.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--performance-schema=OFF",
                "--innodb-buffer-pool-size=16M",
                "--character-set-server=utf8mb4",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "mariadbd.log").read_text()[-2000:]
            with contextlib.suppress(pymysql.MySQLError):
                self.root_connection().close()
                return
            time.sleep(0.1)
        pytest.fail("throwaway mariadbd did not come up within 30 s")

    def root_connection(self) -> pymysql.connections.Connection:
        """A root connection over the unix socket."""
        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", connect_timeout=2, autocommit=True
        )

    def signal(self, sig: signal.Signals) -> None:
        """Send sig to mariadbd."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL mariadbd (thawing it first if it was stopped) and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def dsn(self, user: str = PROBE_USER, password: str = PROBE_PASSWORD) -> str:
        """A mysql:// DSN for user."""
        return f"mysql://{quote(user)}:{quote(password, safe='')}@127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayMariaDB]:
    """A private MariaDB with a password account for the probe; always killed at the end."""
    server = ThrowawayMariaDB(tmp_path_factory.mktemp("throwaway-mariadb"))
    server.install()
    try:
        server.start()
        with server.root_connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE USER '{PROBE_USER}'@'127.0.0.1' IDENTIFIED BY %s", (PROBE_PASSWORD,)
            )
            cur.execute(f"GRANT PROCESS ON *.* TO '{PROBE_USER}'@'127.0.0.1'")
        yield server
    finally:
        server.kill()


def config(dsn: str, **extra: object) -> MySQLConfig:
    """A validated probe config."""
    return MySQLConfig.model_validate({"dsn": dsn, **extra})


def registry_of(families: Sequence[Metric]) -> CollectorRegistry:
    """A fresh registry serving exactly these families, as the exporter's collector does."""

    class Snapshot:
        def collect(self) -> Sequence[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot())
    return registry


def value(outcome: ProbeOutcome, name: str, **labels: str) -> float | None:
    """One sample of the outcome's families (target="main" unless given)."""
    labels.setdefault("target", "main")
    return registry_of(outcome.families).get_sample_value(name, labels)


def processlist(outcome: ProbeOutcome) -> dict[tuple[str, str], float]:
    """mysql_processlist_connections as {(user, command): value}."""
    for family in outcome.families:
        if family.name == "mysql_processlist_connections":
            return {(s.labels["user"], s.labels["command"]): s.value for s in family.samples}
    raise AssertionError("no mysql_processlist_connections family")


async def test_families_present_and_sane_against_the_stack(stack: RunningStack) -> None:
    probe = MySQLProbe(config(stack.env["OBSCTL_MYSQL_DSN"]))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.OK, outcome.detail
    assert {"connect", "select1", "status", "processlist"} <= set(outcome.phases)
    assert outcome.phases["select1"] < 0.05
    connected = value(outcome, "mysql_threads_connected")
    running = value(outcome, "mysql_threads_running")
    max_connections = value(outcome, "mysql_max_connections")
    max_used = value(outcome, "mysql_max_used_connections")
    assert connected is not None and running is not None and max_used is not None
    assert 1 <= running <= connected <= max_used <= (max_connections or 0) == 200
    assert (value(outcome, "mysql_uptime_seconds") or 0) > 0
    assert (value(outcome, "mysql_questions_total") or 0) > 0
    assert value(outcome, "mysql_slow_queries_total") is not None
    assert value(outcome, "mysql_aborted_connects_total") is not None
    by_user = processlist(outcome)
    assert by_user[("obsctl_exporter", "Query")] >= 1  # the probe's own statement
    assert any(user == "platform" for user, _ in by_user)  # the demo platform's pool
    assert value(outcome, "obsctl_mysql_pool_max") == 4
    assert value(outcome, "obsctl_mysql_pool_connections", state="in_use") == 0
    assert value(outcome, "obsctl_mysql_pool_connections", state="idle") == 1
    assert value(outcome, "obsctl_mysql_pool_waiting") == 0
    names = {family.name for family in outcome.families}
    assert not any(name.startswith("obsctl_probe_") for name in names), "the core emits those"
    text = generate_latest(registry_of(outcome.families)).decode()
    for family in text_string_to_metric_families(text):
        assert family.documentation.endswith("(cached, refreshed every 15 s)"), family.name


async def test_slow_select_is_degraded(throwaway: ThrowawayMariaDB) -> None:
    probe = MySQLProbe(config(throwaway.dsn(), slow_threshold="0.001ms"))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.DEGRADED and outcome.reason is Reason.SLOW
    assert outcome.success and value(outcome, "mysql_threads_connected") is not None


async def test_wrong_password_is_auth_and_never_echoed(throwaway: ThrowawayMariaDB) -> None:
    probe = MySQLProbe(config(throwaway.dsn(password="not-the-password")))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.DOWN and outcome.reason is Reason.AUTH, outcome.detail
    assert "not-the-password" not in (outcome.detail or "")
    assert value(outcome, "obsctl_mysql_pool_max") == 4  # pool series survive a failure


async def test_processlist_labels_stay_bounded(throwaway: ThrowawayMariaDB) -> None:
    users = [f"app{i:02d}" for i in range(25)]
    with throwaway.root_connection() as root, root.cursor() as cur:
        for user in users:
            cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
    clients = [
        pymysql.connect(host="127.0.0.1", port=throwaway.port, user=u, password="pw") for u in users
    ]
    learning = MySQLProbe(config(throwaway.dsn()))
    listed = MySQLProbe(config(throwaway.dsn(), processlist_users=[PROBE_USER]))
    try:
        learned = processlist(await run_bounded(learning))
        learned_users = {user for user, _ in learned}
        assert len(learned_users - {"other"}) == 20 and "other" in learned_users
        assert sum(learned.values()) >= len(users) + 1
        only = processlist(await run_bounded(listed))
        assert {user for user, _ in only} == {PROBE_USER, "other"}
        assert only[("other", "Sleep")] >= len(users)
        for client in clients:
            client.close()
        await _until_gone(throwaway, users)
        after = processlist(await run_bounded(learning))
        assert set(learned) <= set(after), "a series seen before must not vanish"
        named = [key for key in learned if key[0] in users]
        assert named and all(after[key] == 0 for key in named)
    finally:
        for client in clients:
            with contextlib.suppress(pymysql.Error):
                client.close()
        await learning.close()
        await listed.close()
        with throwaway.root_connection() as root, root.cursor() as cur:
            for user in users:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


async def _until_gone(server: ThrowawayMariaDB, users: list[str]) -> None:
    marks = ", ".join(["%s"] * len(users))
    for _ in range(50):
        with server.root_connection() as root, root.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER IN ({marks})",
                users,
            )
            if cur.fetchone() == (0,):
                return
        await asyncio.sleep(0.1)
    pytest.fail("client connections did not leave the processlist")


async def test_hung_killed_and_restarted_server(throwaway: ThrowawayMariaDB) -> None:
    probe = MySQLProbe(config(throwaway.dsn(), timeout="1s", interval="5s", pool_max=2))
    try:
        assert (await run_bounded(probe)).status is Status.OK
        await _frozen_gives_timeouts(throwaway, probe)
        thawed = await run_bounded(probe)
        assert thawed.status is Status.OK, f"no recovery after SIGCONT: {thawed.detail}"

        throwaway.kill()
        refused = await run_bounded(probe)
        assert refused.reason is Reason.REFUSED, refused.detail
        assert refused.duration_seconds < 1.0

        throwaway.start()
        restarted = await run_bounded(probe)
        assert restarted.status is Status.OK, f"no recovery after restart: {restarted.detail}"
        stats = probe.pool.stats()
        assert (stats.in_use, stats.waiting) == (0, 0)
    finally:
        await probe.close()
        if throwaway.proc is None:
            throwaway.start()


async def _frozen_gives_timeouts(server: ThrowawayMariaDB, probe: MySQLProbe) -> None:
    server.signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        # More concurrent runs than pool slots: waiters and holders must all give up in time.
        outcomes = await asyncio.gather(*(run_bounded(probe) for _ in range(5)))
        elapsed = time.monotonic() - began
        assert [o.reason for o in outcomes] == [Reason.TIMEOUT] * 5, [o.detail for o in outcomes]
        assert elapsed < probe.timeout_seconds + 0.3, elapsed
        stats = probe.pool.stats()
        assert (stats.in_use, stats.waiting) == (0, 0), stats
        again = await run_bounded(probe)  # nothing left locked by the cancelled runs
        assert again.reason is Reason.TIMEOUT and again.duration_seconds < 1.3
        assert value(again, "obsctl_mysql_pool_max") == 2
    finally:
        server.signal(signal.SIGCONT)


def test_config_errors_name_the_key_and_hide_the_dsn() -> None:
    with pytest.raises(ValidationError) as bad:
        MySQLConfig.model_validate(
            {"dsn": "postgres://u:hunter2@h/db", "pool_max": 11, "interval": "-1s", "colour": 1}
        )
    problems = {err["loc"][0]: err["msg"] for err in bad.value.errors()}
    assert set(problems) == {"dsn", "pool_max", "interval", "colour"}
    assert "mysql://" in problems["dsn"]
    assert "hunter2" not in str(bad.value)
    with pytest.raises(ValidationError, match="slow_threshold"):
        MySQLConfig.model_validate({"dsn": "mysql://u:p@h/db", "slow_threshold": "3s"})


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Yield to the event loop until condition holds (fail after timeout)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def test_pool_capacity_freed_by_a_broken_connection_goes_to_a_waiter(
    throwaway: ThrowawayMariaDB,
) -> None:
    pool = MySQLPool(SecretStr(throwaway.dsn()), maxsize=1)
    holding = asyncio.Event()

    async def borrow_then_fail() -> None:
        with contextlib.suppress(RuntimeError):
            async with pool.connection():
                holding.set()
                await asyncio.sleep(0.2)
                raise RuntimeError("the body failed: the connection is closed, not reused")

    async def wait_for_one() -> float:
        await holding.wait()
        assert pool.stats().waiting == 0
        began = time.monotonic()
        async with pool.connection() as conn:
            assert await fetch_all(conn, "SELECT 1") == [(1,)]
        return time.monotonic() - began

    try:
        failing = asyncio.create_task(borrow_then_fail())
        waited = asyncio.create_task(wait_for_one())
        await holding.wait()
        await _until(lambda: pool.stats().waiting == 1)
        assert pool.stats() == PoolStats(in_use=1, idle=0, waiting=1, max=1)
        await failing
        assert await asyncio.wait_for(waited, 2) < 0.5
        assert pool.stats() == PoolStats(in_use=0, idle=1, waiting=0, max=1)
    finally:
        await pool.close()
