"""HTTP routes of the DingTalk robot fake: ``/robot/send``, ``/_control`` and ``/_messages``."""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from obsctl.stack.fakes.dingtalk import errcodes
from obsctl.stack.fakes.dingtalk.errcodes import RobotAnswer
from obsctl.stack.fakes.dingtalk.faults import FaultError, FaultMode, FaultSwitch
from obsctl.stack.fakes.dingtalk.messages import mentions, validate, visible_text
from obsctl.stack.fakes.dingtalk.ratelimit import RollingLimiter
from obsctl.stack.fakes.dingtalk.robots import DEFAULT_RATE_LIMIT_PER_MINUTE, Robot
from obsctl.stack.fakes.dingtalk.store import MessageStore
from obsctl.stack.fakes.dingtalk_verify import SignCheck, verify

# How long a request hangs under the "timeout" fault: far past any sane client timeout.
HANG_SECONDS = 60.0
# How much of an unparsable body is kept in the record.
RAW_BODY_KEEP_CHARS = 2_000

log = logging.getLogger("dingtalk")
_dumps = partial(json.dumps, ensure_ascii=False)
_UNPARSED = object()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RobotService:
    """Everything the robot fake knows and remembers."""

    robots: Mapping[str, Robot]
    store: MessageStore
    faults: FaultSwitch = field(default_factory=FaultSwitch)
    limiter: RollingLimiter = field(default_factory=RollingLimiter)
    clock_ms: Callable[[], int] = _now_ms


SERVICE = web.AppKey("service", RobotService)


@dataclass
class _Verdict:
    answer: RobotAnswer
    body: Any = _UNPARSED


def _judge(request: web.Request, service: RobotService, raw: bytes) -> _Verdict:
    """Decide the answer the way DingTalk does: method, token, signature, body, keywords, rate."""
    if request.method != "POST":
        return _Verdict(errcodes.POST_REQUIRED)
    token = request.query.get("access_token")
    if not token:
        return _Verdict(errcodes.MISSING_ACCESS_TOKEN)
    robot = service.robots.get(token)
    if robot is None:
        return _Verdict(errcodes.TOKEN_NOT_EXIST)
    if robot.secret is not None:
        check = verify(
            robot.secret,
            request.query.get("timestamp"),
            request.query.get("sign"),
            service.clock_ms(),
        )
        if check is SignCheck.BAD_TIMESTAMP:
            return _Verdict(errcodes.INVALID_TIMESTAMP)
        if check is not SignCheck.OK:
            return _Verdict(errcodes.SIGN_NOT_MATCH)
    if request.content_type != "application/json":
        return _Verdict(errcodes.BAD_CONTENT_TYPE)
    if len(raw) > errcodes.MAX_BODY_BYTES:
        return _Verdict(errcodes.MESSAGE_TOO_LONG)
    try:
        body = json.loads(raw)
    except ValueError:
        return _Verdict(errcodes.INVALID_JSON)
    problem = validate(body)
    if problem is not None:
        return _Verdict(problem, body)
    if robot.keywords and not any(word in visible_text(body) for word in robot.keywords):
        return _Verdict(errcodes.KEYWORDS_NOT_IN_CONTENT, body)
    if not service.limiter.try_acquire(token, robot.rate_limit_per_minute, robot.throttle_seconds):
        return _Verdict(errcodes.send_too_fast(robot.rate_limit_per_minute), body)
    return _Verdict(errcodes.OK, body)


def _record(
    service: RobotService,
    request: web.Request,
    raw: bytes,
    verdict: _Verdict,
    fault: FaultMode | None = None,
) -> None:
    body = verdict.body
    if body is _UNPARSED:
        body = raw.decode("utf-8", errors="replace")[:RAW_BODY_KEEP_CHARS]
    service.store.append(
        {
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "token": request.query.get("access_token"),
            "accepted": verdict.answer.ok,
            "errcode": verdict.answer.errcode,
            "errmsg": verdict.answer.errmsg,
            "fault": fault,
            "body": body,
            "at": mentions(body),
        }
    )


def _reply(answer: RobotAnswer, status: int = 200) -> web.Response:
    return web.json_response(
        {"errcode": answer.errcode, "errmsg": answer.errmsg}, status=status, dumps=_dumps
    )


async def _inject(
    request: web.Request, service: RobotService, raw: bytes, fault: FaultMode
) -> web.Response:
    if fault == "rate_limited":
        robot = service.robots.get(request.query.get("access_token", ""))
        limit = robot.rate_limit_per_minute if robot else DEFAULT_RATE_LIMIT_PER_MINUTE
        answer = errcodes.send_too_fast(limit)
        _record(service, request, raw, _Verdict(answer), fault)
        return _reply(answer)
    _record(service, request, raw, _Verdict(errcodes.SYSTEM_BUSY), fault)
    if fault == "timeout":
        await asyncio.sleep(HANG_SECONDS)
        return _reply(errcodes.SYSTEM_BUSY, status=504)
    return _reply(errcodes.SYSTEM_BUSY, status=500)


async def robot_send(request: web.Request) -> web.Response:
    """The webhook: judge, record and answer one message."""
    service = request.app[SERVICE]
    raw = await request.read()
    fault = service.faults.take()
    if fault != "ok":
        return await _inject(request, service, raw, fault)
    verdict = _judge(request, service, raw)
    _record(service, request, raw, verdict)
    return _reply(verdict.answer)


async def get_control(request: web.Request) -> web.Response:
    """Return the fault switch."""
    return web.json_response(request.app[SERVICE].faults.snapshot())


async def put_control(request: web.Request) -> web.Response:
    """Set the fault switch from ``{"mode": ..., "count": N | null}``."""
    faults = request.app[SERVICE].faults
    try:
        faults.apply(json.loads(await request.read()))
    except ValueError as exc:
        message = str(exc) if isinstance(exc, FaultError) else "body: invalid JSON"
        return web.json_response({"error": message}, status=400)
    log.info("fault switch set: mode=%s count=%s", faults.mode, faults.remaining)
    return web.json_response(faults.snapshot())


async def list_messages(request: web.Request) -> web.Response:
    """Return the recorded requests, optionally filtered by ``token`` and ``accepted``."""
    flag = request.query.get("accepted", "")
    if flag not in ("", "true", "false"):
        return web.json_response({"error": "accepted: expected true or false"}, status=400)
    accepted = None if flag == "" else flag == "true"
    token = request.query.get("token") or None
    messages = request.app[SERVICE].store.query(token, accepted)
    return web.json_response({"messages": messages}, dumps=_dumps)


async def clear_messages(request: web.Request) -> web.Response:
    """Forget every recorded request and every robot's rate-limit window."""
    service = request.app[SERVICE]
    service.store.clear()
    service.limiter.reset()
    log.info("messages cleared")
    return web.json_response({"messages": []})


async def _close_store(app: web.Application) -> None:
    app[SERVICE].store.close()


def build_app(service: RobotService) -> web.Application:
    """Wire the robot fake's routes around its state."""
    app = web.Application()
    app[SERVICE] = service
    app.on_cleanup.append(_close_store)
    app.router.add_route("*", "/robot/send", robot_send)
    app.router.add_get("/_control", get_control)
    app.router.add_put("/_control", put_control)
    app.router.add_get("/_messages", list_messages)
    app.router.add_delete("/_messages", clear_messages)
    return app
