"""The DingTalk custom-robot client: signs, posts one message, and classifies the answer.

A send succeeds only on HTTP 200 with ``errcode == 0``. Nothing here logs or returns the
robot URL (it holds the access token) or the secret.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum

import httpx

from obsctl.relay.compose import RobotMessage
from obsctl.relay.config import TargetConfig
from obsctl.relay.signing import signature

# "send too fast" answers: 410100 in the current API, 130101 in the older one.
RATE_LIMIT_ERRCODES = frozenset({410100, 130101})


class Failure(StrEnum):
    """Why a send did not deliver; the values are the `reason` label of the failure metric."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_STATUS = "http_status"
    BAD_ANSWER = "bad_answer"
    ERRCODE = "errcode"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send: `failure` is None when DingTalk accepted the message."""

    failure: Failure | None
    detail: str
    duration_seconds: float

    @property
    def ok(self) -> bool:
        """Whether the message was delivered."""
        return self.failure is None


class RobotClient:
    """Sends messages to one robot."""

    def __init__(self, target: TargetConfig, http: httpx.AsyncClient, timeout: float) -> None:
        self._url = httpx.URL(target.url.get_secret_value())
        self._secret = target.secret.get_secret_value() if target.secret else None
        self._http = http
        self._timeout = timeout

    def url(self, now_ms: int | None = None) -> httpx.URL:
        """The robot URL with ``timestamp`` and ``sign`` added for a signed robot."""
        if self._secret is None:
            return self._url
        timestamp = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        sign = signature(self._secret, timestamp)
        return self._url.copy_merge_params({"timestamp": str(timestamp), "sign": sign})

    async def send(self, message: RobotMessage) -> SendResult:
        """Post `message` once and say whether DingTalk accepted it."""
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange; httpx's own timeouts are per phase.
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(
                    self.url(),
                    content=message.payload,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=self._timeout,
                )
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(
                Failure.TIMEOUT, f"no answer within {self._timeout:g}s", _since(started)
            )
        except httpx.TransportError as exc:
            return SendResult(Failure.CONNECTION, type(exc).__name__, _since(started))
        elapsed = _since(started)
        if response.status_code != 200:
            return SendResult(Failure.HTTP_STATUS, f"HTTP {response.status_code}", elapsed)
        try:
            answer = response.json()
            errcode = int(answer.get("errcode", -1))
            errmsg = str(answer.get("errmsg", ""))[:200]
        except (ValueError, AttributeError, TypeError):
            return SendResult(Failure.BAD_ANSWER, "HTTP 200 without a JSON errcode", elapsed)
        if errcode == 0:
            return SendResult(None, "ok", elapsed)
        failure = Failure.RATE_LIMITED if errcode in RATE_LIMIT_ERRCODES else Failure.ERRCODE
        return SendResult(failure, f"errcode {errcode}: {errmsg}", elapsed)


def _since(started: float) -> float:
    return time.perf_counter() - started
