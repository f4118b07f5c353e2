"""BullMQ probe: job counts per queue and state, pause flag and oldest waiting job, from Redis.

What the `state` label means, for BullMQ 5 and 6 alike (both keep their lists in Redis under
`<prefix>:<queue>:<name>`):

- `waiting`: jobs a worker may take right now: the `wait` list when the queue is not paused,
  0 when it is.
- `paused`: jobs held back by a global pause: the `paused` list (BullMQ 5 renames `wait` to it
  on pause) plus, when the `meta` hash has `paused` set, the `wait` list (BullMQ 6 keeps the
  jobs there and only sets the flag).
- `active`, `delayed`, `prioritized`, `failed`, `completed`, `waiting-children`: the size of
  the key of that name. Prioritized jobs stay `prioritized` while the queue is paused.

So for BullMQ 5 every state equals what `Queue.getJobCounts()` reports; for BullMQ 6, whose
`getJobCounts()` has no `paused` entry and counts held jobs as `waiting`, `waiting` + `paused`
equals its `waiting` and the other states are equal. A legacy BullMQ 4 marker at the tail of a
list is not counted, as `getJobCounts()` does not count it.

`bullmq_queue_oldest_waiting_seconds` is how long the job that has waited longest for a worker
has been ready to run, among the next job of `wait` and of `paused` (index -1), the next
prioritized job and the oldest job of the lowest priority (where starvation shows first).
"Ready" is the later of its creation plus its original delay and its last processing start
(a retried or stalled job counts from its last attempt). Jobs still in `delayed` do not count.
It includes paused queues on purpose: their jobs are waiting too. 0 when nothing waits.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
import redis.exceptions as rexc
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import Field, ValidationInfo, field_validator

from obsctl.config_types import (
    Duration,
    LabelValue,
    no_repeats,
    timeout_within_interval,
)
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.base import ProbeOutcome, Status
from obsctl.exporter.probes.redis import RedisBacked, RedisUrl
from obsctl.metric_names import BullMQMetric

log = logging.getLogger(__name__)

STATES = (
    "waiting",
    "active",
    "delayed",
    "prioritized",
    "paused",
    "failed",
    "completed",
    "waiting-children",
)
_SORTED_SETS = ("delayed", "prioritized", "failed", "completed", "waiting-children")
# Prioritized scores are priority * 2^32 + an insertion counter (BullMQ 5 and 6).
_PRIORITY_STEP = 0x100000000
_LEGACY_MARKER = b"0:"
_JOB_FIELDS = ("timestamp", "processedOn", "opts")
IGNORE_REASONS = ("bad_name", "over_max_queues")

# A key prefix or queue name as it appears in a key and on a label: no ':' inside a queue name
# (BullMQ refuses one), no glob characters (the prefix goes into a SCAN pattern).
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")]
QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.{}-]{1,64}$")]


class BullMQConfig(StrictModel):
    """Which BullMQ queues to watch, on which Redis."""

    url: RedisUrl
    interval: Duration = 15.0
    timeout: Duration = 2.0
    prefixes: list[Prefix] = Field(default_factory=lambda: ["bull"], min_length=1)
    # Empty: discover queues with SCAN on each prefix; otherwise exactly these, in every prefix.
    queues: list[QueueName] = Field(default_factory=list)
    # Bounds the label set per prefix; queues beyond it (by name) are ignored and logged once.
    max_queues: int = Field(default=200, ge=1, le=5000)
    # The probe's own `target` label; defaults to the prefixes joined with ','.
    target: LabelValue | None = None

    _timeout_fits_interval = field_validator("timeout")(timeout_within_interval)

    _no_repeats = field_validator("prefixes", "queues")(no_repeats)

    @field_validator("max_queues")
    @classmethod
    def _room_for_listed_queues(cls, value: int, info: ValidationInfo) -> int:
        listed = info.data.get("queues") or []
        if len(listed) > value:
            raise ValueError(f"{len(listed)} queues are listed but max_queues is {value}")
        return value


@dataclass(frozen=True)
class QueueReading:
    """What one run read about one queue."""

    prefix: str
    queue: str
    jobs: Mapping[str, int]
    paused: bool
    oldest_waiting_seconds: float
    exists: bool


@dataclass
class _Raw:
    """Replies of the first pipeline for one queue, before the job hashes are read."""

    prefix: str
    queue: str
    paused: bool
    jobs: dict[str, int]
    exists: bool
    next_ids: list[bytes]
    lowest_bucket: float | None

    def job_key(self, job_id: bytes) -> bytes:
        """The hash key of one of this queue's jobs."""
        return f"{self.prefix}:{self.queue}:".encode() + job_id


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# A discovered queue name becomes a label value, and label values reach alert messages:
# letters and digits of any script, '_', '.', '-', braces (hash tags), at most 64 of them.
# A key named `bull:RT[click](//evil) @all:meta` is not a queue anyone should be paged about.
_LABEL_SAFE_NAME = re.compile(r"^[\w.{}-]{1,64}$")
BAD_NAME = object()


def _queue_from_key(key: bytes, head: str) -> str | object | None:
    """The queue a meta/id key belongs to, BAD_NAME if unfit for a label, None if no queue's."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return BAD_NAME if key.startswith(head.encode()) else None
    if not text.startswith(head):
        return None
    rest = text[len(head) :]
    for suffix in (":meta", ":id"):
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            if not name or ":" in name:
                return None
            return name if _LABEL_SAFE_NAME.match(name) else BAD_NAME
    return None


def _list_state(length: int, tail: Sequence[bytes]) -> tuple[int, bytes | None]:
    """A wait/paused list's job count and next job id, skipping a legacy marker at the tail."""
    if tail and tail[-1].startswith(_LEGACY_MARKER):
        return max(length - 1, 0), tail[-2] if len(tail) == 2 else None
    return length, tail[-1] if tail else None


def _float(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _original_delay(opts: bytes | None) -> float:
    """The delay the job was added with (ms); its `delay` field is reset to 0 on promotion."""
    try:
        delay = json.loads(opts).get("delay", 0) if opts else 0
    except (ValueError, AttributeError):
        return 0.0
    valid = isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0
    return float(delay) if valid else 0.0


def _ready_ms(fields: Sequence[bytes | None]) -> float | None:
    """When a job became ready to run (ms since the epoch), from its hash; None if it is gone."""
    timestamp, processed_on, opts = fields
    created = _float(timestamp)
    if created is None:
        return None
    ready = created + _original_delay(opts)
    started = _float(processed_on)
    return ready if started is None else max(ready, started)


class BullMQProbe(RedisBacked):
    """Counts BullMQ jobs per queue and state with plain reads (SCAN, LLEN, ZCARD, HMGET)."""

    kind = "bullmq"

    def __init__(self, config: BullMQConfig) -> None:
        target = config.target or ",".join(config.prefixes)
        super().__init__(target, config.interval, config.timeout, config.url, decode=False)
        self.config = config
        # Every queue ever exported stays exported (zeros once drained) until restart.
        self._known: dict[str, set[str]] = {p: set(config.queues) for p in config.prefixes}
        self._ignored = {p: dict.fromkeys(IGNORE_REASONS, 0) for p in config.prefixes}
        self._warned_bad_name = False
        self._warned_overflow = False
        self._warned_no_info = False

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """Discover the queues (unless listed), then read every known one."""
        await self._redis.close_stale()
        client = self._redis.client()
        found: dict[str, int] | None = None
        if not self.config.queues:
            started = time.monotonic()
            found = await self._discover(client)
            phases["scan"] = time.monotonic() - started
        started = time.monotonic()
        readings = await self._read(client)
        phases["read"] = time.monotonic() - started
        if found is None:
            found = {p: 0 for p in self.config.prefixes}
            for reading in readings:
                found[reading.prefix] += reading.exists
        families = self._families(readings, found)
        policy = await self._eviction_policy(client)
        if policy is not None:
            families.append(self._policy_family(policy))
        return self.outcome(began, Status.OK, phases=phases, families=families)

    async def _eviction_policy(self, client: aioredis.Redis) -> str | None:
        """The queue Redis's maxmemory-policy from INFO memory (managed Redis refuses CONFIG)."""
        try:
            memory = await client.info("memory")
        except rexc.ResponseError as exc:  # INFO renamed or not allowed to this user
            if not self._warned_no_info:
                self._warned_no_info = True
                log.warning("bullmq %s: INFO memory refused (%s); eviction policy unknown",
                            self.target, exc)  # fmt: skip
            return None
        policy = memory.get("maxmemory_policy")
        return policy if isinstance(policy, str) else None

    def _policy_family(self, policy: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            BullMQMetric.REDIS_MAXMEMORY_POLICY,
            self.cached_help(
                "1, labelled with the maxmemory-policy of the Redis holding the queues; BullMQ "
                "needs noeviction, any other policy lets Redis delete jobs when memory is full"
            ),
            labels=["prefix", "policy"],
        )
        for prefix in self.config.prefixes:
            family.add_metric([prefix, policy], 1.0)
        return family

    async def _discover(self, client: aioredis.Redis) -> dict[str, int]:
        """SCAN each prefix for `<prefix>:<queue>:meta` and `:id`; remember new queues."""
        counts: dict[str, int] = {}
        for prefix in self.config.prefixes:
            head = f"{prefix}:"
            # One pass for both suffixes; the exact suffix is checked on our side.
            pattern = f"{_glob_escape(prefix)}:*:[mi][ed]*"
            names: set[str] = set()
            unfit: set[bytes] = set()
            async for key in client.scan_iter(match=pattern, count=1000):
                name = _queue_from_key(key, head)
                if name is BAD_NAME:
                    unfit.add(key)
                elif isinstance(name, str):
                    names.add(name)
            counts[prefix] = len(names)
            self._remember(prefix, names)
            self._ignore_unfit(prefix, unfit)
        return counts

    def _ignore_unfit(self, prefix: str, keys: set[bytes]) -> None:
        # :meta and :id of one queue are two keys; count queues, not keys.
        queues = {key.rsplit(b":", 1)[0] for key in keys}
        self._ignored[prefix]["bad_name"] = len(queues)
        if queues and not self._warned_bad_name:
            self._warned_bad_name = True
            sample = sorted(queues)[0][:80]
            log.warning(
                "bullmq prefix %s: ignoring %d queues whose names cannot be label values "
                "(e.g. %r): names may hold letters, digits, '_', '.', '-' and braces",
                prefix, len(queues), sample,
            )  # fmt: skip

    def _remember(self, prefix: str, names: set[str]) -> None:
        known = self._known[prefix]
        new = sorted(names - known)
        room = max(self.config.max_queues - len(known), 0)
        known.update(new[:room])
        ignored = new[room:]
        self._ignored[prefix]["over_max_queues"] = len(names - known)
        if ignored and not self._warned_overflow:
            self._warned_overflow = True
            log.warning(
                "bullmq prefix %s: more than max_queues=%d queues; ignoring %d of them "
                "(first ignored: %s); raise max_queues or list the queues in the config",
                prefix,
                self.config.max_queues,
                len(ignored),
                ", ".join(ignored[:5]),
            )

    async def _read(self, client: aioredis.Redis) -> list[QueueReading]:
        """Read every known queue: counts and pause flag, then the age of its next jobs."""
        targets = [(p, q) for p in self.config.prefixes for q in sorted(self._known[p])]
        if not targets:
            return []
        raws = await _read_counts(client, targets)
        ready = await _read_ready_times(client, raws)
        now_ms = time.time() * 1000
        return [
            QueueReading(
                prefix=raw.prefix,
                queue=raw.queue,
                jobs=raw.jobs,
                paused=raw.paused,
                oldest_waiting_seconds=max(0.0, now_ms - min(times)) / 1000 if times else 0.0,
                exists=raw.exists,
            )
            for raw, times in zip(raws, ready, strict=True)
        ]

    def _families(self, readings: list[QueueReading], found: Mapping[str, int]) -> list[Metric]:
        jobs = GaugeMetricFamily(
            BullMQMetric.JOBS,
            self.cached_help(
                "BullMQ jobs per queue and state; a paused queue's jobs count as paused"
            ),
            labels=["prefix", "queue", "state"],
        )
        oldest = GaugeMetricFamily(
            BullMQMetric.OLDEST_WAITING,
            self.cached_help(
                "Seconds the longest-waiting ready job has waited for a worker; 0 if none"
            ),
            labels=["prefix", "queue"],
        )
        paused = GaugeMetricFamily(
            BullMQMetric.PAUSED,
            self.cached_help("1 if the BullMQ queue is paused globally, else 0"),
            labels=["prefix", "queue"],
        )
        discovered = GaugeMetricFamily(
            BullMQMetric.QUEUES_DISCOVERED,
            self.cached_help(
                "BullMQ queues that exist under the prefix (found by SCAN or listed), "
                "including any beyond max_queues"
            ),
            labels=["prefix"],
        )
        for reading in readings:
            for state in STATES:
                jobs.add_metric([reading.prefix, reading.queue, state], reading.jobs[state])
            oldest.add_metric([reading.prefix, reading.queue], reading.oldest_waiting_seconds)
            paused.add_metric([reading.prefix, reading.queue], 1.0 if reading.paused else 0.0)
        ignored = GaugeMetricFamily(
            BullMQMetric.QUEUES_IGNORED,
            self.cached_help(
                "BullMQ queues found but not watched: a name unfit for a label, or beyond "
                "max_queues"
            ),
            labels=["prefix", "reason"],
        )
        for prefix in self.config.prefixes:
            discovered.add_metric([prefix], found.get(prefix, 0))
            for reason, count in self._ignored[prefix].items():
                ignored.add_metric([prefix, reason], count)
        return [jobs, oldest, paused, discovered, ignored]


def _parse_counts(prefix: str, queue: str, replies: Sequence[Any]) -> _Raw:
    """Turn the first pipeline's replies for one queue into counts and next-job ids."""
    (meta_paused, wait_len, wait_tail, paused_len, paused_tail, active_len) = replies[:6]
    sizes = dict(zip(_SORTED_SETS, replies[6:11], strict=True))
    prio_head, prio_tail, exists = replies[11:14]

    in_wait, next_wait = _list_state(int(wait_len), wait_tail)
    in_paused, next_paused = _list_state(int(paused_len), paused_tail)
    is_paused = bool(meta_paused)
    jobs = {
        "waiting": 0 if is_paused else in_wait,
        "paused": in_paused + (in_wait if is_paused else 0),
        "active": int(active_len),
        **{name: int(size) for name, size in sizes.items()},
    }
    next_ids = [job for job in (next_wait, next_paused) if job is not None]
    lowest_bucket = None
    if prio_head:
        next_ids.append(prio_head[0][0])
        head_bucket = int(prio_head[0][1]) // _PRIORITY_STEP
        tail_bucket = int(prio_tail[0][1]) // _PRIORITY_STEP if prio_tail else head_bucket
        if tail_bucket != head_bucket:
            lowest_bucket = float(tail_bucket * _PRIORITY_STEP)
    return _Raw(
        prefix=prefix,
        queue=queue,
        paused=is_paused,
        jobs=jobs,
        exists=bool(exists),
        next_ids=list(dict.fromkeys(next_ids)),
        lowest_bucket=lowest_bucket,
    )


async def _read_counts(client: aioredis.Redis, targets: list[tuple[str, str]]) -> list[_Raw]:
    """One pipeline: pause flag, list and set sizes, next job ids of every queue."""
    async with client.pipeline(transaction=False) as pipe:
        for prefix, queue in targets:
            base = f"{prefix}:{queue}:"
            pipe.hexists(base + "meta", "paused")
            pipe.llen(base + "wait")
            pipe.lrange(base + "wait", -2, -1)
            pipe.llen(base + "paused")
            pipe.lrange(base + "paused", -2, -1)
            pipe.llen(base + "active")
            for name in _SORTED_SETS:
                pipe.zcard(base + name)
            pipe.zrange(base + "prioritized", 0, 0, withscores=True)
            pipe.zrange(base + "prioritized", -1, -1, withscores=True)
            pipe.exists(base + "meta", base + "id")
        replies: list[Any] = await pipe.execute()
    width = len(replies) // len(targets)
    return [
        _parse_counts(prefix, queue, replies[i * width : (i + 1) * width])
        for i, (prefix, queue) in enumerate(targets)
    ]


async def _read_ready_times(client: aioredis.Redis, raws: list[_Raw]) -> list[list[float]]:
    """When each queue's next jobs became ready (ms), in one or two more round trips."""
    async with client.pipeline(transaction=False) as pipe:
        for raw in raws:
            for job_id in raw.next_ids:
                pipe.hmget(raw.job_key(job_id), _JOB_FIELDS)
            if raw.lowest_bucket is not None:
                key = f"{raw.prefix}:{raw.queue}:prioritized"
                pipe.zrangebyscore(key, raw.lowest_bucket, "+inf", start=0, num=1)
        replies: list[Any] = await pipe.execute()

    ready: list[list[float]] = []
    lowest_heads: list[tuple[int, bytes]] = []
    cursor = 0
    for index, raw in enumerate(raws):
        fields = replies[cursor : cursor + len(raw.next_ids)]
        cursor += len(raw.next_ids)
        ready.append([when for f in fields if (when := _ready_ms(f)) is not None])
        if raw.lowest_bucket is not None:
            head = replies[cursor]
            cursor += 1
            if head and head[0] not in raw.next_ids:
                lowest_heads.append((index, head[0]))

    # Only when some queue holds jobs of several priorities.
    if lowest_heads:
        async with client.pipeline(transaction=False) as pipe:
            for index, job_id in lowest_heads:
                pipe.hmget(raws[index].job_key(job_id), _JOB_FIELDS)
            replies = await pipe.execute()
        for (index, _), fields in zip(lowest_heads, replies, strict=True):
            when = _ready_ms(fields)
            if when is not None:
                ready[index].append(when)
    return ready
