"""HTTP side of the dead man's switch: ``POST /heartbeat/<name>``, ``/health``, ``/metrics``.

Alertmanager posts its Watchdog notification to ``/heartbeat/<name>`` (the heartbeat
receiver's second webhook). A body counts as a heartbeat when it is an Alertmanager
notification with at least one firing alert: a *resolved* Watchdog means Prometheus stopped
sending it, which is exactly what must not look like a heartbeat.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from obsctl.deadman.config import DeadmanConfig
from obsctl.deadman.metrics import DeadmanMetrics
from obsctl.deadman.watch import Phase, Watcher
from obsctl.httpserve import BodyTooLarge, read_body


@dataclass(frozen=True)
class DeadmanState:
    """What the handlers need."""

    config: DeadmanConfig
    watcher: Watcher
    metrics: DeadmanMetrics


STATE = web.AppKey("state", DeadmanState)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _authorized(request: web.Request, config: DeadmanConfig) -> bool:
    token = config.webhook.token
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def _firing(body: bytes) -> bool | None:
    """True for a notification with a firing alert, False for one without, None if not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        return None
    return any(isinstance(a, dict) and a.get("status") == "firing" for a in data["alerts"])


async def heartbeat(request: web.Request) -> web.Response:
    """One Watchdog notification for a heartbeat."""
    state = request.app[STATE]
    if not _authorized(request, state.config):
        state.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    name = request.match_info["name"]
    if not state.watcher.known(name):
        state.metrics.rejected.labels("unknown_heartbeat").inc()
        known = ", ".join(sorted(state.watcher.state.heartbeats))
        return _error(404, f"unknown heartbeat {name[:64]!r}; configured: {known}")
    try:
        body = await read_body(
            request, state.config.webhook.max_body_bytes, state.config.server.body_timeout
        )
    except BodyTooLarge:
        state.metrics.rejected.labels("too_large").inc()
        return _error(413, "body larger than webhook.max_body_bytes")
    except TimeoutError:
        state.metrics.rejected.labels("read_timeout").inc()
        return _error(408, "the body did not arrive within server.body_timeout")
    firing = _firing(body)
    if firing is None:
        state.metrics.rejected.labels("bad_payload").inc()
        return _error(400, "expected an Alertmanager webhook notification (JSON with alerts)")
    if not firing:
        state.metrics.ignored.labels(name).inc()
        return web.json_response({"status": "ignored", "why": "no firing alert in it"})
    state.watcher.beat(name, time.time())
    state.metrics.received.labels(name).inc()
    return web.json_response({"status": "ok"})


async def health(request: web.Request) -> web.Response:
    """Each heartbeat's phase and age; 200 while this process serves (a missing one is paged)."""
    state = request.app[STATE]
    now = time.time()
    heartbeats = {}
    for name, beat in state.watcher.state.heartbeats.items():
        heartbeats[name] = {
            "phase": beat.phase.value,
            "seconds_since_last": None
            if beat.last_seen is None
            else round(now - beat.last_seen, 1),
            "received": beat.received,
        }
    owed = {channel: len(state.watcher.owed(channel)) for channel in state.metrics.channels}
    missing = any(b.phase is Phase.MISSING for b in state.watcher.state.heartbeats.values())
    return web.json_response(
        {"status": "alarm" if missing else "ok", "heartbeats": heartbeats, "unsent": owed}
    )


async def ready(request: web.Request) -> web.Response:
    """200 while this process serves."""
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the switch's own metrics."""
    registry: CollectorRegistry = request.app[STATE].metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def not_found(request: web.Request) -> web.Response:
    """JSON 404 for any other path."""
    return _error(404, f"no such endpoint {request.path[:100]!r}; try POST /heartbeat/<name>")


def build_app(state: DeadmanState) -> web.Application:
    """The aiohttp application around the switch's state."""
    app = web.Application(client_max_size=state.config.webhook.max_body_bytes)
    app[STATE] = state
    app.router.add_post("/heartbeat/{name}", heartbeat)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
