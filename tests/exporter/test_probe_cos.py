"""COS canary probe: against moto, a failing endpoint, and an independent SigV4 check."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlparse

import boto3
import httpx
import pytest
from aiohttp import web

from obsctl.exporter.probes.base import Reason, Status, run_bounded
from obsctl.exporter.probes.cos import COSConfig, COSProbe
from obsctl.stack.fakes.launcher import free_port

BUCKET = "obsctl-canary-1250000000"
REGION = "ap-guangzhou"
ACCESS_KEY = "AKIDTESTKEY"
SECRET_KEY = "test-secret-key-value"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        ).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _config(endpoint: str, **extra: object) -> COSConfig:
    return COSConfig.model_validate(
        {
            "endpoint": endpoint,
            "bucket": BUCKET,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": REGION,
            **extra,
        }
    )


async def test_canary_put_get_delete_succeeds_and_leaves_nothing(s3_endpoint: str) -> None:
    probe = COSProbe(_config(s3_endpoint))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.OK, outcome
    assert set(outcome.phases) == {"put", "get", "delete"}
    listing = httpx.get(f"{s3_endpoint}/{BUCKET}?list-type=2", timeout=5).text
    assert "<Key>obsctl/canary</Key>" not in listing


@pytest.fixture
async def failing_endpoint() -> AsyncIterator[str]:
    async def answer_500(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<Error><Code>InternalError</Code></Error>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer_500)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_cos_answering_500_is_down_with_http_status(failing_endpoint: str) -> None:
    probe = COSProbe(_config(failing_endpoint))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.status is Status.DOWN
    assert outcome.reason is Reason.HTTP_STATUS
    assert outcome.detail == "put: HTTP 500"


async def test_unreachable_cos_is_refused() -> None:
    probe = COSProbe(_config(f"http://127.0.0.1:{free_port()}"))
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.reason is Reason.REFUSED


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _verify_sigv4(request: httpx.Request, secret_key: str, region: str) -> bool:
    """Recompute an S3 SigV4 signature from the AWS spec, independently of botocore."""
    auth = request.headers["authorization"]
    algorithm, _, rest = auth.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    access_key, date, req_region, service, terminator = fields["Credential"].split("/")
    signed_headers = fields["SignedHeaders"].split(";")
    url = urlparse(str(request.url))
    canonical_headers = "".join(
        f"{name}:{' '.join(request.headers[name].split())}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [
            request.method,
            quote(url.path, safe="/~"),
            url.query,
            canonical_headers,
            ";".join(signed_headers),
            request.headers["x-amz-content-sha256"],
        ]
    )
    scope = f"{date}/{req_region}/{service}/{terminator}"
    string_to_sign = "\n".join(
        [
            algorithm,
            request.headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (req_region, service, terminator):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        algorithm == "AWS4-HMAC-SHA256"
        and access_key == ACCESS_KEY
        and req_region == region
        and service == "s3"
        and hmac.compare_digest(expected, fields["Signature"])
    )


@pytest.mark.parametrize("addressing", ["path", "virtual"])
async def test_requests_carry_a_valid_sigv4_signature(addressing: str) -> None:
    probe = COSProbe(_config("https://cos.ap-guangzhou.myqcloud.com", addressing=addressing))
    try:
        body = b"canary-bytes"
        request = probe.signed("PUT", body)
        assert request.headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
        assert request.content == body
        assert _verify_sigv4(request, SECRET_KEY, REGION)
        tampered = probe.signed("PUT", body)
        tampered.headers["x-amz-content-sha256"] = hashlib.sha256(b"other").hexdigest()
        assert not _verify_sigv4(tampered, SECRET_KEY, REGION)
        assert not _verify_sigv4(probe.signed("DELETE"), "wrong-secret", REGION)
    finally:
        await probe.close()
    host = urlparse(str(request.url)).hostname
    expected_host = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com" if addressing == "virtual" else None
    assert host == (expected_host or "cos.ap-guangzhou.myqcloud.com")
