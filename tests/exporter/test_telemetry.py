"""Sentry receives the exporter's unexpected errors; every probe run becomes an OTLP span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import sentry_sdk
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from obsctl.exporter import telemetry
from obsctl.exporter.config import SentryConfig, TracingConfig
from obsctl.exporter.probes.base import ProbeOutcome, Reason
from obsctl.exporter.results import ResultStore
from obsctl.exporter.runner import run_and_record
from obsctl.stack.fakes.launcher import free_port


@dataclass
class Received:
    """What a fake SaaS endpoint got."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


async def _serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def sentry_ingest() -> AsyncIterator[tuple[str, Received]]:
    """A Sentry ingest endpoint speaking the envelope protocol (POST /api/<project>/envelope/)."""
    received = Received()

    async def envelope(request: web.Request) -> web.Response:
        auth = request.headers.get("X-Sentry-Auth", "")
        if "sentry_key=publickey" not in auth:
            return web.json_response({"detail": "bad auth"}, status=401)
        received.headers.append(dict(request.headers))
        received.bodies.append(
            await request.read()  # aiohttp undoes Content-Encoding
        )
        return web.json_response({"id": "0" * 32})

    runner, url = await _serve([web.post("/api/{project}/envelope/", envelope)])
    try:
        yield url, received
    finally:
        await runner.cleanup()


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[tuple[str, Received]]:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf)."""
    received = Received()

    async def traces(request: web.Request) -> web.Response:
        received.bodies.append(
            await request.read()  # aiohttp undoes Content-Encoding
        )
        reply = trace_service_pb2.ExportTraceServiceResponse()
        return web.Response(body=reply.SerializeToString(), content_type="application/x-protobuf")

    runner, url = await _serve([web.post("/v1/traces", traces)])
    try:
        yield url, received
    finally:
        await runner.cleanup()


class ExplodingProbe:
    """A probe with a bug: its run raises something nobody expected."""

    kind = "cos"
    target = "main"
    interval_seconds = 1.0
    timeout_seconds = 1.0

    async def run(self) -> ProbeOutcome:
        dsn = "mysql://exporter:" + "-".join(["hunter2", "local"]) + "@db/platform"
        raise ZeroDivisionError(f"probe bug for the sentry test ({len(dsn)})")

    async def close(self) -> None:
        return None


async def test_an_unexpected_probe_error_reaches_sentry_without_secrets(
    sentry_ingest: tuple[str, Received],
) -> None:
    url, received = sentry_ingest
    dsn = url.replace("http://", "http://publickey@") + "/42"
    assert telemetry.setup_sentry(SentryConfig.model_validate({"dsn": dsn}))
    store = ResultStore()
    try:
        await run_and_record(ExplodingProbe(), store, telemetry.tracer(None))
        await asyncio.to_thread(sentry_sdk.flush, 5)
    finally:
        sentry_sdk.init()  # back to no DSN for the rest of the session
    outcome = store.snapshot()[("cos", "main")].latest
    assert outcome is not None and outcome.reason is Reason.ERROR
    envelopes = b"\n".join(received.bodies).decode()
    assert "ZeroDivisionError" in envelopes and "probe bug for the sentry test" in envelopes
    events = [json.loads(line) for line in envelopes.splitlines() if '"exception"' in line]
    assert events and events[0]["release"].startswith("obsctl@")
    assert "hunter2-local" not in envelopes, "frame locals (which can hold DSNs) must not be sent"


async def test_every_probe_run_is_an_otlp_span(otlp_receiver: tuple[str, Received]) -> None:
    url, received = otlp_receiver
    provider = telemetry.setup_tracing(TracingConfig(otlp_endpoint=url))
    assert provider is not None
    store = ResultStore()
    try:
        for _ in range(2):
            await run_and_record(ExplodingProbe(), store, telemetry.tracer(provider))
        await asyncio.to_thread(provider.force_flush, 5000)
    finally:
        await asyncio.to_thread(provider.shutdown)
    spans = []
    for body in received.bodies:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "obsctl-exporter"
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    assert len(spans) == 2
    attributes = {a.key: a.value for a in spans[0].attributes}
    assert spans[0].name == "probe cos"
    assert attributes["obsctl.target"].string_value == "main"
    assert attributes["obsctl.reason"].string_value == "error"
    assert spans[0].status.code == 2  # STATUS_CODE_ERROR


def test_telemetry_is_off_by_default() -> None:
    assert telemetry.setup_sentry(SentryConfig()) is False
    assert telemetry.setup_tracing(TracingConfig()) is None
