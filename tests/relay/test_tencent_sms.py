"""Tencent Cloud SMS: the relay's signed SendSms against the fake, the fake against Tencent's SDK.

The fake checks signatures with code of its own (obsctl.stack.fakes.tc3_verify). That it
accepts requests signed by tencentcloud-sdk-python, Tencent's own client, and refuses a request
whose body, key or clock is off, is what makes its "accepted" evidence for the relay's signer.
"""

# ruff: noqa: RUF001 - the texts are Chinese, with its full-width commas
from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.relay.config import SmsConfig
from obsctl.relay.tencent_sms import SmsClient, authorization
from obsctl.stack.fakes.launcher import RunningFake, start_fake

SECRET_ID = "AKIDtestsmsfake0123456789"
SECRET_KEY = "test-sms-secret-key-0123456789"
APP_ID = "1400000001"
SIGN = "obsctl演示"
TEMPLATE = "100001"
TEMPLATE_TEXT = "告警 {1} 已 {2} 分钟无人认领，请立即处理。"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    state = tmp_path_factory.mktemp("sms")
    accounts = state / "accounts.json"
    accounts.write_text(json.dumps({SECRET_ID: {
        "secret_key": SECRET_KEY, "sdk_app_id": APP_ID, "sign_names": [SIGN],
        "templates": {TEMPLATE: TEMPLATE_TEXT},
    }}, ensure_ascii=False))  # fmt: skip
    running = start_fake(
        "obsctl.stack.fakes.tencent_sms",
        ["--accounts", str(accounts), "--store", str(state / "messages.jsonl")],
    )
    try:
        yield running
    finally:
        running.close()


def _config(fake: RunningFake, **changes: Any) -> SmsConfig:
    return SmsConfig.model_validate({
        "endpoint": fake.base_url, "secret_id": SECRET_ID, "secret_key": SECRET_KEY,
        "sdk_app_id": APP_ID, "sign_name": SIGN, "template_id": TEMPLATE, **changes,
    })  # fmt: skip


def _send(config: SmsConfig, mobiles: list[str], values: dict[str, str], **client: Any) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            return await SmsClient(config, http, **client).send(mobiles, values)

    return asyncio.run(go())


def _messages(fake: RunningFake) -> list[dict[str, Any]]:
    answer = httpx.get(f"{fake.base_url}/_messages", timeout=5).json()
    return list(answer["messages"])


def test_the_fake_accepts_what_tencents_own_sdk_signs(fake: RunningFake) -> None:
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client

    endpoint = fake.base_url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
    client = sms_client.SmsClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                                  profile)  # fmt: skip
    request = models.SendSmsRequest()
    request.PhoneNumberSet = ["+8613800000009"]
    request.SmsSdkAppId, request.SignName, request.TemplateId = APP_ID, SIGN, TEMPLATE
    request.TemplateParamSet = ["SdkCheck", "3"]
    answer = client.SendSms(request)
    assert [s.Code for s in answer.SendStatusSet] == ["Ok"]
    texts = [m["text"] for m in _messages(fake) if m["accepted"]]
    assert "【obsctl演示】告警 SdkCheck 已 3 分钟无人认领，请立即处理。" in texts

    wrong = sms_client.SmsClient(credential.Credential(SECRET_ID, "not-" + SECRET_KEY),
                                 "ap-guangzhou", profile)  # fmt: skip
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    with pytest.raises(TencentCloudSDKException) as refused:
        wrong.SendSms(request)
    assert refused.value.code == "AuthFailure.SignatureFailure"


def test_the_relay_texts_every_phone_with_the_filled_template(fake: RunningFake) -> None:
    result = _send(_config(fake), ["13800000000", "+86-13800000001", "13800000000"],
                   {"alertname": "QueueStalledForALongName", "minutes": "12"})  # fmt: skip
    assert result.ok and result.error is None
    assert result.sent == ["+86138****0000", "+86138****0001"], "masked, and sent once each"
    record = _messages(fake)[-1]
    assert record["accepted"] and record["phones"] == ["+8613800000000", "+8613800000001"]
    # Cut to Tencent's 12 characters a variable, as the template would otherwise be refused.
    assert record["text"] == "【obsctl演示】告警 QueueStalled 已 12 分钟无人认领，请立即处理。"


def test_a_number_tencent_refuses_is_reported_and_the_others_still_go(fake: RunningFake) -> None:
    result = _send(_config(fake), ["+8613800000002", "+86123"], {"alertname": "A"})
    assert result.sent == ["+86138****0002"]
    assert result.refused == [("****", "InvalidParameterValue.IncorrectPhoneNumber")]
    assert not result.ok


@pytest.mark.parametrize(
    ("changes", "client", "code"),
    [
        ({"secret_key": "another-key-0123456789"}, {}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDnobodyhasthisid"}, {}, "AuthFailure.SecretIdNotFound"),
        ({}, {"clock": lambda: time.time() - 600}, "AuthFailure.SignatureExpire"),
        ({"template_id": "999"}, {}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ({"sign_name": "别人的签名"}, {}, "FailedOperation.SignatureIncorrectOrUnapproved"),
        ({"sdk_app_id": "1400000002"}, {}, "InvalidParameterValue.SdkAppIdNotExist"),
        ({"template_params": ["alertname"]}, {},
         "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        ({"param_max_chars": 30}, {}, "InvalidParameterValue.TemplateParameterLengthLimit"),
    ],
)  # fmt: skip
def test_what_tencent_would_refuse_the_fake_refuses_and_the_relay_reports(
    fake: RunningFake, changes: dict[str, Any], client: dict[str, Any], code: str
) -> None:
    values = {"alertname": "AlertNameOfTwentyFiveChars", "minutes": "10"}
    result = _send(_config(fake, **changes), ["+8613800000003"], values, **client)
    assert result.error is not None and result.error.startswith(code + ":"), result.error
    assert not result.sent


def test_a_body_changed_after_signing_is_refused(fake: RunningFake) -> None:
    signed = json.dumps({"PhoneNumberSet": ["+8613800000004"]}).encode()
    sent = json.dumps({"PhoneNumberSet": ["+8613800000005"]}).encode()
    now = int(time.time())
    host = fake.base_url.removeprefix("http://")
    answer = httpx.post(fake.base_url, content=sent, timeout=5, headers={
        "Authorization": authorization(SECRET_ID, SECRET_KEY, host, signed, now),
        "Content-Type": "application/json; charset=utf-8", "X-TC-Action": "SendSms",
        "X-TC-Version": "2021-01-11", "X-TC-Timestamp": str(now), "X-TC-Region": "ap-guangzhou",
    }).json()  # fmt: skip
    assert answer["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_an_unreachable_or_hung_api_is_an_error_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = SmsConfig.model_validate({
        "endpoint": f"http://127.0.0.1:{port}", "secret_id": SECRET_ID, "secret_key": SECRET_KEY,
        "sdk_app_id": APP_ID, "sign_name": SIGN, "template_id": TEMPLATE, "timeout": "1s",
    })  # fmt: skip
    assert _send(config, ["13800000000"], {}).error == "ConnectError"
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = config.model_copy(update={"endpoint": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        started = time.monotonic()
        result = _send(hung, ["13800000000"], {})
        assert result.error == "no answer within 1s"
        assert time.monotonic() - started < 3
