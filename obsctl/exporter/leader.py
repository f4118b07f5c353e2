"""Leader election among the sidecars: a Redis lease with a fencing token.

Every app host runs a sidecar; the singleton probes (business, BullMQ, MySQL server-wide) run
only on the one holding the lease. Acquisition is `SET lease value NX PX lease` and an `INCR`
of a separate fence key in one script, so every lease comes with a token larger than all
before it; the lease value is "<identity>#<token>". The holder renews every lease/3 with a
compare-and-pexpire and releases on a clean stop.

A paused leader (GC, SIGSTOP, a hung VM) must not publish after its lease lapsed, so two
fences hold: by its own monotonic clock it stops leading at `sent + lease - margin`, measured
from before the renewal that succeeded (Redis starts the expiry later, so the local deadline
always comes first); and shared state it writes (the business reader's checkpoint) goes
through a script that compares both the lease value and the fence key's current token.

Redis unreachable: a leader keeps leading until its local deadline (one lease after its last
renewal), then steps down; nobody can be elected meanwhile, so every sidecar reports leader=0
and /health says why (`reason: redis_down`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions as rexc
from pydantic import Field, SecretStr, field_validator

from obsctl.config_types import Duration, LabelValue
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.redis import RedisUrl, redis_reason

log = logging.getLogger(__name__)

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '#' .. token, 'PX', ARGV[2])
  return token
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_FENCED_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[3], ARGV[3])
  return 1
end
return 0
"""


class LeaderConfig(StrictModel):
    """The lease the sidecars elect their leader with; disabled, this sidecar always leads."""

    enabled: bool = False
    # Defaults to the redis section's URL (the platform's Redis).
    url: RedisUrl | None = None
    key: str = Field(default="obsctl:exporter:leader", min_length=1, max_length=200)
    # Fail-over takes at most one lease; renewals come every lease/3, so two may be lost.
    lease: Duration = 30.0
    # The `instance` label of every singleton series (scraped with honor_labels), the same on
    # every sidecar, so a fail-over continues the series instead of starting another one.
    instance: LabelValue = "leader"
    # Who holds the lease, as /health shows it; default "<hostname>:<pid>".
    identity: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("lease")
    @classmethod
    def _lease_long_enough(cls, value: float) -> float:
        if value < 1.0:
            raise ValueError("lease must be at least 1s (renewals come every lease/3)")
        return value


class Role(StrEnum):
    """A sidecar's part in the election."""

    LEADER = "leader"
    FOLLOWER = "follower"


class Why(StrEnum):
    """Why a sidecar is a follower (or a leader at risk): bounded, shown by /health."""

    STARTING = "starting"
    LEASE_HELD = "lease_held"
    LEASE_LOST = "lease_lost"
    REDIS_DOWN = "redis_down"


@dataclass(frozen=True)
class Standing:
    """What this sidecar knows of the election at one moment."""

    role: Role
    token: int = 0
    deadline: float = 0.0
    reason: Why | None = None
    detail: str | None = None
    holder: str | None = None
    changes: int = 0
    changed_at: float = 0.0


class LeaseLost(Exception):
    """A fenced write was refused: another sidecar leads now."""


class Leadership(Protocol):
    """What the runner, collector and /health need of the election."""

    enabled: bool

    def leading(self, token: int | None = None) -> bool:
        """Whether this sidecar leads now (and still under `token`, if given)."""
        ...

    def standing(self) -> Standing:
        """The current standing."""
        ...

    async def tick(self) -> Standing:
        """One campaign or renewal step; never raises."""
        ...

    async def release(self) -> None:
        """Give the lease up (clean shutdown)."""
        ...


class SoleLeader:
    """Election disabled: the only sidecar, always the leader (token 0)."""

    enabled = False

    def __init__(self) -> None:
        self._standing = Standing(Role.LEADER, changed_at=time.time())

    def leading(self, token: int | None = None) -> bool:
        """Always, under token 0."""
        return token in (None, 0)

    def standing(self) -> Standing:
        """Leader since start."""
        return self._standing

    async def tick(self) -> Standing:
        """Nothing to campaign for."""
        return self._standing

    async def release(self) -> None:
        """Nothing held."""


def default_identity() -> str:
    """'<hostname>:<pid>': unique among the sidecars sharing one Redis."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RedisLease:
    """The Redis-lease election of one sidecar."""

    enabled = True

    def __init__(
        self,
        config: LeaderConfig,
        url: SecretStr,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.identity = config.identity or default_identity()
        self.lease_ms = int(config.lease * 1000)
        # Clock rates of two hosts differ by far less than this; it also covers the time the
        # scrape takes to render after the check.
        self.margin = min(1.0, config.lease / 30)
        self.renew_every = config.lease / 3
        self.fence_key = f"{config.key}:fence"
        self._clock = clock
        timeout = min(2.0, config.lease / 6)
        self._client = aioredis.Redis.from_url(
            url.get_secret_value(),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            protocol=2,
            max_connections=4,
            decode_responses=True,
            health_check_interval=0,
        )
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._fenced_set = self._client.register_script(_FENCED_SET)
        self._standing = Standing(Role.FOLLOWER, reason=Why.STARTING, changed_at=time.time())

    @property
    def value(self) -> str:
        """The lease value while held: '<identity>#<token>'."""
        return f"{self.identity}#{self._standing.token}"

    def leading(self, token: int | None = None) -> bool:
        """Leader, within the local deadline, and (if given) still under `token`."""
        now = self._standing
        if now.role is not Role.LEADER or self._clock() >= now.deadline:
            return False
        return token is None or token == now.token

    def standing(self) -> Standing:
        """The current standing, stepped down already if the deadline passed."""
        now = self._standing
        if now.role is Role.LEADER and not self.leading():
            # Stepped down by the local clock; Redis unreachable is the why, if that is known.
            why = Why.REDIS_DOWN if now.reason is Why.REDIS_DOWN else Why.LEASE_LOST
            return replace(now, role=Role.FOLLOWER, reason=why)
        return now

    async def tick(self) -> Standing:
        """Renew a held lease, or try to take a free one; a Redis failure is a standing."""
        sent = self._clock()
        try:
            if self._standing.role is Role.LEADER and self.leading():
                renewed = await self._renew(
                    keys=[self.config.key], args=[self.value, self.lease_ms]
                )
                if renewed:
                    deadline = sent + self.config.lease - self.margin
                    self._set(Role.LEADER, deadline=deadline, holder=self.identity)
                else:
                    self._set(Role.FOLLOWER, reason=Why.LEASE_LOST, detail="renewal refused")
            else:
                await self._campaign(sent)
        except (rexc.RedisError, OSError) as exc:
            self._redis_failed(exc)
        return self.standing()

    async def _campaign(self, sent: float) -> None:
        token = await self._try_acquire()
        if not token:
            # A lease about to expire before the next campaign: be there when it does, so a
            # dead leader is replaced one lease after its last renewal, not up to lease/3 later.
            left = int(await self._client.pttl(self.config.key))
            if 0 < left < self.renew_every * 1000:
                await asyncio.sleep(left / 1000 + 0.005)
                sent = self._clock()
                token = await self._try_acquire()
        if token:
            deadline = sent + self.config.lease - self.margin
            self._set(Role.LEADER, token=token, deadline=deadline, holder=self.identity)
            return
        holder = str(await self._client.get(self.config.key) or "")
        self._set(Role.FOLLOWER, reason=Why.LEASE_HELD, holder=holder.rpartition("#")[0] or None)

    async def _try_acquire(self) -> int:
        keys = [self.config.key, self.fence_key]
        return int(await self._acquire(keys=keys, args=[self.identity, self.lease_ms]))

    def _redis_failed(self, exc: BaseException) -> None:
        detail = f"lease store unreachable ({redis_reason(exc).value}): {type(exc).__name__}"
        if self.leading():
            # Keep leading until the deadline: Redis cannot elect anyone else meanwhile.
            self._standing = replace(self._standing, reason=Why.REDIS_DOWN, detail=detail)
        else:
            self._set(Role.FOLLOWER, reason=Why.REDIS_DOWN, detail=detail, holder=None)

    def _set(
        self,
        role: Role,
        *,
        token: int | None = None,
        deadline: float = 0.0,
        reason: Why | None = None,
        detail: str | None = None,
        holder: str | None = None,
    ) -> None:
        before = self._standing
        changed = role is not before.role
        if changed:
            log.warning("leader election: %s -> %s (%s)", before.role, role, reason or "elected")
        self._standing = Standing(
            role=role,
            token=self._standing.token if token is None else token,
            deadline=deadline,
            reason=reason,
            detail=detail,
            holder=holder,
            changes=before.changes + (1 if changed else 0),
            changed_at=time.time() if changed else before.changed_at,
        )

    def checkpoint(self, key: str) -> Checkpoint:
        """Shared state at `key` that only the current leader may write."""
        return Checkpoint(self, key)

    async def load(self, key: str) -> str | None:
        """Read shared state kept beside the lease."""
        value = await self._client.get(key)
        return None if value is None else str(value)

    async def save(self, key: str, token: int, text: str) -> None:
        """Write shared state only while `token` is the current one and the lease is ours."""
        if not self.leading(token):
            raise LeaseLost(f"lease {token} lapsed by the local clock")
        keys = [self.config.key, self.fence_key, key]
        written = await self._fenced_set(keys=keys, args=[f"{self.identity}#{token}", token, text])
        if not written:
            raise LeaseLost(f"lease {token} is no longer the current one")

    async def release(self) -> None:
        """Delete the lease if it is still ours, so another sidecar takes over at once."""
        try:
            if self.leading():
                await self._release(keys=[self.config.key], args=[self.value])
        except (rexc.RedisError, OSError) as exc:
            log.info("leader election: could not release the lease: %s", type(exc).__name__)
        finally:
            self._standing = replace(self._standing, role=Role.FOLLOWER, deadline=0.0)
            await self._client.aclose()


@dataclass(frozen=True)
class Checkpoint:
    """One key of shared state beside the lease: read by anyone, written under a token."""

    lease: RedisLease
    key: str

    async def load(self) -> str | None:
        """The last state a leader saved (None if none ever did)."""
        return await self.lease.load(self.key)

    async def save(self, token: int, text: str) -> None:
        """Save under `token`; LeaseLost if another sidecar leads now."""
        await self.lease.save(self.key, token, text)


def build_leadership(config: LeaderConfig, fallback_url: SecretStr | None) -> Leadership:
    """A Redis lease when enabled, else the sole leader."""
    if not config.enabled:
        return SoleLeader()
    url = config.url or fallback_url
    if url is None:
        raise ValueError("leader election needs leader.url or a redis section")
    return RedisLease(config, url)
