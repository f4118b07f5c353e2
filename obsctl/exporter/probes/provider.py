"""AI provider heartbeat: one light request per provider; over 200 ms is degraded, none in 2 s down.

The request (method, path, headers with the API key, a JSON body) and the answer it accepts
(status codes, a JSON field's value) are per provider (`ProviderConfig`). Nothing here logs or
reports the URL, its query or a header value: details are built from status codes and field
names, and anything taken from the answer is scrubbed of the configured header values.
"""

from __future__ import annotations

import json
import time

import httpx

from obsctl.configfile import scrub
from obsctl.exporter.probes.base import ProbeBase, ProbeOutcome, Reason, Status, classify
from obsctl.exporter.probes.provider_answer import describe_status
from obsctl.exporter.probes.provider_config import ProviderConfig

__all__ = ["ProviderConfig", "ProviderProbe"]

# A heartbeat's answer is a few hundred bytes; more is read only to this bound, then refused.
MAX_ANSWER_BYTES = 65_536
# Whitespace-separated parts of a header value this long are secrets too (the key in
# "Bearer <key>"), so an answer that echoes the bare key is scrubbed as well.
_SECRET_PART = 8


class _TooLarge(Exception):
    """The answer is longer than MAX_ANSWER_BYTES."""


class ProviderProbe(ProbeBase):
    """The configured request; an accepted status (2xx) and JSON field is up, slow is degraded."""

    kind = "provider"
    expected_errors = (httpx.TransportError,)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config.name, config.interval, config.timeout)
        self.config = config
        self._url = str(config.url).rstrip("/") + config.path
        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        self._secrets = set(headers.values()) | {
            part
            for value in headers.values()
            for part in value.split()
            if len(part) >= _SECRET_PART
        }
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.budget),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            headers={"User-Agent": "obsctl-exporter", **headers},
        )

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """One heartbeat."""
        request = self._client.build_request(
            self.config.method,
            self._url,
            json=self.config.body if self.config.method == "POST" else None,
        )
        response = await self._client.send(request, stream=True)
        try:
            answer: bytes | None = await _read_bounded(response)
        except _TooLarge:
            answer = None
        finally:
            await response.aclose()
        elapsed = time.monotonic() - began
        phases["heartbeat"] = elapsed
        if not self.config.accepts(response.status_code):
            return self._down(began, phases, Reason.HTTP_STATUS, self._status_detail(response))
        problem = self._answer_problem(response, answer)
        if problem:
            return self._down(began, phases, Reason.PROTOCOL, problem)
        slow = elapsed > self.config.slow_threshold
        return self.outcome(
            began,
            Status.DEGRADED if slow else Status.OK,
            reason=Reason.SLOW if slow else None,
            phases=phases,
        )

    def _status_detail(self, response: httpx.Response) -> str:
        status = describe_status(response.status_code)
        sent = ", ".join(self.config.headers) or "none"
        if response.status_code == 401:
            return (
                f"{status}: the provider refused the request's credentials (headers sent: {sent}; "
                "is the API key set and current?)"
            )
        if response.status_code == 403:
            return f"{status}: the key may not make this request (headers sent: {sent})"
        return f"{status}, expected {self.config.expected_statuses()}"

    def _answer_problem(self, response: httpx.Response, answer: bytes | None) -> str | None:
        expect = self.config.expect_json
        if expect is None:
            return None
        if answer is None:
            return f"the answer is larger than {MAX_ANSWER_BYTES // 1024} KiB, too large to check"
        try:
            document = json.loads(answer)
        except ValueError:
            kind = response.headers.get("content-type", "none")[:60]
            return (
                f"the answer is not JSON (content-type {kind}), expected JSON field {expect.field}"
            )
        mismatch = expect.mismatch(document)
        return scrub(mismatch, self._secrets) if mismatch else None

    def _down(
        self, began: float, phases: dict[str, float], reason: Reason, detail: str
    ) -> ProbeOutcome:
        return self.outcome(began, Status.DOWN, reason=reason, detail=detail, phases=phases)

    def reason(self, exc: BaseException) -> Reason:
        """Timeout, refused, TLS, DNS or protocol, from the HTTP client's exception."""
        if isinstance(exc, httpx.TimeoutException):
            return Reason.TIMEOUT
        if isinstance(exc, httpx.ConnectError):
            return _connect_reason(exc)
        if isinstance(exc, httpx.ProtocolError):
            return Reason.PROTOCOL
        return classify(exc)

    def describe(self, exc: BaseException) -> str:
        """The failure without the URL or any header value."""
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            return f"no answer within {self.budget:g}s"
        if isinstance(exc, httpx.ConnectError):
            return scrub(str(exc), self._secrets)
        return scrub(f"{type(exc).__name__}: {exc}", self._secrets)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    """The answer's body, refused past MAX_ANSWER_BYTES (a heartbeat is small)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _TooLarge
    return bytes(body)


def _connect_reason(exc: httpx.ConnectError) -> Reason:
    text = str(exc).lower()
    if "ssl" in text or "certificate" in text:
        return Reason.TLS
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return Reason.DNS
    return Reason.REFUSED
