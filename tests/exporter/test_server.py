"""/metrics and /health served from the result store: shapes, status codes, promtool, speed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.metrics_core import GaugeMetricFamily

from obsctl.exporter.collector import build_registry
from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status
from obsctl.exporter.results import ResultStore
from obsctl.exporter.server import build_app


def _outcome(kind: str, target: str, status: Status, reason: Reason | None = None) -> ProbeOutcome:
    family = GaugeMetricFamily(f"demo_{kind}_value", "A value (cached).", labels=["target"])
    family.add_metric([target], 1.0)
    return ProbeOutcome(
        probe=kind,
        target=target,
        status=status,
        duration_seconds=0.0123,
        checked_at=time.time(),
        reason=reason,
        phases={"connect": 0.01},
        families=[family] if status is not Status.DOWN else [],
    )


@pytest.fixture
def store() -> ResultStore:
    store = ResultStore()
    for kind, target in [("mysql", "main"), ("redis", "main"), ("cos", "main"),
                         ("provider", "alpha"), ("provider", "beta")]:  # fmt: skip
        store.register(kind, target, 15)
    store.record(_outcome("mysql", "main", Status.OK))
    store.record(_outcome("redis", "main", Status.OK))
    store.record(_outcome("cos", "main", Status.OK))
    store.record(_outcome("provider", "alpha", Status.OK))
    store.record(_outcome("provider", "beta", Status.DOWN, Reason.TIMEOUT))
    return store


@pytest.fixture
async def client(store: ResultStore) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(build_app(store, build_registry(store)))) as client:
        yield client


async def test_health_group_ok_is_200_with_the_documented_shape(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/health/db")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    db = body["deps"]["db"]
    assert db["ok"] is True and db["reason"] is None and db["latency_ms"] == pytest.approx(12.3)
    assert db["checked_at"].endswith("Z")


async def test_a_down_provider_makes_providers_and_overall_503(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/health/providers")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["deps"]["provider:beta"] == {**body["deps"]["provider:beta"], "ok": False,
                                             "reason": "timeout", "status": "down"}  # fmt: skip
    assert body["deps"]["provider:alpha"]["ok"] is True
    overall = await client.get("/health")
    assert overall.status == 503
    whole = await overall.json()
    assert set(whole["deps"]) == {"db", "redis", "cos", "provider:alpha", "provider:beta"}
    assert whole["version"] and whole["uptime_seconds"] >= 0


async def test_unknown_health_group_is_404(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/health/kafka")
    assert response.status == 404
    assert "/health/db" in (await response.json())["error"]


async def test_a_target_never_checked_is_not_ok() -> None:
    store = ResultStore()
    store.register("redis", "main", 15)
    async with TestClient(TestServer(build_app(store, build_registry(store)))) as client:
        response = await client.get("/health/redis")
        body = await response.json()
    assert response.status == 503
    assert body["deps"]["redis"]["reason"] == "not_checked_yet"


async def test_stale_results_are_reported_as_stale() -> None:
    store = ResultStore()
    store.register("cos", "main", 1)
    old = _outcome("cos", "main", Status.OK)
    store.record(ProbeOutcome(**{**old.__dict__, "checked_at": time.time() - 60}))
    async with TestClient(TestServer(build_app(store, build_registry(store)))) as client:
        body = await (await client.get("/health/cos")).json()
    assert body["deps"]["cos"]["ok"] is False and body["deps"]["cos"]["reason"] == "stale"


async def test_metrics_have_generic_series_and_probe_families(client: TestClient) -> None:  # type: ignore[type-arg]
    text = await (await client.get("/metrics")).text()
    assert 'obsctl_probe_success{probe="provider",target="beta"} 0.0' in text
    assert 'obsctl_probe_success{probe="mysql",target="main"} 1.0' in text
    assert (
        'obsctl_probe_failure_reason{probe="provider",reason="timeout",target="beta"} 1.0' in text
    )
    assert 'obsctl_probe_status{probe="provider",status="down",target="beta"} 1.0' in text
    assert 'obsctl_probe_runs_total{probe="mysql",target="main"} 1.0' in text
    assert 'obsctl_probe_failures_total{probe="provider",target="beta"} 1.0' in text
    assert 'demo_mysql_value{target="main"} 1.0' in text
    assert "process_resident_memory_bytes" in text


@pytest.mark.needs_tools("promtool")
async def test_metrics_pass_promtool_check_metrics(client: TestClient) -> None:  # type: ignore[type-arg]
    text = await (await client.get("/metrics")).text()
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_health_answers_in_well_under_5ms(client: TestClient) -> None:  # type: ignore[type-arg]
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        response = await client.get("/health")
        await response.read()
        timings.append(time.perf_counter() - began)
    timings.sort()
    assert timings[len(timings) // 2] < 0.005, timings
