"""Run the relay: one outbox worker per target, the HTTP server, a clean stop on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from zoneinfo import ZoneInfo

import httpx

from obsctl.httpserve import serve_app
from obsctl.relay.alertmanager import Alert
from obsctl.relay.claim_links import ClaimLinks
from obsctl.relay.claim_page import ClaimService
from obsctl.relay.claims import ClaimDesk
from obsctl.relay.compose import Composer
from obsctl.relay.config import ClaimConfig, RelayConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.dingtalk import RobotClient
from obsctl.relay.escalation import Escalator
from obsctl.relay.mailer import AlertMailer
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Outbox
from obsctl.relay.pacing import SendBudget
from obsctl.relay.render import Renderer
from obsctl.relay.server import RelayState, build_app
from obsctl.relay.spool import Spool
from obsctl.relay.tencent_sms import SmsClient

log = logging.getLogger(__name__)


def claim_links(claim: ClaimConfig | None) -> ClaimLinks | None:
    """The link signer of a claim section, None when claims are off."""
    if claim is None:
        return None
    return ClaimLinks(claim.url, claim.key.get_secret_value().encode(), claim.link_ttl)


def build_state(config: RelayConfig, http: httpx.AsyncClient) -> RelayState:
    """Outboxes, clients, metrics and the spool for every target of `config`."""
    renderer = Renderer(config.render)
    links = claim_links(config.claim)
    metrics = RelayMetrics(config.targets)
    delivery = config.delivery
    deliveries = DeliveryLog(delivery.log_size, delivery.spool_dir)
    spool = Spool(delivery.spool_dir)
    zone = ZoneInfo(config.render.timezone)
    outboxes: dict[str, Outbox] = {}
    desk = escalator = None
    if config.claim is not None:
        desk = ClaimDesk(http, config.claim.alertmanager_url, config.claim.timeout)
    if config.escalation is not None and desk is not None and links is not None:
        escalator = Escalator(
            config.escalation, desk, links, outboxes, metrics, config.language_of, zone,
            config.render.key_labels, delivery.spool_dir,
            sms=SmsClient(config.escalation.sms, http) if config.escalation.sms else None,
        )  # fmt: skip
        metrics.escalation_tracked.set_function(escalator.tracked)
        deepest = max(len(levels) for levels in config.escalation.policies.values())
        for level in range(1, deepest + 1):
            metrics.escalations.labels(str(level))
    for name, target in config.targets.items():
        composer = Composer(
            renderer,
            target,
            config.language_of(name),
            config.render.mention_label,
            delivery.max_message_bytes,
            on_render_failure=metrics.render_failures.labels(name).inc,
            claim_link=_claim_link(links, config.claim, name),
        )
        outbox = Outbox(
            name,
            composer,
            RobotClient(target, http, delivery.send_timeout),
            SendBudget(delivery.rate_limit_per_minute),
            metrics,
            delivery.retry,
            delivery.rate_limited_backoff,
            spool,
            delivery.max_queue,
            deliveries=deliveries,
            on_delivered=escalator.delivered if escalator else _ignore,
        )
        metrics.watch(name, outbox.depth, outbox.oldest_age, outbox.health)
        outboxes[name] = outbox
    metrics.spool_open.set_function(spool.open_entries)
    claims = None
    if config.claim is not None and links is not None and desk is not None:
        claims = ClaimService(
            config.claim, links, desk, outboxes, config.language_of, zone,
            config.render.key_labels, config.render.language,
        )  # fmt: skip
    mailer = AlertMailer.from_config(config, links, metrics)
    return RelayState(config, outboxes, metrics, deliveries, spool, claims, escalator, mailer)


def _ignore(target: str, alert: Alert) -> None:
    """An outbox's delivery hook when nothing escalates."""


def _claim_link(
    links: ClaimLinks | None, claim: ClaimConfig | None, target: str
) -> Callable[[Alert], str | None]:
    """How the composer of `target` gets an alert's claim link (None: not claimable)."""
    if links is None or claim is None:
        return lambda alert: None
    severities = set(claim.severities)
    return lambda alert: links.link(target, alert) if alert.severity in severities else None


def restore(state: RelayState) -> None:
    """Open the spool and give every outbox what a previous run left; SpoolError if unusable."""
    restored = state.spool.open()
    for name, outbox in state.outboxes.items():
        queued = restored.queued.pop(name, [])
        outbox.restore(queued, restored.sent.get(name, []), restored.blocked_until.get(name, 0.0))
        if queued:
            log.info("%s: %d queued alerts restored from the spool", name, len(queued))
    for name, orphans in restored.queued.items():
        # A target removed from the config: its alerts cannot be sent anywhere now.
        log.error(
            "spool holds %d alerts for target %r, which is no longer configured; "
            "they stay in the spool until it is configured again", len(orphans), name,
        )  # fmt: skip
    if state.escalator is not None:
        state.escalator.restore()
    if not state.spool.durable:
        log.warning(
            "delivery.spool_dir is null: accepted alerts are kept in memory only and a "
            "restart loses them"
        )


@contextlib.asynccontextmanager
async def running(config: RelayConfig) -> AsyncIterator[RelayState]:
    """The relay serving on its listen address until the block exits."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        state = build_state(config, http)
        restore(state)
        state.spool.start()
        workers = [
            asyncio.create_task(o.run(), name=f"relay-{n}") for n, o in state.outboxes.items()
        ]
        if state.escalator is not None:
            workers.append(asyncio.create_task(state.escalator.run(), name="relay-escalation"))
        host, port = config.host_port
        server = None
        try:
            server = await serve_app(
                build_app(state), host, port, config.server, state.metrics.http
            )
            log.info(
                "relay listening on http://%s:%d for targets %s",
                host, port, ", ".join(state.outboxes),
            )  # fmt: skip
            yield state
        finally:
            if server is not None:
                await server.cleanup()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await state.spool.close()
            state.deliveries.close()
            for name, outbox in state.outboxes.items():
                left = outbox.depth()
                if left and not state.spool.durable:
                    log.error("%s: %d accepted alerts lost (no spool_dir)", name, left)
                elif left:
                    log.info("%s: %d accepted alerts left in the spool", name, left)


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
