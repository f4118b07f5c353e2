"""RedisProbe on real Redis: the shared stack's for normal runs, throwaway servers for faults."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status, run_bounded
from obsctl.exporter.probes.bullmq import BullMQConfig, BullMQProbe
from obsctl.exporter.probes.redis import RedisConfig, RedisProbe, info_families
from obsctl.stack.fakes.launcher import free_port

from conftest import RedisServer, RunningStack

REDIS_FAMILIES = {
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_connected_clients",
    "redis_blocked_clients",
    "redis_keyspace_hits",
    "redis_keyspace_misses",
    "redis_keyspace_hit_ratio",
    "redis_evicted_keys",
    "redis_uptime_seconds",
}


def by_name(outcome: ProbeOutcome) -> dict[str, Metric]:
    return {family.name: family for family in outcome.families}


def registry_of(outcome: ProbeOutcome) -> CollectorRegistry:
    """A fresh registry serving the outcome's families, as the exporter's collector would."""

    class Snapshot(Collector):
        def collect(self) -> list[Metric]:
            return list(outcome.families)

    registry = CollectorRegistry()
    registry.register(Snapshot())
    return registry


async def test_healthy_redis_answers_ok_with_round_trip_and_info(stack: RunningStack) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    probe = RedisProbe(RedisConfig(url=url, canary_key="obsctl:test:canary"))
    direct = redis.Redis.from_url(url, decode_responses=True)
    try:
        first = await run_bounded(probe)
        written = direct.get("obsctl:test:canary")
        second = await run_bounded(probe)
    finally:
        await probe.close()

    for outcome in (first, second):
        assert outcome.status is Status.OK, outcome.detail
        assert outcome.reason is None
        assert set(outcome.phases) == {"ping", "set", "get", "info"}
        assert outcome.duration_seconds < 1.0
    assert set(by_name(second)) == REDIS_FAMILIES
    for family in second.families:
        assert family.documentation.endswith("(cached, refreshed every 15 s)"), family.name
        assert [sample.labels for sample in family.samples] == [{"target": "main"}]

    # The canary is a fresh random value each run, and expires by itself.
    assert written and written != direct.get("obsctl:test:canary")
    assert 0 < direct.pttl("obsctl:test:canary") <= 60_000

    info = direct.info()
    registry = registry_of(second)
    assert registry.get_sample_value("redis_memory_max_bytes", {"target": "main"}) == float(
        info["maxmemory"]
    )
    used = registry.get_sample_value("redis_memory_used_bytes", {"target": "main"})
    assert used is not None and used > 100_000
    clients = registry.get_sample_value("redis_connected_clients", {"target": "main"})
    assert clients is not None and clients >= 2  # at least the probe and `direct`
    hits = registry.get_sample_value("redis_keyspace_hits_total", {"target": "main"})
    assert hits is not None and 1 <= hits <= info["keyspace_hits"]
    assert registry.get_sample_value("redis_uptime_seconds", {"target": "main"}) is not None


async def test_figures_equal_what_info_reports(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    direct = redis.Redis(port=server.port)
    direct.set("present", "x")
    for key in ("missing-1", "missing-2", "missing-3", "present"):
        direct.get(key)
    probe = RedisProbe(RedisConfig(url=server.url(), target="cache"))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()

    assert outcome.status is Status.OK, outcome.detail
    registry = registry_of(outcome)
    labels = {"target": "cache"}
    assert registry.get_sample_value("redis_memory_max_bytes", labels) == 64 * 1024 * 1024
    # one hit by the test, one by the probe's own canary GET; three misses
    assert registry.get_sample_value("redis_keyspace_hits_total", labels) == 2
    assert registry.get_sample_value("redis_keyspace_misses_total", labels) == 3
    assert registry.get_sample_value("redis_keyspace_hit_ratio", labels) == pytest.approx(0.4)
    assert registry.get_sample_value("redis_evicted_keys_total", labels) == 0
    assert registry.get_sample_value("redis_blocked_clients", labels) == 0


def test_hit_ratio_is_left_out_before_any_lookup() -> None:
    info = {"keyspace_hits": 0, "keyspace_misses": 0, "used_memory": 10, "maxmemory": 0}
    names = {family.name for family in info_families(info, "main", 15)}
    assert "redis_keyspace_hit_ratio" not in names
    assert {"redis_keyspace_hits", "redis_memory_used_bytes", "redis_memory_max_bytes"} <= names


async def _until_blocked(port: int, answer_within: float = 0.05) -> None:
    """Return once Redis stops answering a PING in time: the DEBUG SLEEP has begun."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            try:
                await asyncio.wait_for(reader.readline(), answer_within)
            except TimeoutError:
                return
        finally:
            writer.close()
        await asyncio.sleep(0.005)
    raise AssertionError("Redis never started its DEBUG SLEEP")


async def test_slow_redis_is_degraded_but_still_reports(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server("--enable-debug-command", "yes")
    probe = RedisProbe(RedisConfig(url=server.url(), slow_threshold="50ms"))
    blocker = redis.asyncio.Redis(port=server.port)
    try:
        assert (await run_bounded(probe)).status is Status.OK
        sleeping = asyncio.create_task(blocker.execute_command("DEBUG", "SLEEP", "0.2"))
        await _until_blocked(server.port)
        outcome = await run_bounded(probe)
        await sleeping
    finally:
        await blocker.aclose()
        await probe.close()

    assert outcome.status is Status.DEGRADED
    assert outcome.reason is Reason.SLOW
    assert outcome.success  # slow is still up
    assert outcome.phases["ping"] > 0.1
    assert "redis_memory_used_bytes" in by_name(outcome)


class MangleProxy:
    """A TCP proxy in front of Redis that alters 32-hex-digit bulk replies, like a broken proxy."""

    BULK = re.compile(rb"\$32\r\n[0-9a-f]{32}\r\n")

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> MangleProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, mangle: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if mangle:
                        data = self.BULK.sub(b"$32\r\n" + b"0" * 32 + b"\r\n", data)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(client_r, up_w, False), pump(up_r, client_w, True))


async def test_canary_read_back_wrong_is_a_protocol_failure(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server()
    async with MangleProxy(server.port) as proxy:
        probe = RedisProbe(RedisConfig(url=f"redis://127.0.0.1:{proxy.port}/0"))
        try:
            outcome = await run_bounded(probe)
        finally:
            await probe.close()
    assert outcome.status is Status.DOWN
    assert outcome.reason is Reason.PROTOCOL
    assert outcome.families == ()
    assert set(outcome.phases) == {"ping", "set", "get"}


async def test_stopped_redis_is_refused_and_recovers_by_itself(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server()
    probe = RedisProbe(RedisConfig(url=server.url(), timeout="1s"))
    try:
        assert (await run_bounded(probe)).status is Status.OK
        server.stop()
        down = await run_bounded(probe)
        still_down = await run_bounded(probe)
        server.start()
        back = await run_bounded(probe)
    finally:
        await probe.close()

    for outcome in (down, still_down):
        assert outcome.status is Status.DOWN
        assert outcome.reason is Reason.REFUSED, outcome.detail
        assert outcome.families == ()
        assert outcome.duration_seconds < 0.5
    assert back.status is Status.OK, back.detail
    assert "redis_uptime_seconds" in by_name(back)


@pytest.mark.parametrize("kind", ["redis", "bullmq"])
async def test_a_shut_down_redis_reads_refused_from_the_first_failed_run(
    redis_server: Callable[..., RedisServer], kind: str
) -> None:
    server = redis_server()
    probe: RedisProbe | BullMQProbe = (
        RedisProbe(RedisConfig(url=server.url(), timeout="1s"))
        if kind == "redis"
        else BullMQProbe(BullMQConfig(url=server.url(), timeout="1s"))
    )
    try:
        assert (await run_bounded(probe)).status is Status.OK
        server.shut_down()
        await asyncio.sleep(0.2)  # the kept connection's socket has seen the server close
        runs = [await run_bounded(probe) for _ in range(3)]
    finally:
        await probe.close()

    assert [(o.status, o.reason) for o in runs] == [(Status.DOWN, Reason.REFUSED)] * 3, [
        o.detail for o in runs
    ]


async def test_hung_redis_times_out_within_the_timeout_and_recovers(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server()
    probe = RedisProbe(RedisConfig(url=server.url(), timeout="500ms"))
    try:
        assert (await run_bounded(probe)).status is Status.OK
        server.hang()
        began = time.monotonic()
        hung = await run_bounded(probe)
        elapsed = time.monotonic() - began
        server.resume()
        back = await run_bounded(probe)
        server.hang()
        # a fresh client (no kept connection) must time out too: the connect is bounded
        fresh = RedisProbe(RedisConfig(url=server.url(), timeout="500ms"))
        fresh_hung = await run_bounded(fresh)
        server.resume()
        await fresh.close()
    finally:
        server.resume()
        await probe.close()

    assert hung.status is Status.DOWN
    assert hung.reason is Reason.TIMEOUT, hung.detail
    assert hung.families == ()
    assert 0.3 <= elapsed <= 0.55
    assert back.status is Status.OK, back.detail
    assert fresh_hung.reason is Reason.TIMEOUT
    assert fresh_hung.duration_seconds <= 0.55


async def test_missing_or_wrong_password_is_an_auth_failure(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server("--requirepass", "s3cret-pw")
    outcomes = {}
    for name, url in {
        "none": server.url(),
        "wrong": server.url("not-it"),
        "right": server.url("s3cret-pw"),
    }.items():
        probe = RedisProbe(RedisConfig(url=url))
        try:
            outcomes[name] = await run_bounded(probe)
        finally:
            await probe.close()

    for name in ("none", "wrong"):
        assert outcomes[name].status is Status.DOWN
        assert outcomes[name].reason is Reason.AUTH, outcomes[name].detail
        assert "not-it" not in (outcomes[name].detail or "")
    assert outcomes["right"].status is Status.OK


def test_config_rejects_unknown_keys_and_never_echoes_the_url() -> None:
    with pytest.raises(ValidationError) as unknown:
        RedisConfig.model_validate({"url": "redis://h:6379/0", "intervall": "15s"})
    assert [(e["loc"], e["type"]) for e in unknown.value.errors()] == [
        (("intervall",), "extra_forbidden")
    ]

    with pytest.raises(ValidationError) as scheme:
        RedisConfig.model_validate({"url": "http://:hunter2@h:6379"})
    assert scheme.value.errors()[0]["loc"] == ("url",)
    assert "hunter2" not in scheme.value.errors()[0]["msg"]

    with pytest.raises(ValidationError) as order:
        RedisConfig.model_validate({"url": "redis://h", "interval": "1s", "timeout": "2s"})
    assert order.value.errors()[0]["loc"] == ("timeout",)

    with pytest.raises(ValidationError) as slow:
        RedisConfig.model_validate({"url": "redis://h", "timeout": "1s", "slow_threshold": "2s"})
    assert slow.value.errors()[0]["loc"] == ("slow_threshold",)

    config = RedisConfig.model_validate(
        {"url": "redis://:hunter2@h:6379/0", "timeout": "250ms", "canary_ttl": "2m"}
    )
    assert (config.timeout, config.canary_ttl, config.slow_threshold) == (0.25, 120.0, 0.05)
    assert "hunter2" not in repr(config) and "hunter2" not in config.model_dump_json()
