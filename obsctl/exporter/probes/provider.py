"""AI provider heartbeat: one light GET per provider, with a tight timeout (200 ms by default)."""

from __future__ import annotations

import time

import httpx
from pydantic import Field, HttpUrl, field_validator

from obsctl.config_types import Duration, LabelValue, slow_below_timeout, timeout_within_interval
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.base import ProbeBase, ProbeOutcome, Reason, Status


class ProviderConfig(StrictModel):
    """One external AI provider to heartbeat."""

    name: LabelValue
    url: HttpUrl
    heartbeat_path: str = Field(default="/v1/heartbeat", pattern=r"^/")
    interval: Duration = 10.0
    # The seed's budget for a heartbeat: a provider slower than this is as good as down.
    timeout: Duration = 0.2
    # Answering, but slower than this: degraded.
    slow_threshold: Duration = 0.1

    _timeout_fits = field_validator("timeout")(timeout_within_interval)
    _slow_fits = field_validator("slow_threshold")(slow_below_timeout)


class ProviderProbe(ProbeBase):
    """GET <url><heartbeat_path>; 2xx is up, slow is degraded, anything else is down."""

    kind = "provider"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config.name, config.interval, config.timeout)
        self.config = config
        self._url = str(config.url).rstrip("/") + config.heartbeat_path
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.budget),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            headers={"User-Agent": "obsctl-exporter"},
        )

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """One heartbeat."""
        try:
            response = await self._client.get(self._url)
        except httpx.TimeoutException:
            return self._failed(began, Reason.TIMEOUT, f"no answer within {self.budget:g}s")
        except httpx.ConnectError as exc:
            return self._failed(began, _connect_reason(exc), str(exc))
        elapsed = time.monotonic() - began
        if not response.is_success:
            return self._failed(began, Reason.HTTP_STATUS, f"HTTP {response.status_code}")
        slow = elapsed > self.config.slow_threshold
        return self.outcome(
            began,
            Status.DEGRADED if slow else Status.OK,
            reason=Reason.SLOW if slow else None,
            phases={"heartbeat": elapsed},
        )

    def _failed(self, began: float, reason: Reason, detail: str) -> ProbeOutcome:
        return self.outcome(began, Status.DOWN, reason=reason, detail=detail)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _connect_reason(exc: httpx.ConnectError) -> Reason:
    text = str(exc).lower()
    if "ssl" in text or "certificate" in text:
        return Reason.TLS
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return Reason.DNS
    return Reason.REFUSED
