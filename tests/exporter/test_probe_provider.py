"""Provider heartbeat probe against the fake provider, in each of its failure modes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from obsctl.exporter.probes.base import Reason, Status, run_bounded
from obsctl.exporter.probes.provider import ProviderConfig, ProviderProbe
from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningFake]:
    fake = start_fake("obsctl.stack.fakes.provider", ["--name", "alpha"])
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
async def probe(provider: RunningFake) -> AsyncIterator[ProviderProbe]:
    config = ProviderConfig.model_validate({"name": "alpha", "url": provider.base_url})
    probe = ProviderProbe(config)
    try:
        yield probe
    finally:
        httpx.put(f"{provider.base_url}/_control", json={"mode": "ok", "latency_ms": 0})
        await probe.close()


def _mode(provider: RunningFake, **state: object) -> None:
    httpx.put(f"{provider.base_url}/_control", json=state, timeout=2).raise_for_status()


async def test_healthy_provider_is_ok(probe: ProviderProbe) -> None:
    outcome = await run_bounded(probe)
    assert outcome.status is Status.OK and outcome.reason is None
    assert outcome.duration_seconds < 0.2
    assert "heartbeat" in outcome.phases


async def test_slow_provider_is_degraded(probe: ProviderProbe, provider: RunningFake) -> None:
    _mode(provider, mode="slow", latency_ms=130)
    outcome = await run_bounded(probe)
    assert outcome.status is Status.DEGRADED and outcome.reason is Reason.SLOW
    assert outcome.success


@pytest.mark.parametrize("mode", ["error", "down"])
async def test_error_answers_are_down_with_http_status(provider: RunningFake, mode: str) -> None:
    # Classification, not timing: a loaded machine may take longer than 200 ms to answer.
    config = {"name": "alpha", "url": provider.base_url, "timeout": "2s", "slow_threshold": "1s"}
    probe = ProviderProbe(ProviderConfig.model_validate(config))
    _mode(provider, mode=mode)
    try:
        outcome = await run_bounded(probe)
    finally:
        _mode(provider, mode="ok", latency_ms=0)
        await probe.close()
    assert outcome.status is Status.DOWN and outcome.reason is Reason.HTTP_STATUS
    assert outcome.detail in ("HTTP 500", "HTTP 503")


async def test_provider_that_never_answers_times_out_within_200ms(
    probe: ProviderProbe, provider: RunningFake
) -> None:
    _mode(provider, mode="timeout")
    began = time.monotonic()
    outcome = await run_bounded(probe)
    elapsed = time.monotonic() - began
    assert outcome.reason is Reason.TIMEOUT and not outcome.success
    assert elapsed < 0.3, elapsed
    _mode(provider, mode="ok")
    recovered = await run_bounded(probe)
    assert recovered.status is Status.OK


async def test_nothing_listening_is_refused() -> None:
    config = ProviderConfig.model_validate(
        {"name": "gone", "url": f"http://127.0.0.1:{free_port()}"}
    )
    probe = ProviderProbe(config)
    try:
        outcome = await run_bounded(probe)
    finally:
        await probe.close()
    assert outcome.reason is Reason.REFUSED and not outcome.success
