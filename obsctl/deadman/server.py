"""HTTP side of the dead man's switch: ``POST /heartbeat/<name>``, ``/health``, ``/metrics``.

Alertmanager posts its Watchdog notification to ``/heartbeat/<name>`` (the heartbeat
receiver's second webhook). A body counts as a heartbeat when it is an Alertmanager
notification with at least one firing alert: a *resolved* Watchdog means Prometheus stopped
sending it, which is exactly what must not look like a heartbeat.

For drills, with the same bearer token: ``GET /api/v1/deliveries?since=<unix time>`` (the
notices DingTalk and SMTP accepted), ``PUT /api/v1/drill`` (``{"id": ..., "ttl_seconds": ...}``:
the outage a drill is about to cause is announced as a drill) and ``DELETE /api/v1/drill/<id>``.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from obsctl.deadman.config import DeadmanConfig
from obsctl.deadman.deliveries import DeliveryLog
from obsctl.deadman.metrics import DeadmanMetrics
from obsctl.deadman.watch import Phase, Watcher
from obsctl.httpserve import BodyTooLarge, read_body


@dataclass(frozen=True)
class DeadmanState:
    """What the handlers need."""

    config: DeadmanConfig
    watcher: Watcher
    metrics: DeadmanMetrics
    deliveries: DeliveryLog


STATE = web.AppKey("state", DeadmanState)
# A drill id as `obsctl drill` makes them (alert-path-down-20261201T101500-1a2b).
_DRILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# A drill mark never outlives this, whatever the drill asked: a forgotten mark must not keep
# marking a later, real outage as a drill.
MAX_DRILL_TTL_SECONDS = 3_600.0


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
    timeouts = {h.name: h.timeout for h in state.config.heartbeats}
    heartbeats = {}
    for name, beat in state.watcher.state.heartbeats.items():
        heartbeats[name] = {
            "phase": beat.phase.value,
            "seconds_since_last": None
            if beat.last_seen is None
            else round(now - beat.last_seen, 1),
            "last_seen": beat.last_seen,
            "missing_since": beat.missing_since,
            # When the last notice was queued: for a missing heartbeat, when it was paged
            # (or reminded).
            "notified_at": beat.notified_at,
            "timeout_seconds": timeouts[name],
            "received": beat.received,
        }
    owed = {channel: len(state.watcher.owed(channel)) for channel in state.metrics.channels}
    missing = any(b.phase is Phase.MISSING for b in state.watcher.state.heartbeats.values())
    mark = state.watcher.state.drill
    drill = mark.model_dump() if mark is not None and state.watcher.active_drill(now) else None
    return web.json_response(
        {
            "status": "alarm" if missing else "ok",
            "heartbeats": heartbeats,
            "unsent": owed,
            "drill": drill,
        }
    )


async def deliveries(request: web.Request) -> web.Response:
    """Notices a channel accepted since ``?since=<unix time>`` (default: all kept), oldest first."""
    state = request.app[STATE]
    if not _authorized(request, state.config):
        state.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        return _error(400, "since must be a unix time in seconds, e.g. since=1764270000.5")
    channel = request.query.get("channel")
    if channel is not None and channel not in state.metrics.channels:
        known = ", ".join(state.metrics.channels)
        return _error(404, f"unknown channel {channel[:64]!r}; configured: {known}")
    found = state.deliveries.since(since, channel)
    return web.json_response({"deliveries": [d.as_json() for d in found]})


async def set_drill(request: web.Request) -> web.Response:
    """A drill is about to stop the alert path: the outage it causes is announced as a drill."""
    state = request.app[STATE]
    if not _authorized(request, state.config):
        state.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    try:
        body = await read_body(request, 4_096, state.config.server.body_timeout)
        data = json.loads(body)
    except BodyTooLarge:
        return _error(413, "a drill mark is a small JSON object")
    except TimeoutError:
        return _error(408, "the body did not arrive within server.body_timeout")
    except (ValueError, RecursionError):
        data = None
    drill_id = data.get("id") if isinstance(data, dict) else None
    ttl = data.get("ttl_seconds") if isinstance(data, dict) else None
    if not isinstance(drill_id, str) or not _DRILL_ID.match(drill_id):
        return _error(400, 'expected {"id": "<drill id>", "ttl_seconds": N}: id is missing or bad')
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not 10 <= ttl <= MAX_DRILL_TTL_SECONDS
    ):
        return _error(400, f"ttl_seconds must be from 10 to {MAX_DRILL_TTL_SECONDS:.0f} seconds")
    mark = state.watcher.mark_drill(drill_id, time.time(), float(ttl))
    return web.json_response({"drill": mark.model_dump()})


async def clear_drill(request: web.Request) -> web.Response:
    """The drill is over (or was undone after a crash): remove its mark; idempotent."""
    state = request.app[STATE]
    if not _authorized(request, state.config):
        state.metrics.rejected.labels("unauthorized").inc()
        return _error(401, "missing or wrong bearer token in the Authorization header")
    cleared = state.watcher.clear_drill(request.match_info["id"])
    return web.json_response({"cleared": cleared})


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
    app.router.add_get("/api/v1/deliveries", deliveries)
    app.router.add_put("/api/v1/drill", set_drill)
    app.router.add_delete("/api/v1/drill/{id}", clear_drill)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
