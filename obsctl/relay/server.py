"""HTTP side of the relay: ``POST /dingtalk/<target>``, ``/health``, ``/metrics`` and
``GET /api/v1/deliveries`` (what DingTalk accepted recently; same bearer token as the webhook).

Answers: 200 delivered, 202 queued for a merged message (see ``outbox``), 503 when the robot
is failing so Alertmanager retries; a 4xx only for a request no retry can fix (401 bad token,
404 unknown target, 413 body too large, 400 not JSON, 422 not a version-4 payload). Every
answer is JSON, and none of them echoes a token, robot URL or secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from obsctl.relay import alertmanager
from obsctl.relay.compose import Entry
from obsctl.relay.config import RelayConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Outbox, Outcome

log = logging.getLogger(__name__)

_STATUS = {Outcome.DELIVERED: 200, Outcome.QUEUED: 202, Outcome.REJECTED: 503}
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RelayState:
    """What the handlers need."""

    config: RelayConfig
    outboxes: Mapping[str, Outbox]
    metrics: RelayMetrics
    deliveries: DeliveryLog

    @property
    def ack_wait(self) -> float:
        """How long a webhook waits for delivery before it is settled."""
        return self.config.webhook.deliver_timeout - self.config.delivery.send_timeout


STATE = web.AppKey("state", RelayState)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _authorized(request: web.Request, state: RelayState) -> bool:
    token = state.config.webhook.token
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def webhook(request: web.Request) -> web.Response:
    """Receive one Alertmanager notification for a robot and answer once it is settled."""
    state = request.app[STATE]
    metrics = state.metrics
    if not _authorized(request, state):
        metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    name = request.match_info["target"]
    outbox = state.outboxes.get(name)
    if outbox is None:
        metrics.rejected.labels("unknown_target").inc()
        known = ", ".join(sorted(state.outboxes))
        return _error(404, f"unknown target {name[:64]!r}; configured targets: {known}")
    limit = state.config.webhook.max_body_bytes
    body = await _read_limited(request, limit)
    if body is None:
        metrics.rejected.labels("too_large").inc()
        return _error(413, f"body larger than the {limit}-byte limit (webhook.max_body_bytes)")
    try:
        notification = alertmanager.parse(body)
    except alertmanager.PayloadError as exc:
        metrics.rejected.labels("bad_json" if exc.status == 400 else "bad_payload").inc()
        return _error(exc.status, str(exc))
    if notification.truncatedAlerts:
        log.warning("%s: Alertmanager truncated %d alerts", name, notification.truncatedAlerts)
    if not notification.alerts:
        return web.json_response({"status": "delivered", "alerts": 0})
    entries = [Entry(alert=a, external_url=notification.externalURL) for a in notification.alerts]
    ticket = outbox.submit(entries)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ticket.done), state.ack_wait)
    except asyncio.CancelledError:
        # Nobody will hear the answer (shutdown): Alertmanager retries, so do not send it too.
        outbox.abandon(ticket)
        raise
    settlement = await outbox.settle(ticket)
    status = _STATUS[settlement.outcome]
    body_out = {"status": settlement.outcome.value, "alerts": len(entries)}
    if settlement.outcome is Outcome.REJECTED:
        log.warning("%s: answering 503: %s", name, settlement.detail)
        return web.json_response({"error": settlement.detail, **body_out}, status=status)
    return web.json_response({**body_out, "detail": settlement.detail}, status=status)


async def deliveries(request: web.Request) -> web.Response:
    """Messages DingTalk accepted since ``?since=<unix time>`` (default: all kept), oldest first."""
    state = request.app[STATE]
    if not _authorized(request, state):
        return _error(401, "missing or wrong bearer token in the Authorization header")
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        return _error(400, "since must be a unix time in seconds, e.g. since=1764270000.5")
    target = request.query.get("target")
    if target is not None and target not in state.outboxes:
        return _error(404, f"unknown target {target[:64]!r}")
    found = state.deliveries.since(since, target)
    return web.json_response({"deliveries": [d.as_json() for d in found]})


async def health(request: web.Request) -> web.Response:
    """200 while the relay serves, with each target's queue depth and state."""
    state = request.app[STATE]
    targets = {
        name: {
            "state": outbox.health().value,
            "queue_depth": outbox.depth(),
            "last_failure": outbox.last_failure,
        }
        for name, outbox in state.outboxes.items()
    }
    return web.json_response({"status": "ok", "targets": targets})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the relay's own metrics."""
    payload = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.Response:
    """A tiny landing page listing the endpoints."""
    targets = "\n".join(f"POST /dingtalk/{name}" for name in request.app[STATE].outboxes)
    endpoints = "GET /health\nGET /metrics\nGET /api/v1/deliveries?since=<unix time>\n"
    return web.Response(text=f"obsctl relay\n{targets}\n{endpoints}")


async def not_found(request: web.Request) -> web.Response:
    """JSON 404 for any other path."""
    return _error(404, f"no such endpoint {request.path[:100]!r}; try POST /dingtalk/<target>")


def build_app(state: RelayState) -> web.Application:
    """The aiohttp application around the relay's state."""
    app = web.Application(client_max_size=state.config.webhook.max_body_bytes)
    app[STATE] = state
    app.router.add_get("/", index)
    app.router.add_post("/dingtalk/{target}", webhook)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/deliveries", deliveries)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
