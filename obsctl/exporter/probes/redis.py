"""Redis probe: PING, a SET/GET round trip on a canary key with a TTL, and INFO figures."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import secrets
import time
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

import redis.asyncio as aioredis
import redis.exceptions as rexc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from obsctl.config_types import (
    Duration,
    LabelValue,
    slow_below_timeout,
    timeout_within_interval,
)
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.base import (
    ProbeBase,
    ProbeOutcome,
    Reason,
    Status,
    cached_help,
    classify,
)
from obsctl.metric_names import RedisMetric

_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_redis_url(url: SecretStr) -> SecretStr:
    if not url.get_secret_value().startswith(_SCHEMES):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return url


# A Redis URL kept secret (it may carry a password); the error never echoes it.
RedisUrl = Annotated[SecretStr, AfterValidator(_check_redis_url)]


class RedisConfig(StrictModel):
    """Settings of one Redis probe target."""

    url: RedisUrl
    interval: Duration = 15.0
    timeout: Duration = 1.0
    canary_key: str = Field(default="obsctl:probe:canary", min_length=1, max_length=200)
    canary_ttl: Duration = 60.0
    # A PING, SET or GET slower than this marks Redis degraded: cache and lock users
    # on the platform expect sub-millisecond answers, 50 ms means the server is struggling.
    slow_threshold: Duration = 0.05
    target: LabelValue = "main"

    # Field-level checks (not a model validator) so an error names the key, never the URL.
    _timeout_fits_interval = field_validator("timeout")(timeout_within_interval)

    @field_validator("canary_ttl")
    @classmethod
    def _ttl_in_milliseconds(cls, value: float) -> float:
        if value < 0.001:
            raise ValueError("canary_ttl must be at least 1ms")
        return value

    _slow_below_timeout = field_validator("slow_threshold")(slow_below_timeout)


_REFUSED_TEXT = re.compile(
    rf"Error {errno.ECONNREFUSED} connecting|Connection refused|Connect call failed"
)


def redis_reason(exc: BaseException) -> Reason:
    """Map a redis-py (or socket) exception to a bounded reason."""
    if isinstance(exc, TimeoutError | rexc.TimeoutError):
        return Reason.TIMEOUT
    if isinstance(exc, rexc.AuthenticationError | rexc.NoPermissionError):
        return Reason.AUTH
    if isinstance(exc, rexc.ResponseError):
        text = str(exc).upper()
        if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")) or "AUTH" in text.split()[:2]:
            return Reason.AUTH
        return Reason.ERROR
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return Reason.REFUSED
        cause = cause.__cause__ or cause.__context__
    # A pipeline's retry re-raises redis-py's ConnectionError without the OSError behind it;
    # its message still says "Error 111 connecting": the same outage must give the same reason.
    if isinstance(exc, rexc.ConnectionError) and _REFUSED_TEXT.search(str(exc)):
        return Reason.REFUSED
    return classify(exc)


class RedisConnection:
    """One redis.asyncio client kept across probe runs, rebuilt after any failure."""

    def __init__(self, url: SecretStr, timeout: float, *, decode: bool) -> None:
        self._url = url
        self._timeout = timeout
        self._decode = decode
        self._client: aioredis.Redis | None = None
        self._stale: list[aioredis.Redis] = []

    def client(self) -> aioredis.Redis:
        """The live client, created on first use or after a reset."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self._url.get_secret_value(),
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                # One immediate retry, on connection errors only: a kept connection that the
                # server closed (restart) is replaced, so the run reports the state of now.
                # Timeouts are not retried, the run's budget would not allow it.
                retry=Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,)),
                # RESP2 works with every Redis version and proxy; RESP3 (HELLO) needs Redis 6
                protocol=2,
                max_connections=2,
                decode_responses=self._decode,
                health_check_interval=0,
            )
        return self._client

    def discard(self) -> None:
        """Forget the client after a failure (or cancellation); the next run starts afresh."""
        if self._client is not None:
            self._stale.append(self._client)
            self._client = None

    async def close_stale(self) -> None:
        """Close clients dropped after failures, never waiting long on a hung server."""
        stale, self._stale = self._stale, []
        for old in stale:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.1):
                    await old.aclose()

    async def close(self) -> None:
        """Close every client this holder made."""
        self.discard()
        await self.close_stale()


def _number(info: Mapping[str, Any], key: str) -> float | None:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def info_families(info: Mapping[str, Any], target: str, interval: float) -> list[Metric]:
    """Metric families for the figures of one INFO reply (missing fields are left out)."""
    families: list[Metric] = []

    def add(
        kind: type[GaugeMetricFamily | CounterMetricFamily], name: str, doc: str, key: str
    ) -> None:
        value = _number(info, key)
        if value is not None:
            family = kind(name, cached_help(doc, interval), labels=["target"])
            family.add_metric([target], value)
            families.append(family)

    gauge = partial(add, GaugeMetricFamily)
    counter = partial(add, CounterMetricFamily)

    gauge(RedisMetric.MEMORY_USED, "Memory allocated by Redis (INFO used_memory).", "used_memory")
    gauge(
        RedisMetric.MEMORY_MAX,
        "Redis maxmemory setting; 0 means no limit.",
        "maxmemory",
    )
    gauge(RedisMetric.CONNECTED_CLIENTS, "Client connections open on Redis.", "connected_clients")
    gauge(
        RedisMetric.BLOCKED_CLIENTS,
        "Clients blocked in a blocking call (BRPOP, BZPOPMIN, ...).",
        "blocked_clients",
    )
    counter(
        RedisMetric.KEYSPACE_HITS,
        "Successful key lookups since Redis started, as INFO reports them.",
        "keyspace_hits",
    )
    counter(
        RedisMetric.KEYSPACE_MISSES,
        "Failed key lookups since Redis started, as INFO reports them.",
        "keyspace_misses",
    )
    hits, misses = _number(info, "keyspace_hits"), _number(info, "keyspace_misses")
    if hits is not None and misses is not None and hits + misses > 0:
        ratio = GaugeMetricFamily(
            RedisMetric.KEYSPACE_HIT_RATIO,
            cached_help(
                "Key lookup hit ratio since Redis started; alert on the rate of the counters",
                interval,
            ),
            labels=["target"],
        )
        ratio.add_metric([target], hits / (hits + misses))
        families.append(ratio)
    counter(
        RedisMetric.EVICTED_KEYS,
        "Keys evicted because of the maxmemory limit, as INFO reports them.",
        "evicted_keys",
    )
    gauge(RedisMetric.UPTIME, "Seconds since Redis started.", "uptime_in_seconds")
    return families


class RedisBacked(ProbeBase):
    """A probe that talks to Redis through one kept client (the Redis and BullMQ probes)."""

    expected_errors = (rexc.RedisError, OSError)

    def __init__(
        self, target: str, interval: float, timeout: float, url: SecretStr, *, decode: bool
    ) -> None:
        super().__init__(target, interval, timeout)
        self._redis = RedisConnection(url, self.budget, decode=decode)

    def reason(self, exc: BaseException) -> Reason:
        """redis-py's exceptions mapped to a bounded reason."""
        return redis_reason(exc)

    def discard(self) -> None:
        """Forget the client: the next run connects afresh."""
        self._redis.discard()

    async def close(self) -> None:
        """Close the client and its connections."""
        await self._redis.close()


class RedisProbe(RedisBacked):
    """PING, canary SET/GET with a TTL and INFO against one Redis, with one kept client."""

    kind = "redis"

    def __init__(self, config: RedisConfig) -> None:
        super().__init__(config.target, config.interval, config.timeout, config.url, decode=True)
        self.config = config

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """PING, SET, GET and INFO, each timed."""
        await self._redis.close_stale()
        client = self._redis.client()
        started = time.monotonic()
        await client.ping()
        phases["ping"] = time.monotonic() - started

        value = secrets.token_hex(16)
        started = time.monotonic()
        await client.set(
            self.config.canary_key, value, px=max(1, int(self.config.canary_ttl * 1000))
        )
        phases["set"] = time.monotonic() - started

        started = time.monotonic()
        read_back = await client.get(self.config.canary_key)
        phases["get"] = time.monotonic() - started
        if read_back != value:
            return self.outcome(
                began,
                Status.DOWN,
                reason=Reason.PROTOCOL,
                detail="canary key read back a different value than was written",
                phases=phases,
            )

        started = time.monotonic()
        try:
            # plain INFO: Redis 6 does not accept several section names in one call
            info = await client.info()
        except rexc.ResponseError as exc:
            # Redis answers, only INFO is refused (renamed or ACL-restricted)
            phases["info"] = time.monotonic() - started
            return self.outcome(
                began, Status.DEGRADED, reason=Reason.ERROR, detail=f"INFO: {exc}", phases=phases
            )
        phases["info"] = time.monotonic() - started

        families = info_families(info, self.target, self.interval_seconds)
        slowest = max(phases["ping"], phases["set"], phases["get"])
        if slowest > self.config.slow_threshold:
            return self.outcome(
                began,
                Status.DEGRADED,
                reason=Reason.SLOW,
                detail=f"slowest command took {slowest * 1000:.1f}ms "
                f"(threshold {self.config.slow_threshold * 1000:g}ms)",
                phases=phases,
                families=families,
            )
        return self.outcome(began, Status.OK, phases=phases, families=families)
