"""Run the relay: one outbox worker per target, the HTTP server, a clean stop on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import httpx
from aiohttp import web

from obsctl.relay.compose import Composer
from obsctl.relay.config import RelayConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.dingtalk import RobotClient
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Outbox
from obsctl.relay.pacing import SendBudget
from obsctl.relay.render import Renderer
from obsctl.relay.server import RelayState, build_app
from obsctl.relay.spool import Spool

log = logging.getLogger(__name__)


def build_state(config: RelayConfig, http: httpx.AsyncClient) -> RelayState:
    """Outboxes, clients and metrics for every target of `config`."""
    renderer = Renderer(config.render)
    metrics = RelayMetrics(config.targets)
    delivery = config.delivery
    deliveries = DeliveryLog(delivery.log_size)
    outboxes = {}
    for name, target in config.targets.items():
        composer = Composer(
            renderer,
            target,
            config.language_of(name),
            config.render.mention_label,
            delivery.max_message_bytes,
        )
        spool = Spool(delivery.spool_dir / f"{name}.jsonl") if delivery.spool_dir else None
        outbox = Outbox(
            name,
            composer,
            RobotClient(target, http, delivery.send_timeout),
            SendBudget(delivery.rate_limit_per_minute),
            metrics,
            delivery.retry,
            delivery.rate_limited_backoff,
            spool,
            deliveries=deliveries,
        )
        metrics.watch_depth(name, outbox.depth)
        outboxes[name] = outbox
    return RelayState(config, outboxes, metrics, deliveries)


@contextlib.asynccontextmanager
async def running(config: RelayConfig) -> AsyncIterator[RelayState]:
    """The relay serving on its listen address until the block exits."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        state = build_state(config, http)
        for name, outbox in state.outboxes.items():
            restored = outbox.restore()
            if restored:
                log.info("%s: %d queued alerts restored from the spool", name, restored)
        workers = [
            asyncio.create_task(o.run(), name=f"relay-{n}") for n, o in state.outboxes.items()
        ]
        runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        host, port = config.host_port
        try:
            await web.TCPSite(runner, host, port).start()
            log.info(
                "relay listening on http://%s:%d for targets %s",
                host, port, ", ".join(state.outboxes),
            )  # fmt: skip
            yield state
        finally:
            await runner.cleanup()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for name, outbox in state.outboxes.items():
                lost = outbox.undelivered_committed()
                if lost and config.delivery.spool_dir is None:
                    log.error(
                        "%s: %d accepted alerts were not delivered (no spool_dir)", name, lost
                    )
                elif lost:
                    log.info(
                        "%s: %d accepted alerts left in the spool for the next start", name, lost
                    )


async def serve(config: RelayConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with running(config):
        await stop.wait()
    log.info("relay stopped")
