"""Run the dead man's switch: the server, a once-a-second check, one sender per channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import AsyncIterator
from typing import Protocol

import httpx

from obsctl.deadman.config import DeadmanConfig
from obsctl.deadman.deliveries import DeliveryLog
from obsctl.deadman.metrics import DeadmanMetrics
from obsctl.deadman.notify import DingTalkChannel, EmailChannel, Sent, Texts
from obsctl.deadman.server import DeadmanState, build_app
from obsctl.deadman.watch import Notice, Watcher
from obsctl.httpserve import serve_app
from obsctl.statedir import claim

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0


class Channel(Protocol):
    """A way to reach on-call."""

    name: str

    async def send(self, notice: Notice, texts: Texts, now: float) -> Sent:
        """What went out, or why nothing did."""


async def _deliver(channel: Channel, state: DeadmanState, texts: Texts) -> None:
    """Send every notice owed to `channel`, retrying with capped backoff, forever."""
    watcher, metrics = state.watcher, state.metrics
    retry_max = state.config.notify.retry_max
    failures = 0
    while True:
        owed = watcher.owed(channel.name)
        if not owed:
            failures = 0
            await asyncio.sleep(TICK_SECONDS / 4)
            continue
        notice = owed[0]
        sent = await channel.send(notice, texts, time.time())
        problem = sent.problem
        if problem is None:
            failures = 0
            watcher.delivered(notice, channel.name)
            state.deliveries.record(channel.name, notice, sent)
            metrics.sent.labels(channel.name, notice.kind.value).inc()
            log.info("%s: %s notice for %s sent", channel.name, notice.kind, notice.heartbeat)
            continue
        failures += 1
        metrics.failed.labels(channel.name).inc()
        wait = min(retry_max, 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        log.warning("%s: cannot send (%s); retrying in %.1fs", channel.name, problem, wait)
        await asyncio.sleep(wait)


async def _check(watcher: Watcher) -> None:
    while True:
        watcher.tick(time.time())
        await asyncio.sleep(TICK_SECONDS)


@contextlib.asynccontextmanager
async def running(config: DeadmanConfig) -> AsyncIterator[DeadmanState]:
    """The switch serving and watching until the block exits; StateDirError if not alone."""
    lock = claim(config.state_dir, "deadman")
    try:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            channels: list[Channel] = []
            if config.notify.dingtalk is not None:
                channels.append(
                    DingTalkChannel(config.notify.dingtalk, http, config.notify.send_timeout)
                )
            if config.notify.email is not None:
                channels.append(EmailChannel(config.notify.email, config.notify.send_timeout))
            names = [c.name for c in channels]
            watcher = Watcher(config.heartbeats, names, config.state_dir, time.time())
            metrics = DeadmanMetrics([h.name for h in config.heartbeats], names)
            metrics.watch(watcher)
            state = DeadmanState(config, watcher, metrics, DeliveryLog(config.notify.log_size))
            texts = Texts(config)
            tasks = [asyncio.create_task(_check(watcher), name="deadman-check")]
            tasks += [
                asyncio.create_task(_deliver(c, state, texts), name=f"deadman-{c.name}")
                for c in channels
            ]
            host, port = config.host_port
            server = None
            try:
                server = await serve_app(build_app(state), host, port, config.server, metrics.http)
                log.info("deadman listening on http://%s:%d, watching %s", host, port,
                         ", ".join(h.name for h in config.heartbeats))  # fmt: skip
                yield state
            finally:
                if server is not None:
                    await server.cleanup()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        lock.close()


async def serve(config: DeadmanConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with running(config):
        await stop.wait()
    log.info("deadman stopped")
