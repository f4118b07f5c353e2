"""Three real exporter processes electing one leader through one real Redis.

Each sidecar runs per-host probes (Redis, MySQL SELECT 1) and, while leading, the singletons
(business, BullMQ, MySQL server-wide). The tests kill -9, SIGSTOP and starve the sidecars and
Redis, and read what each one publishes on /metrics and /health.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from test_business import BizDB, bizdb  # noqa: F401  (the scratch database fixture)

from obsctl.exporter.leader import LeaderConfig, LeaseLost, RedisLease, Role, Why
from obsctl.metric_names import ExporterMetric

from conftest import RedisServer, RunningStack, wait_for

pytestmark = pytest.mark.needs_tools("redis-server")

# Ports of this module's servers: the test port base's block 27900-27999 by default.
PORT_BASE = int(os.environ.get("OBSCTL_TEST_PORT_BASE", "19300")) + 600
REDIS_PORT = PORT_BASE + 60
LEASE = 3.0  # seconds; short so a fail-over fits in a test
SINGLETON_NAMES = ("task_created_total", "bullmq_queues_discovered", "mysql_threads_connected")


Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Sidecar:
    """One exporter process on its own port."""

    name: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (its output goes to its log file)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "obsctl", "exporter", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the process."""
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9 and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def samples(self) -> Samples | None:
        """Every sample of /metrics by sample name (None when it does not answer)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1.0).text
        except httpx.HTTPError:
            return None
        found: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return found

    def leads(self) -> bool:
        """Whether /metrics says obsctl_exporter_leader 1."""
        samples = self.samples()
        return bool(samples) and samples[ExporterMetric.LEADER][0][1] == 1.0

    def health(self) -> tuple[int, dict[str, object]]:
        """Status code and body of /health."""
        answer = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0)
        return answer.status_code, answer.json()


def total(samples: Samples, name: str) -> float:
    """Sum of every sample of one name."""
    return sum(value for _, value in samples.get(name, []))


@pytest.fixture
def lease_redis(redis_server: Callable[..., RedisServer]) -> RedisServer:
    """The Redis holding the lease (and the BullMQ keys the singleton probe reads)."""
    return redis_server(port=REDIS_PORT)


def sidecar_config(
    port: int, name: str, redis_url: str, mysql_dsn: str | None
) -> dict[str, object]:
    """An exporter config with a 3 s lease and 1 s probes."""
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}",
        "leader": {"enabled": True, "lease": f"{LEASE}s", "identity": name},
        "redis": {"url": redis_url, "interval": "1s", "timeout": "500ms"},
        "bullmq": {"url": redis_url, "interval": "1s", "timeout": "500ms"},
    }
    if mysql_dsn:
        config["mysql"] = {"dsn": mysql_dsn, "interval": "1s", "timeout": "900ms"}
        config["business"] = {
            "interval": "1s",
            "timeout": "900ms",
            "overlap": "10s",
            "quota_interval": "1s",
            "providers": ["alpha", "beta"],
        }
    return config


@pytest.fixture
def sidecars(
    tmp_path: Path, lease_redis: RedisServer
) -> Iterator[Callable[[str | None], list[Sidecar]]]:
    """Start three sidecars against lease_redis (and a MySQL DSN if given); all killed after."""
    started: list[Sidecar] = []

    def start(mysql_dsn: str | None = None) -> list[Sidecar]:
        for index in range(3):
            name = f"side-{index}"
            port = PORT_BASE + 70 + index
            path = tmp_path / f"{name}.yml"
            config = sidecar_config(port, name, lease_redis.url(), mysql_dsn)
            path.write_text(yaml.safe_dump(config))
            sidecar = Sidecar(name, port, path, tmp_path / f"{name}.log")
            sidecar.start()
            started.append(sidecar)
        wait_for("every sidecar to answer", lambda: all(s.samples() for s in started))
        return started

    try:
        yield start
    finally:
        for sidecar in started:
            sidecar.kill()


def leaders(group: list[Sidecar]) -> list[Sidecar]:
    """The sidecars whose /metrics say they lead."""
    return [s for s in group if s.leads()]


def the_leader(group: list[Sidecar]) -> Sidecar:
    """Wait until exactly one sidecar leads and exports the singleton series; return it."""

    def one() -> Sidecar | None:
        found = leaders(group)
        if len(found) != 1:
            return None
        samples = found[0].samples() or {}
        return found[0] if "bullmq_queues_discovered" in samples else None

    return wait_for("exactly one leader exporting singletons", one, timeout=4 * LEASE)


def test_one_leader_exports_the_singletons_followers_the_per_host_probes(
    sidecars: Callable[[str | None], list[Sidecar]],
) -> None:
    """Exactly one leader; followers export leader=0, their own probes, no singleton series."""
    group = sidecars(None)
    leader = the_leader(group)
    time.sleep(LEASE)  # a few renewals: still exactly one
    assert leaders(group) == [leader]
    lead = leader.samples() or {}
    assert lead["bullmq_queues_discovered"][0][0]["instance"] == "leader"
    tokens = set()
    for follower in (s for s in group if s is not leader):
        samples = follower.samples() or {}
        assert samples[ExporterMetric.LEADER][0][1] == 0.0
        assert not [n for n in samples if n.startswith("bullmq_")]
        probes = {labels["probe"] for labels, _ in samples["obsctl_probe_success"]}
        assert probes == {"redis"}, probes
        status, body = follower.health()
        assert status == 200
        assert body["leader"]["role"] == "follower"  # type: ignore[index]
        assert body["leader"]["reason"] == "lease_held"  # type: ignore[index]
        assert body["leader"]["holder"] == leader.name  # type: ignore[index]
        tokens.add(samples[ExporterMetric.FENCING_TOKEN][0][1])
    assert lead[ExporterMetric.FENCING_TOKEN][0][1] not in tokens


def test_kill_9_the_leader_another_leads_within_the_lease(
    sidecars: Callable[[str | None], list[Sidecar]],
) -> None:
    """kill -9: another sidecar leads, with a larger fencing token, within one lease."""
    group = sidecars(None)
    old = the_leader(group)
    old_token = (old.samples() or {})[ExporterMetric.FENCING_TOKEN][0][1]
    killed_at = time.monotonic()
    old.kill()
    rest = [s for s in group if s is not old]
    new = the_leader(rest)
    took = time.monotonic() - killed_at
    # The lease expires LEASE after the last renewal (before the kill); a follower is waiting.
    assert took <= LEASE + 1.0, took
    assert (new.samples() or {})[ExporterMetric.FENCING_TOKEN][0][1] > old_token


def test_a_paused_leader_publishes_nothing_after_its_lease(
    sidecars: Callable[[str | None], list[Sidecar]],
) -> None:
    """SIGSTOP past the lease, SIGCONT: its first scrape already has leader=0, no singletons."""
    group = sidecars(None)
    old = the_leader(group)
    old.signal(signal.SIGSTOP)
    try:
        new = the_leader([s for s in group if s is not old])
    finally:
        old.signal(signal.SIGCONT)
    # Poll from the very first moment it answers again, through its next campaign.
    deadline = time.monotonic() + LEASE
    seen = 0
    while time.monotonic() < deadline:
        samples = old.samples()
        if samples is None:
            continue
        seen += 1
        assert samples[ExporterMetric.LEADER][0][1] == 0.0
        assert not [n for n in SINGLETON_NAMES if n in samples]
    assert seen > 0
    assert leaders(group) == [new]


def test_redis_down_everyone_steps_down_after_one_lease_and_says_why(
    sidecars: Callable[[str | None], list[Sidecar]], lease_redis: RedisServer
) -> None:
    """Redis hung: the leader keeps leading up to one lease, then all report leader=0 and why."""
    group = sidecars(None)
    leader = the_leader(group)
    lease_redis.hang()
    hung_at = time.monotonic()
    try:
        wait_for("every sidecar to report leader=0", lambda: not leaders(group), 3 * LEASE)
        stepped_down = time.monotonic() - hung_at
        # Kept its role up to one lease after its last renewal (at most LEASE/3 before the hang).
        assert LEASE - LEASE / 3 - 0.5 <= stepped_down <= LEASE + 1.5, stepped_down
        for sidecar in group:
            status, body = sidecar.health()
            assert status == 503
            assert body["leader"]["reason"] == "redis_down", body  # type: ignore[index]
            assert body["leader"]["role"] == "follower"  # type: ignore[index]
        assert not [n for n in SINGLETON_NAMES if n in (leader.samples() or {})]
    finally:
        lease_redis.resume()
    the_leader(group)


def test_business_counters_continue_across_a_fail_over(
    sidecars: Callable[[str | None], list[Sidecar]],
    stack: RunningStack,
    bizdb: BizDB,  # noqa: F811
) -> None:
    """kill -9 the leader while tasks are created: the new leader's total never goes back and
    ends equal to the tasks the database holds (no double count, no reset)."""
    group = sidecars(bizdb.dsn)
    old = the_leader(group)
    wait_for("business series on the leader", lambda: "task_created_total" in (old.samples() or {}))
    stop = threading.Event()
    writer = threading.Thread(target=create_tasks, args=(bizdb, stop), daemon=True)
    writer.start()
    seen: list[float] = []
    try:
        for _ in range(8):
            seen.append(total(old.samples() or {}, "task_created_total"))
            time.sleep(0.25)
        old.kill()
        rest = [s for s in group if s is not old]
        new = wait_for(
            "a new leader exporting business series",
            lambda: next(
                (s for s in leaders(rest) if "task_created_total" in (s.samples() or {})), None
            ),
            timeout=4 * LEASE,
        )
        for _ in range(8):
            seen.append(total(new.samples() or {}, "task_created_total"))
            time.sleep(0.25)
    finally:
        stop.set()
        writer.join(timeout=10)
    created = int(bizdb.query("SELECT COUNT(*) FROM tasks")[0][0])
    assert created > 0
    assert seen == sorted(seen), f"the counter went back across the fail-over: {seen}"
    wait_for(
        f"the new leader to count all {created} tasks",
        lambda: total(new.samples() or {}, "task_created_total") == created,
        timeout=10,
    )
    time.sleep(2)  # a few more runs re-read the overlap: nothing is counted twice
    assert total(new.samples() or {}, "task_created_total") == created


def create_tasks(db: BizDB, stop: threading.Event) -> None:
    """A task every ~20 ms until stop is set."""
    features, providers = ("matting", "outfit", "faceswap", "outpaint"), ("alpha", "beta")
    n = 0
    while not stop.is_set():
        db.query(
            "INSERT INTO tasks (user_id, feature, provider, status, created_at, updated_at)"
            " VALUES (1, %s, %s, 'queued', NOW(3), NOW(3))",
            (features[n % 4], providers[n % 2]),
        )
        n += 1
        time.sleep(0.02)


async def test_an_old_leader_cannot_write_shared_state_after_a_new_lease(
    redis_server: Callable[..., RedisServer],
) -> None:
    """The fenced write compares the lease and the token in Redis, not only the local clock."""
    server = redis_server(port=REDIS_PORT + 1)
    config = LeaderConfig(enabled=True, lease=LEASE)
    clock = [0.0]
    old = RedisLease(config.model_copy(update={"identity": "old"}), SecretStr(server.url()),
                     clock=lambda: clock[0])  # fmt: skip
    new = RedisLease(config.model_copy(update={"identity": "new"}), SecretStr(server.url()))
    try:
        assert (await old.tick()).role is Role.LEADER
        state = old.checkpoint(f"{config.key}:business:platform")
        await state.save(old.standing().token, "from old")
        follower = await new.tick()
        assert (follower.role, follower.reason, follower.holder) == (
            Role.FOLLOWER, Why.LEASE_HELD, "old",
        )  # fmt: skip
        # The lease expires in Redis while the old leader's clock stands still (a paused VM).
        redis.Redis.from_url(server.url()).delete(config.key)
        assert (await new.tick()).role is Role.LEADER
        assert new.standing().token == old.standing().token + 1
        assert old.leading()  # by its own (frozen) clock it still leads...
        with pytest.raises(LeaseLost):  # ...but Redis refuses its write
            await state.save(old.standing().token, "stale, from old")
        await new.checkpoint(state.key).save(new.standing().token, "from new")
        assert await state.load() == "from new"
        clock[0] = LEASE  # its deadline passes: it does not lead any more, locally either
        assert not old.leading()
    finally:
        await old.release()
        await new.release()
