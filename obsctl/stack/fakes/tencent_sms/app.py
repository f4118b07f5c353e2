"""HTTP routes of the Tencent Cloud SMS fake: ``POST /`` (SendSms), ``/_control``, ``/_messages``.

Answers as API 3.0 does: HTTP 200 with ``{"Response": {..., "RequestId"}}``, an ``Error`` in it
when the whole request is refused, else a ``SendStatusSet`` with one status per number.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from obsctl.stack.fakes.dingtalk.store import MessageStore
from obsctl.stack.fakes.tc3_verify import Refusal, verify
from obsctl.stack.fakes.tencent_sms.accounts import Account

ACTION, VERSION, SERVICE_NAME = "SendSms", "2021-01-11", "sms"
MAX_NUMBERS = 200
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_dumps = partial(json.dumps, ensure_ascii=False)
log = logging.getLogger("tencent-sms")


@dataclass
class SmsService:
    """Everything the fake knows and remembers."""

    accounts: Mapping[str, Account]
    store: MessageStore
    clock: Callable[[], float] = time.time


SERVICE = web.AppKey("service", SmsService)


def _check_body(account: Account, body: Any) -> Refusal | None:
    """What SendSms refuses about the request as a whole."""
    if not isinstance(body, dict):
        return Refusal("InvalidParameter", "The body is not a JSON object.")
    for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
        if name not in body:
            return Refusal("MissingParameter", f"The parameter `{name}` is missing.")
    phones, params = body["PhoneNumberSet"], body.get("TemplateParamSet", [])
    if not isinstance(phones, list) or not phones or not all(isinstance(p, str) for p in phones):
        return Refusal("InvalidParameter", "PhoneNumberSet must be a non-empty list of strings.")
    if len(phones) > MAX_NUMBERS:
        return Refusal("LimitExceeded.PhoneNumberCountLimit", "More than 200 numbers.")
    if body["SmsSdkAppId"] != account.sdk_app_id:
        return Refusal("InvalidParameterValue.SdkAppIdNotExist", "The SdkAppId does not exist.")
    if body.get("SignName") not in account.sign_names:
        return Refusal("FailedOperation.SignatureIncorrectOrUnapproved",
                       "The signature is not approved.")  # fmt: skip
    if body["TemplateId"] not in account.templates:
        return Refusal("FailedOperation.TemplateIncorrectOrUnapproved",
                       "The template is not approved.")  # fmt: skip
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        return Refusal("InvalidParameter", "TemplateParamSet must be a list of strings.")
    if len(params) != account.variables(body["TemplateId"]):
        return Refusal("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                       "The number of variables does not match the template.")  # fmt: skip
    if any(len(p) > account.param_max_chars for p in params):
        return Refusal(
            "InvalidParameterValue.TemplateParameterLengthLimit",
            f"A variable is longer than {account.param_max_chars} characters.",
        )
    return None


def _judge(
    request: web.Request, service: SmsService, raw: bytes
) -> tuple[str, Any, Refusal | None]:
    """(SecretId, body, refusal) the way the API decides: signature, action, then the body."""
    secret_id, refusal = verify(
        request.method, request.path, request.query_string, request.headers, raw,
        lambda sid: a.secret_key if (a := service.accounts.get(sid)) else None,
        SERVICE_NAME, service.clock(),
    )  # fmt: skip
    if refusal is not None:
        return secret_id, None, refusal
    if request.headers.get("X-TC-Action") != ACTION:
        return secret_id, None, Refusal("InvalidAction", "Only SendSms is served here.")
    if request.headers.get("X-TC-Version") != VERSION:
        return secret_id, None, Refusal("InvalidParameterValue", f"X-TC-Version is not {VERSION}.")
    if not request.headers.get("X-TC-Region"):
        return secret_id, None, Refusal("MissingParameter", "X-TC-Region is missing.")
    try:
        body = json.loads(raw)
    except ValueError:
        return secret_id, None, Refusal("InvalidParameter", "The body is not JSON.")
    return secret_id, body, _check_body(service.accounts[secret_id], body)


async def send_sms(request: web.Request) -> web.Response:
    """SendSms: check, answer and record one request."""
    service = request.app[SERVICE]
    raw = await request.read()
    request_id = str(uuid.uuid4())
    secret_id, body, refusal = _judge(request, service, raw)
    record: dict[str, Any] = {
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "token": secret_id,
        "accepted": refusal is None,
        "request_id": request_id,
    }
    if refusal is not None:
        service.store.append({**record, "code": refusal.code})
        log.info("refused %s: %s", request_id, refusal.code)
        error = {"Code": refusal.code, "Message": refusal.message}
        return _answer({"Error": error, "RequestId": request_id})
    account = service.accounts[secret_id]
    text = account.text(body["TemplateId"], body["SignName"], body.get("TemplateParamSet", []))
    statuses = []
    for number, phone in enumerate(body["PhoneNumberSet"]):
        good = bool(_E164.fullmatch(phone))
        statuses.append({
            "SerialNo": f"{request_id[:8]}:{number}" if good else "",
            "PhoneNumber": phone,
            "Fee": 1 if good else 0,
            "SessionContext": body.get("SessionContext", ""),
            "Code": "Ok" if good else "InvalidParameterValue.IncorrectPhoneNumber",
            "Message": "send success" if good else "The phone number is incorrect.",
            "IsoCode": "CN" if phone.startswith("+86") else "",
        })  # fmt: skip
    delivered = [s["PhoneNumber"] for s in statuses if s["Code"] == "Ok"]
    service.store.append({**record, "phones": delivered, "text": text, "body": body})
    log.info("sent %s to %d of %d numbers", request_id, len(delivered), len(statuses))
    return _answer({"SendStatusSet": statuses, "RequestId": request_id})


def _answer(response: dict[str, Any]) -> web.Response:
    """HTTP 200 with Content-Type exactly application/json, as the API (and its SDK) has it."""
    body = _dumps({"Response": response}).encode("utf-8")
    return web.Response(body=body, content_type="application/json")


async def get_control(request: web.Request) -> web.Response:
    """Readiness: the accounts' SecretIds."""
    return web.json_response({"accounts": sorted(request.app[SERVICE].accounts)})


async def list_messages(request: web.Request) -> web.Response:
    """The recorded requests, optionally only the ``accepted`` (true/false) ones."""
    flag = request.query.get("accepted", "")
    if flag not in ("", "true", "false"):
        return web.json_response({"error": "accepted: expected true or false"}, status=400)
    accepted = None if flag == "" else flag == "true"
    messages = request.app[SERVICE].store.query(None, accepted)
    return web.json_response({"messages": messages}, dumps=_dumps)


async def clear_messages(request: web.Request) -> web.Response:
    """Forget every recorded request."""
    request.app[SERVICE].store.clear()
    return web.json_response({"messages": []})


async def _close_store(app: web.Application) -> None:
    app[SERVICE].store.close()


def build_app(service: SmsService) -> web.Application:
    """Wire the fake's routes around its state."""
    app = web.Application()
    app[SERVICE] = service
    app.on_cleanup.append(_close_store)
    app.router.add_post("/", send_sms)
    app.router.add_get("/_control", get_control)
    app.router.add_get("/_messages", list_messages)
    app.router.add_delete("/_messages", clear_messages)
    return app
