"""HTTP endpoints of the exporter: /metrics and /health/*, served from memory only."""

from __future__ import annotations

import json
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from obsctl.exporter import health
from obsctl.exporter.config import HealthConfig
from obsctl.exporter.leader import Leadership, SoleLeader
from obsctl.exporter.results import ResultStore

STORE = web.AppKey("store", ResultStore)
REGISTRY = web.AppKey("registry", CollectorRegistry)
STARTED_AT = web.AppKey("started_at", float)
HEALTH = web.AppKey("health", HealthConfig)
LEADERSHIP = web.AppKey("leadership", Leadership)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of everything the collectors hold."""
    payload = generate_latest(request.app[REGISTRY])
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_all(request: web.Request) -> web.Response:
    """/health: the process and every dependency."""
    return _health_response(request, None)


async def health_group(request: web.Request) -> web.Response:
    """/health/db, /health/redis, /health/cos, /health/providers."""
    group = request.match_info["group"]
    if group not in health.GROUPS:
        known = ", ".join(f"/health/{g}" for g in health.GROUPS)
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown health group; try {known}"}),
                               content_type="application/json")  # fmt: skip
    return _health_response(request, group)


def _health_response(request: web.Request, group: str | None) -> web.Response:
    app = request.app
    stale_after = app[HEALTH].stale_after_intervals
    payload = health.body(
        app[STORE].snapshot(), group, app[STARTED_AT], stale_after, app[LEADERSHIP]
    )
    return web.json_response(payload, status=200 if payload["status"] == "ok" else 503)


async def index(_: web.Request) -> web.Response:
    """A tiny landing page listing the endpoints."""
    links = ["/metrics", "/health", *(f"/health/{g}" for g in health.GROUPS)]
    text = "obsctl exporter\n" + "\n".join(links) + "\n"
    return web.Response(text=text)


def build_app(
    store: ResultStore,
    registry: CollectorRegistry,
    health_config: HealthConfig | None = None,
    leadership: Leadership | None = None,
) -> web.Application:
    """The aiohttp application."""
    app = web.Application()
    app[LEADERSHIP] = leadership or SoleLeader()
    app[HEALTH] = health_config or HealthConfig()
    app[STORE] = store
    app[REGISTRY] = registry
    app[STARTED_AT] = time.time()
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health_all)
    app.router.add_get("/health/{group}", health_group)
    return app
