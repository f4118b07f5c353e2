"""BullMQProbe against queues made by the real bullmq package (5 and 6) on the stack's Redis."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status, run_bounded
from obsctl.exporter.probes.bullmq import STATES, BullMQConfig, BullMQProbe
from obsctl.stack.fakes.launcher import free_port

from conftest import RunningStack

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "fixtures" / "bullmq" / "make_queues.js"
BULLMQ = {
    6: REPO / "obsctl" / "stack" / "demo_platform" / "node_modules" / "bullmq",
    5: REPO / "tests" / "fixtures" / "bullmq5" / "node_modules" / "bullmq",
}
BUILT_QUEUES = ("work", "busy", "held", "flow", "due", "drain")


def bullmq(version: int, url: str, prefix: str, *command: str) -> dict[str, Any]:
    """Run make_queues.js with BullMQ `version`; its JSON report (getJobCounts, isPaused)."""
    package = BULLMQ[version]
    if not (package / "package.json").exists():
        pytest.fail(f"bullmq {version} is not installed at {package}: run `obsctl stack install`")
    result = subprocess.run(
        ["node", str(SCRIPT), str(package), url, prefix, *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["version"].split(".")[0] == str(version)
    return report


@pytest.fixture
def new_prefix(stack: RunningStack) -> Iterator[Callable[[bool], str]]:
    """Unique test prefixes (plain or hash-tag); their keys are deleted at teardown."""
    made: list[str] = []

    def make(hash_tag: bool) -> str:
        name = f"obsctltest{secrets.token_hex(4)}"
        made.append("{" + name + "}" if hash_tag else name)
        return made[-1]

    yield make
    client = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"])
    for prefix in made:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


def with_user(url: str, user: str, password: str) -> str:
    """The stack's Redis URL, logged in as another ACL user."""
    address = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    return f"redis://{user}:{password}@{address}/0"


def expected_states(entry: dict[str, Any], version: int) -> dict[str, int]:
    """What the probe must export for a queue, from bullmq's own getJobCounts()/isPaused().

    BullMQ 5: every state as getJobCounts() reports it. BullMQ 6 has no `paused` count and
    counts the jobs of a paused queue as `waiting`; the probe reports them as `paused`.
    """
    counts = entry["counts"]
    expected = {state: counts.get(state, 0) for state in STATES}
    if version == 6:
        assert "paused" not in counts
        if entry["paused"]:
            expected["paused"], expected["waiting"] = counts["waiting"], 0
    return expected


def jobs_of(outcome: ProbeOutcome, prefix: str) -> dict[str, dict[str, float]]:
    family = next(f for f in outcome.families if f.name == "bullmq_queue_jobs")
    found: dict[str, dict[str, float]] = {}
    for sample in family.samples:
        if sample.labels["prefix"] == prefix:
            found.setdefault(sample.labels["queue"], {})[sample.labels["state"]] = sample.value
    return found


def per_queue(outcome: ProbeOutcome, name: str, prefix: str) -> dict[str, float]:
    family = next(f for f in outcome.families if f.name == name)
    return {s.labels["queue"]: s.value for s in family.samples if s.labels["prefix"] == prefix}


def discovered(outcome: ProbeOutcome, prefix: str) -> float:
    family = next(f for f in outcome.families if f.name == "bullmq_queues_discovered")
    return next(s.value for s in family.samples if s.labels["prefix"] == prefix)


@pytest.mark.parametrize("hash_tag", [False, True], ids=["plain", "hashtag"])
@pytest.mark.parametrize("version", [6, 5], ids=["bullmq6", "bullmq5"])
async def test_counts_equal_what_bullmq_reports_and_drained_queues_keep_zeros(
    stack: RunningStack, new_prefix: Callable[[bool], str], version: int, hash_tag: bool
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    prefix = new_prefix(hash_tag)
    built = bullmq(version, url, prefix, "build")
    probe = BullMQProbe(BullMQConfig(url=url, prefixes=[prefix]))
    try:
        outcome = await run_bounded(probe)
        read_at = time.time()
        after = bullmq(version, url, prefix, "obliterate", "drain")
        drained = await run_bounded(probe)
        restarted = BullMQProbe(BullMQConfig(url=url, prefixes=[prefix]))
        fresh = await run_bounded(restarted)
        await restarted.close()
    finally:
        await probe.close()

    assert outcome.status is Status.OK, outcome.detail
    assert set(outcome.phases) == {"scan", "read"}
    assert probe.target == prefix
    jobs = jobs_of(outcome, prefix)
    assert set(jobs) == set(BUILT_QUEUES)
    for queue in BUILT_QUEUES:
        assert jobs[queue] == expected_states(built["queues"][queue], version), queue
    # the same meaning whatever the version: a paused queue's jobs are `paused`, not `waiting`
    assert jobs["held"] == dict.fromkeys(STATES, 0) | {"paused": 2, "prioritized": 1}
    paused = per_queue(outcome, "bullmq_queue_paused", prefix)
    assert paused == {q: float(built["queues"][q]["paused"]) for q in BUILT_QUEUES}
    assert discovered(outcome, prefix) == len(BUILT_QUEUES)
    for family in outcome.families:
        assert family.documentation.endswith("(cached, refreshed every 15 s)")

    # Ages from the jobs' known creation times: the lowest priority's head is the oldest in
    # `work` (300 s) although the next prioritized job is 10 s old and the wait list's 120 s.
    ages = per_queue(outcome, "bullmq_queue_oldest_waiting_seconds", prefix)
    since_build = read_at - built["now"] / 1000
    assert built["ages"]["workLowPriority"] <= ages["work"] <= 300 + since_build + 1
    assert built["ages"]["held"] <= ages["held"] <= 60 + since_build + 1
    assert 0 < ages["drain"] <= since_build + 1
    # a delayed job waits from when it was due (10 s ago), not from its creation (600 s ago)
    assert jobs["due"]["waiting"] == 1
    assert built["ages"]["due"] <= ages["due"] <= 10 + since_build + 1
    assert 0 < ages["busy"] <= since_build + 1  # the active job does not count

    # After obliterate: bullmq reports zeros, and so does the probe, for the same queue.
    assert drained.status is Status.OK, drained.detail
    assert jobs_of(drained, prefix)["drain"] == expected_states(after["queues"]["drain"], version)
    assert jobs_of(drained, prefix)["drain"] == dict.fromkeys(STATES, 0)
    assert per_queue(drained, "bullmq_queue_oldest_waiting_seconds", prefix)["drain"] == 0
    assert per_queue(drained, "bullmq_queue_paused", prefix)["drain"] == 0
    assert discovered(drained, prefix) == len(BUILT_QUEUES) - 1
    assert jobs_of(drained, prefix)["work"] == jobs["work"]
    # ... until the exporter restarts: a new probe never saw it.
    assert "drain" not in jobs_of(fresh, prefix)


async def test_discovery_is_bounded_and_warns_once(
    stack: RunningStack, new_prefix: Callable[[bool], str], caplog: pytest.LogCaptureFixture
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    prefix = new_prefix(False)
    made = bullmq(6, url, prefix, "many", "5")
    assert sorted(made["queues"]) == ["q000", "q001", "q002", "q003", "q004"]
    probe = BullMQProbe(BullMQConfig(url=url, prefixes=[prefix], max_queues=3))
    with caplog.at_level(logging.WARNING, logger="obsctl.exporter.probes.bullmq"):
        try:
            first = await run_bounded(probe)
            second = await run_bounded(probe)
        finally:
            await probe.close()

    for outcome in (first, second):
        assert outcome.status is Status.OK, outcome.detail
        assert sorted(jobs_of(outcome, prefix)) == ["q000", "q001", "q002"]
        assert discovered(outcome, prefix) == 5
        assert ignored(outcome, prefix) == {"bad_name": 0, "over_max_queues": 2}
        for counts in jobs_of(outcome, prefix).values():
            assert counts["waiting"] == 1
    warnings = [r for r in caplog.records if "max_queues" in r.getMessage()]
    assert len(warnings) == 1
    assert "q003" in warnings[0].getMessage()


def ignored(outcome: ProbeOutcome, prefix: str) -> dict[str, float]:
    family = next(f for f in outcome.families if f.name == "bullmq_queues_ignored")
    return {s.labels["reason"]: s.value for s in family.samples if s.labels["prefix"] == prefix}


async def test_a_queue_name_unfit_for_a_label_is_ignored_and_counted(
    stack: RunningStack, new_prefix: Callable[[bool], str], caplog: pytest.LogCaptureFixture
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    prefix = new_prefix(False)
    hostile = "RT[click](//evil.example/x) @all @13900000000"
    bullmq(6, url, prefix, "named", hostile, "抠图-matting", "plain.queue")
    probe = BullMQProbe(BullMQConfig(url=url, prefixes=[prefix]))
    with caplog.at_level(logging.WARNING, logger="obsctl.exporter.probes.bullmq"):
        try:
            outcome = await run_bounded(probe)
        finally:
            await probe.close()

    assert outcome.status is Status.OK, outcome.detail
    assert sorted(jobs_of(outcome, prefix)) == ["plain.queue", "抠图-matting"]
    assert ignored(outcome, prefix) == {"bad_name": 1, "over_max_queues": 0}
    [warning] = [
        r.getMessage() for r in caplog.records if "cannot be label values" in r.getMessage()
    ]
    assert "ignoring 1 queues" in warning


async def test_listed_queues_are_read_without_scan_and_exported_before_they_exist(
    stack: RunningStack, new_prefix: Callable[[bool], str]
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    prefix = new_prefix(True)
    bullmq(5, url, prefix, "many", "2")
    direct = redis.Redis.from_url(url)
    # A user that may not SCAN (nor KEYS): the stack's own exporter scans the same Redis, so
    # counting SCAN calls server-wide would race with it.
    user, password = f"noscan{secrets.token_hex(3)}", secrets.token_hex(8)
    direct.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                       channels=["*"], commands=["+@all", "-scan", "-keys"])  # fmt: skip
    probe = BullMQProbe(BullMQConfig(url=with_user(url, user, password), prefixes=[prefix],
                                     queues=["q001", "not-yet"]))  # fmt: skip
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
        direct.acl_deluser(user)

    assert outcome.status is Status.OK, outcome.detail
    assert set(outcome.phases) == {"read"}
    jobs = jobs_of(outcome, prefix)
    assert sorted(jobs) == ["not-yet", "q001"]
    assert jobs["not-yet"] == dict.fromkeys(STATES, 0)
    assert jobs["q001"]["waiting"] == 1
    assert discovered(outcome, prefix) == 1


async def test_discovery_uses_scan_never_keys(
    stack: RunningStack, new_prefix: Callable[[bool], str]
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    prefix = new_prefix(False)
    bullmq(6, url, prefix, "many", "1")
    direct = redis.Redis.from_url(url)

    def calls(command: str) -> int:
        stats = direct.info("commandstats").get(f"cmdstat_{command}", {})
        return int(stats.get("calls", 0))

    keys_before, scan_before = calls("keys"), calls("scan")
    probe = BullMQProbe(BullMQConfig(url=url, prefixes=[prefix, "bull"]))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.OK, outcome.detail
    assert calls("keys") == keys_before
    assert calls("scan") > scan_before
    # the demo platform's own queues are found on the default prefix next to ours
    assert discovered(outcome, "bull") >= 1
    assert probe.target == f"{prefix},bull"


async def test_unreachable_redis_is_refused_without_families() -> None:
    probe = BullMQProbe(BullMQConfig(url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.DOWN
    assert outcome.reason is Reason.REFUSED, outcome.detail
    assert outcome.families == ()
    assert outcome.duration_seconds < 1


def test_config_is_strict() -> None:
    config = BullMQConfig.model_validate({"url": "redis://h:6379/0"})
    assert (config.interval, config.timeout, config.prefixes, config.queues) == (
        15.0,
        2.0,
        ["bull"],
        [],
    )
    assert config.max_queues == 200
    bad: list[tuple[dict[str, Any], tuple[str | int, ...]]] = [
        ({"url": "redis://h", "prefixes": ["bull"], "queue": ["a"]}, ("queue",)),
        ({"url": "redis://h", "prefixes": ["bu*ll"]}, ("prefixes", 0)),
        ({"url": "redis://h", "prefixes": []}, ("prefixes",)),
        ({"url": "redis://h", "queues": ["a:b"]}, ("queues", 0)),
        ({"url": "redis://h", "queues": ["a", "a"]}, ("queues",)),
        ({"url": "redis://h", "queues": ["a", "b"], "max_queues": 1}, ("max_queues",)),
        ({"url": "redis://h", "interval": "1s", "timeout": "2s"}, ("timeout",)),
        ({"url": "mysql://h"}, ("url",)),
    ]
    for raw, where in bad:
        with pytest.raises(ValidationError) as error:
            BullMQConfig.model_validate(raw)
        assert error.value.errors()[0]["loc"] == where, raw


def policies(outcome: ProbeOutcome, prefix: str) -> list[str]:
    family = next(f for f in outcome.families if f.name == "bullmq_redis_maxmemory_policy")
    return [s.labels["policy"] for s in family.samples if s.labels["prefix"] == prefix and s.value]


async def test_the_queue_redis_eviction_policy_is_exported_as_redis_reports_it(
    stack: RunningStack,
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    direct = redis.Redis.from_url(url)
    shipped = direct.config_get("maxmemory-policy")["maxmemory-policy"]
    probe = BullMQProbe(BullMQConfig(url=url, prefixes=["bull"]))
    try:
        assert policies(await run_bounded(probe), "bull") == [shipped]
        direct.config_set("maxmemory-policy", "allkeys-lru")
        assert policies(await run_bounded(probe), "bull") == ["allkeys-lru"]
    finally:
        direct.config_set("maxmemory-policy", shipped)
        await probe.close()
    assert shipped == "noeviction", "the stack's Redis is configured as BullMQ requires"


async def test_a_user_without_info_still_gets_the_queues_and_one_warning(
    stack: RunningStack, caplog: pytest.LogCaptureFixture
) -> None:
    url = stack.env["OBSCTL_REDIS_URL"]
    direct = redis.Redis.from_url(url)
    user, password = f"noinfo{secrets.token_hex(3)}", secrets.token_hex(8)
    direct.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                       channels=["*"], commands=["+@all", "-info"])  # fmt: skip
    probe = BullMQProbe(BullMQConfig(url=with_user(url, user, password), prefixes=["bull"]))
    try:
        with caplog.at_level(logging.WARNING, logger="obsctl.exporter.probes.bullmq"):
            first, second = await run_bounded(probe), await run_bounded(probe)
    finally:
        await probe.close()
        direct.acl_deluser(user)
    for outcome in (first, second):
        assert outcome.status is Status.OK, outcome.detail
        names = {f.name for f in outcome.families}
        assert "bullmq_queue_jobs" in names and "bullmq_redis_maxmemory_policy" not in names
    assert sum("INFO memory refused" in r.getMessage() for r in caplog.records) == 1
