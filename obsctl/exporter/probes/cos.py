"""COS canary: PUT, GET and DELETE one object over the S3-compatible API, signed with SigV4."""

from __future__ import annotations

import hashlib
import secrets
import time
from urllib.parse import quote

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import Field, HttpUrl, SecretStr

from obsctl.config_types import Duration, LabelValue
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.base import ProbeBase, ProbeOutcome, Reason, Status


class COSConfig(StrictModel):
    """The object store to canary (Tencent COS, or any S3-compatible endpoint)."""

    endpoint: HttpUrl
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    access_key: SecretStr
    secret_key: SecretStr
    region: str = Field(pattern=r"^[a-z0-9-]{2,32}$")
    # path: <endpoint>/<bucket>/<key>; virtual: <bucket>.<endpoint host>/<key> (COS's default).
    addressing: str = Field(default="path", pattern=r"^(path|virtual)$")
    canary_key: str = Field(default="obsctl/canary", min_length=1, max_length=200)
    interval: Duration = 30.0
    timeout: Duration = 3.0
    slow_threshold: Duration = 1.0
    target: LabelValue = "main"


class COSProbe(ProbeBase):
    """Writes a small random object, reads it back, deletes it; each phase timed."""

    kind = "cos"

    def __init__(self, config: COSConfig) -> None:
        super().__init__(config.target, config.interval, config.timeout)
        self.config = config
        self._credentials = Credentials(
            config.access_key.get_secret_value(), config.secret_key.get_secret_value()
        )
        # Per request; the three requests together are held to the budget by `run`.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.budget))

    def object_url(self) -> str:
        """URL of the canary object for the configured addressing style."""
        base = str(self.config.endpoint).rstrip("/")
        key = quote(self.config.canary_key, safe="/")
        if self.config.addressing == "virtual":
            scheme, _, host = base.partition("://")
            return f"{scheme}://{self.config.bucket}.{host}/{key}"
        return f"{base}/{self.config.bucket}/{key}"

    def signed(self, method: str, body: bytes = b"") -> httpx.Request:
        """A SigV4-signed request for the canary object (botocore signs, httpx sends)."""
        url = self.object_url()
        headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
        aws = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self._credentials, "s3", self.config.region).add_auth(aws)
        return self._client.build_request(method, url, content=body, headers=dict(aws.headers))

    async def check(self, began: float, phases: dict[str, float]) -> ProbeOutcome:
        """PUT, GET (and compare), DELETE."""
        payload = secrets.token_bytes(32)
        for phase, method, body in (
            ("put", "PUT", payload),
            ("get", "GET", b""),
            ("delete", "DELETE", b""),
        ):
            started = time.monotonic()
            try:
                response = await self._client.send(self.signed(method, body))
            except httpx.TimeoutException:
                return self._failed(began, Reason.TIMEOUT, f"{phase}: no answer in time")
            except httpx.ConnectError as exc:
                return self._failed(began, Reason.REFUSED, f"{phase}: {exc}")
            phases[phase] = time.monotonic() - started
            if response.status_code in (401, 403):
                return self._failed(began, Reason.AUTH, f"{phase}: HTTP {response.status_code}")
            if not response.is_success:
                return self._failed(
                    began, Reason.HTTP_STATUS, f"{phase}: HTTP {response.status_code}"
                )
            if method == "GET" and response.content != payload:
                return self._failed(began, Reason.PROTOCOL, "get: body differs from what was put")
        slow = time.monotonic() - began > self.config.slow_threshold
        return self.outcome(
            began,
            Status.DEGRADED if slow else Status.OK,
            reason=Reason.SLOW if slow else None,
            phases=phases,
        )

    def _failed(self, began: float, reason: Reason, detail: str) -> ProbeOutcome:
        return self.outcome(began, Status.DOWN, reason=reason, detail=detail)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
