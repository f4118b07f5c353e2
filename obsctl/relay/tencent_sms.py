"""Tencent Cloud SMS (短信) SendSms: the loudest escalation step, signed TC3-HMAC-SHA256.

Signed here on httpx rather than through tencentcloud-sdk-python, which is synchronous on
`requests`: the relay is one asyncio process, and the signature is the documented four-step
HMAC chain below. The tests hold this signer to the SDK's: the stack's fake checks signatures
with code of its own, and it accepts the SDK's requests as it accepts these.
Nothing here logs or returns the secret id, the key or a whole phone number.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from obsctl.relay.config import SmsConfig

SERVICE = "sms"
ACTION = "SendSms"
VERSION = "2021-01-11"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
# SendSms takes at most this many numbers per request.
MAX_NUMBERS = 200


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode("utf-8"), "sha256")


def authorization(secret_id: str, secret_key: str, host: str, payload: bytes,
                  timestamp: int) -> str:  # fmt: skip
    """The Authorization header of a POST of `payload` to `host` at `timestamp` (unix s)."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical_request = "\n".join((
        "POST", "/", "",
        f"content-type:{CONTENT_TYPE}\nhost:{host}\n",
        "content-type;host",
        hashlib.sha256(payload).hexdigest(),
    ))  # fmt: skip
    scope = f"{date}/{SERVICE}/tc3_request"
    string_to_sign = "\n".join((
        ALGORITHM, str(timestamp), scope,
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ))  # fmt: skip
    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), SERVICE), "tc3_request")
    signature = hmac.new(signing_key, string_to_sign.encode("utf-8"), "sha256").hexdigest()
    return (f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders=content-type;host,"
            f" Signature={signature}")  # fmt: skip


def masked(phone: str) -> str:
    """A phone number as logs may show it: +86138****0000."""
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"


@dataclass
class SmsResult:
    """What SendSms did: the numbers it took, those it refused and why, or why none went."""

    sent: list[str] = field(default_factory=list)  # masked
    refused: list[tuple[str, str]] = field(default_factory=list)  # (masked, Tencent's code)
    error: str | None = None  # the whole request failed

    @property
    def ok(self) -> bool:
        """Every number was taken."""
        return self.error is None and not self.refused


class SmsClient:
    """Sends one template SMS to a list of phones through SendSms."""

    def __init__(self, config: SmsConfig, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._config = config
        self._http = http
        self._url = httpx.URL(config.endpoint)
        self._clock = clock

    def phone(self, mobile: str) -> str:
        """A configured mobile in E.164, as SendSms wants it (13800000000 -> +8613800000000)."""
        digits = mobile.replace("-", "")
        return digits if digits.startswith("+") else self._config.country_code + digits

    def params(self, values: dict[str, str]) -> list[str]:
        """The template's variables in the configured order, each cut to what it allows."""
        limit = self._config.param_max_chars
        return [values.get(name, "")[:limit] or "-" for name in self._config.template_params]

    async def send(self, mobiles: list[str], values: dict[str, str]) -> SmsResult:
        """Text `mobiles` the template filled with `values`; never raises for a failure."""
        phones = list(dict.fromkeys(self.phone(m) for m in mobiles))[:MAX_NUMBERS]
        config = self._config
        payload = json.dumps({
            "PhoneNumberSet": phones,
            "SmsSdkAppId": config.sdk_app_id,
            "SignName": config.sign_name,
            "TemplateId": config.template_id,
            "TemplateParamSet": self.params(values),
        }, ensure_ascii=False).encode("utf-8")  # fmt: skip
        timestamp = int(self._clock())
        host = self._url.netloc.decode("ascii")
        headers = {
            "Authorization": authorization(config.secret_id.get_secret_value(),
                                           config.secret_key.get_secret_value(), host, payload,
                                           timestamp),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": config.region,
        }  # fmt: skip
        try:
            async with asyncio.timeout(config.timeout):
                response = await self._http.post(self._url, content=payload, headers=headers,
                                                 timeout=config.timeout)  # fmt: skip
        except (TimeoutError, httpx.TimeoutException):
            return SmsResult(error=f"no answer within {config.timeout:g}s")
        except httpx.TransportError as exc:
            return SmsResult(error=type(exc).__name__)
        return _result(response)


def _result(response: httpx.Response) -> SmsResult:
    """Read SendSms's answer: an Error for the whole request, else a status per number."""
    if response.status_code != 200:
        return SmsResult(error=f"HTTP {response.status_code}")
    try:
        answer = response.json()["Response"]
        error = answer.get("Error")
        if error:
            return SmsResult(error=f"{error.get('Code')}: {str(error.get('Message'))[:200]}")
        statuses = answer["SendStatusSet"]
        result = SmsResult()
        for status in statuses:
            phone = masked(str(status.get("PhoneNumber", "")))
            code = str(status.get("Code", ""))
            if code == "Ok":
                result.sent.append(phone)
            else:
                result.refused.append((phone, code[:100]))
        return result
    except (ValueError, KeyError, TypeError, AttributeError):
        return SmsResult(error="HTTP 200 without SendSms's Response")
