"""HTTP side of the relay: ``POST /dingtalk/<target>``, ``/health``, ``/ready``, ``/metrics``
and ``GET /api/v1/deliveries`` (what DingTalk accepted recently; same token as the webhook);
with claims on, the claim page ``/claim/<link>`` (``claim_page``); with a mail section,
``POST /email/<recipient>`` (``mailer``: answered 200 once mailed, 503 when not).

Answers to a webhook: 202 once its alerts are queued on disk (see ``outbox``), 200 for one
with no alerts, 503 when the queue is full or the spool cannot be written (Alertmanager keeps
the notification and retries); a 4xx only for a request no retry can fix (401 bad token, 404
unknown target, 413 body too large, 408 body too slow, 400 not JSON, 422 not a version-4
payload). Every answer but the claim page's is JSON, and none of them echoes a token, robot
URL or secret.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from obsctl.httpserve import BodyTooLarge, read_body
from obsctl.relay import alertmanager
from obsctl.relay.claim_page import ClaimService, add_routes
from obsctl.relay.compose import Entry
from obsctl.relay.config import RelayConfig
from obsctl.relay.deliveries import DeliveryLog
from obsctl.relay.escalation import Escalator
from obsctl.relay.mailer import AlertMailer, MailFailed
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Admission, Health, Outbox, QueueFull
from obsctl.relay.spool import Spool

log = logging.getLogger(__name__)

_DEGRADED = (Health.FAILING, Health.THROTTLED)


@dataclass(frozen=True)
class RelayState:
    """What the handlers need."""

    config: RelayConfig
    outboxes: Mapping[str, Outbox]
    metrics: RelayMetrics
    deliveries: DeliveryLog
    spool: Spool
    claims: ClaimService | None = None
    escalator: Escalator | None = None
    mailer: AlertMailer | None = None


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


async def webhook(request: web.Request) -> web.Response:
    """Receive one Alertmanager notification for a robot; answer once it is queued on disk."""
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
    notification = await _notification(request, state)
    if isinstance(notification, web.Response):
        return notification
    if not notification.alerts:
        return web.json_response({"status": "delivered", "alerts": 0})
    entries = [
        Entry(
            alert=alert,
            external_url=notification.externalURL,
            group_key=notification.groupKey[:256],
            truncated_alerts=notification.truncatedAlerts,
        )
        for alert in notification.alerts
    ]
    if notification.truncatedAlerts:
        log.info("%s: Alertmanager left %d alerts out", name, notification.truncatedAlerts)
    try:
        admission = outbox.admit(entries)
    except QueueFull as exc:
        metrics.notifications.labels(name, "rejected").inc()
        log.warning("%s: answering 503: %s", name, exc)
        return _error(503, str(exc))
    # Shielded: once written, the alerts are queued even if Alertmanager hung up meanwhile.
    persisted = asyncio.ensure_future(state.spool.persist(name, admission.to_persist()))
    try:
        await asyncio.shield(persisted)
    except OSError as exc:
        outbox.revoke(admission)
        metrics.notifications.labels(name, "rejected").inc()
        log.error("%s: answering 503: cannot write the spool (%s)", name, exc.strerror)
        return _error(503, "cannot write the relay's spool; nothing was queued, retry later")
    except asyncio.CancelledError:
        persisted.add_done_callback(lambda f: _settle_late(outbox, admission, f))
        raise
    outbox.release(admission)
    metrics.notifications.labels(name, "queued").inc()
    return web.json_response(
        {
            "status": "queued",
            "alerts": len(entries),
            "merged": len(admission.replaced),
            "queue_depth": outbox.depth(),
        },
        status=202,
    )


async def _notification(
    request: web.Request, state: RelayState
) -> alertmanager.Notification | web.Response:
    """The webhook's notification, or the 4xx answer for a body no retry can fix."""
    metrics = state.metrics
    limit = state.config.webhook.max_body_bytes
    try:
        body = await read_body(request, limit, state.config.server.body_timeout)
    except BodyTooLarge:
        metrics.rejected.labels("too_large").inc()
        return _error(413, f"body larger than the {limit}-byte limit (webhook.max_body_bytes)")
    except TimeoutError:
        metrics.rejected.labels("read_timeout").inc()
        return _error(408, "the body did not arrive within server.body_timeout")
    try:
        return alertmanager.parse(body)
    except alertmanager.PayloadError as exc:
        metrics.rejected.labels("bad_json" if exc.status == 400 else "bad_payload").inc()
        return _error(exc.status, str(exc))


async def email(request: web.Request) -> web.Response:
    """Mail one Alertmanager notification; 200 once the SMTP server took it, else 503."""
    state = request.app[STATE]
    mailer = state.mailer
    assert mailer is not None  # the route exists only with a mailer
    if not _authorized(request, state):
        state.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    name = request.match_info["recipient"]
    if not mailer.knows(name):
        state.metrics.rejected.labels("unknown_target").inc()
        known = ", ".join(sorted(mailer.recipients))
        return _error(404, f"unknown mail recipient {name[:64]!r}; configured: {known}")
    notification = await _notification(request, state)
    if isinstance(notification, web.Response):
        return notification
    if not notification.alerts:
        return web.json_response({"status": "delivered", "alerts": 0})
    # Shielded: a mail handed to the SMTP server is not taken back when Alertmanager hangs up.
    try:
        await asyncio.shield(mailer.send(name, notification))
    except MailFailed as exc:
        return _error(503, f"the mail was not sent ({exc}); retry later")
    return web.json_response({"status": "mailed", "alerts": len(notification.alerts)})


def _settle_late(outbox: Outbox, admission: Admission, written: asyncio.Future[None]) -> None:
    if written.cancelled() or written.exception() is not None:
        outbox.revoke(admission)
    else:
        outbox.release(admission)


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
    kept = state.deliveries
    if kept.reaches_back(since):
        found = kept.since(since, target)
    else:  # older than memory holds: from the log file, off the event loop
        found = await asyncio.to_thread(kept.from_file, since, target)
    return web.json_response({"deliveries": [d.as_json() for d in found]})


async def health(request: web.Request) -> web.Response:
    """Each target's state; 503 "degraded" while a robot is failing or throttled by DingTalk."""
    state = request.app[STATE]
    targets = {}
    for name, outbox in state.outboxes.items():
        age = outbox.failure_age()
        targets[name] = {
            "state": outbox.health().value,
            "queue_depth": outbox.depth(),
            "oldest_queued_seconds": round(outbox.oldest_age(), 1),
            "last_failure": outbox.last_failure,
            "last_failure_seconds_ago": None if age is None else round(age, 1),
        }
    degraded = any(outbox.health() in _DEGRADED for outbox in state.outboxes.values())
    body = {
        "status": "degraded" if degraded else "ok",
        "spool": "disk" if state.spool.durable else "memory",
        "targets": targets,
    }
    return web.json_response(body, status=503 if degraded else 200)


async def ready(request: web.Request) -> web.Response:
    """200 while the relay accepts webhooks (for supervisors; /health says how robots fare)."""
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the relay's own metrics."""
    payload = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.Response:
    """A tiny landing page listing the endpoints."""
    targets = "\n".join(f"POST /dingtalk/{name}" for name in request.app[STATE].outboxes)
    endpoints = "GET /health\nGET /ready\nGET /metrics\nGET /api/v1/deliveries?since=<unix time>\n"
    mailer = request.app[STATE].mailer
    if mailer is not None:
        targets += "".join(f"\nPOST /email/{name}" for name in mailer.recipients)
    if request.app[STATE].claims is not None:
        endpoints += "GET|POST /claim/<signed link> (the claim page of a message's link)\n"
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
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/deliveries", deliveries)
    if state.mailer is not None:
        app.router.add_post("/email/{recipient}", email)
    if state.claims is not None:
        add_routes(app, state.claims)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
