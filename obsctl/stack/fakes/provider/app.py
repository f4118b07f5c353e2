"""HTTP routes of the AI provider fake: the ``/v1`` task API and ``/_control``."""

import asyncio
import json
import logging
import math
import random
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obsctl.stack.fakes.provider.auth import API_KEY, require_key
from obsctl.stack.fakes.provider.control import Control, ControlError
from obsctl.stack.fakes.provider.results import RESULT_PNG
from obsctl.stack.fakes.provider.tasks import TRANSIENT_FAILURE, TaskTable
from obsctl.stack.fakes.validation import first_error

# How long a request hangs in "timeout" mode: far past any sane client timeout.
HANG_SECONDS = 60.0

CONTROL = web.AppKey("control", Control)
TASKS = web.AppKey("tasks", TaskTable)
JITTER_RNG = web.AppKey("jitter_rng", random.Random)

log = logging.getLogger("provider")


class _TaskRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    feature: str = Field(min_length=1)
    input_url: str = Field(min_length=1)
    client_task_id: str = Field(min_length=1)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body: invalid JSON"}), content_type="application/json"
        ) from None


@web.middleware
async def apply_mode(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Degrade every ``/v1`` answer according to the current mode."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    control = request.app[CONTROL]
    if control.mode == "error":
        return _error(500, "internal")
    if control.mode == "down":
        return _error(503, "unavailable")
    if control.mode == "submit_error" and request.method == "POST" and request.path == "/v1/tasks":
        return _error(500, "internal")
    if control.mode == "timeout":
        await asyncio.sleep(HANG_SECONDS)
    elif control.mode == "slow":
        await asyncio.sleep(control.latency_ms / 1000)
    elif control.jitter_median_ms > 0:
        await asyncio.sleep(jitter_seconds(control, request.app[JITTER_RNG]))
    return await handler(request)


def jitter_seconds(control: Control, rng: random.Random) -> float:
    """Sample one answer's extra latency: lognormal around the control's median."""
    return rng.lognormvariate(math.log(control.jitter_median_ms), control.jitter_sigma) / 1000


async def heartbeat(request: web.Request) -> web.Response:
    """Answer the light health check the exporter probes."""
    return web.json_response({"status": "ok", "provider": request.app[CONTROL].provider})


async def create_task(request: web.Request) -> web.Response:
    """Accept a task; it finishes later after a sampled duration."""
    try:
        body = _TaskRequest.model_validate(await _read_json(request))
    except ValidationError as exc:
        return _error(400, first_error(exc))
    control = request.app[CONTROL]
    task = request.app[TASKS].create(
        body.feature,
        body.input_url,
        body.client_task_id,
        median_ms=control.task_latency_ms,
        failure_rate=control.failure_rate,
        # task_failure: accepted as usual, every task then fails on the vendor's side with an
        # error a retry might cure: the submit succeeds, so the platform's breaker stays closed.
        error=TRANSIENT_FAILURE if control.mode == "task_failure" else None,
    )
    return web.json_response({"task_id": task.task_id, "status": "processing"}, status=202)


async def get_task(request: web.Request) -> web.Response:
    """Report a task's status, with its result URL or error once finished."""
    tasks = request.app[TASKS]
    task = tasks.get(request.match_info["task_id"])
    if task is None:
        return _error(404, "not_found")
    status = task.status(tasks.now())
    answer: dict[str, str] = {"task_id": task.task_id, "status": status}
    if status == "succeeded":
        answer["result_url"] = f"{request.url.origin()}/v1/results/{task.task_id}.png"
    elif status == "failed" and task.error:
        answer["error"] = task.error
    return web.json_response(answer)


async def get_result(request: web.Request) -> web.Response:
    """Serve the image of a succeeded task."""
    tasks = request.app[TASKS]
    task = tasks.get(request.match_info["task_id"])
    if task is None or task.status(tasks.now()) != "succeeded":
        return _error(404, "not_found")
    return web.Response(body=RESULT_PNG, content_type="image/png")


async def get_control(request: web.Request) -> web.Response:
    """Return the current switches."""
    return web.json_response(request.app[CONTROL].snapshot())


async def put_control(request: web.Request) -> web.Response:
    """Change some switches; refuse the whole update if any field is invalid."""
    control = request.app[CONTROL]
    try:
        changes = control.apply(await _read_json(request))
    except ControlError as exc:
        return _error(400, str(exc))
    if changes:
        described = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items())
        log.info("%s control changed: %s", control.provider, described)
    return web.json_response(control.snapshot())


def build_app(
    control: Control, tasks: TaskTable, api_key: str, jitter_rng: random.Random | None = None
) -> web.Application:
    """Wire the provider fake's routes around its state; every task API call needs `api_key`."""
    # The key is checked first: a gateway refuses a call without one before any backend fault.
    app = web.Application(middlewares=[require_key, apply_mode])
    app[CONTROL] = control
    app[TASKS] = tasks
    app[JITTER_RNG] = jitter_rng or random.Random()
    app[API_KEY] = api_key
    app.router.add_get("/v1/heartbeat", heartbeat)
    app.router.add_post("/v1/tasks", create_task)
    app.router.add_get("/v1/tasks/{task_id}", get_task)
    app.router.add_get("/v1/results/{task_id}.png", get_result)
    app.router.add_get("/_control", get_control)
    app.router.add_put("/_control", put_control)
    return app
