"""Provider heartbeat probe against the fake provider (which needs a key), in each of its modes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from obsctl.exporter.collector import build_registry
from obsctl.exporter.probes.base import ProbeOutcome, Reason, Status, run_bounded
from obsctl.exporter.probes.provider import ProviderConfig, ProviderProbe
from obsctl.exporter.probes.provider_answer import ExpectJson
from obsctl.exporter.results import ResultStore
from obsctl.exporter.server import build_app
from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake

API_KEY = "sk-test-alpha-0d9c8b7a6f5e4d3c"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TASK = {"feature": "matting", "input_url": "cos://demo/1.png", "client_task_id": "probe-1"}
# Classification, not timing: a loaded machine may take longer than 200 ms to answer.
RELAXED = {"timeout": "2s", "slow_threshold": "1s"}


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningFake]:
    fake = start_fake("obsctl.stack.fakes.provider", ["--name", "alpha", "--api-key", API_KEY])
    try:
        yield fake
    finally:
        fake.close()


def _config(provider: RunningFake, **keys: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": "alpha", "url": provider.base_url, **keys})


async def _outcome(config: ProviderConfig) -> ProbeOutcome:
    probe = ProviderProbe(config)
    try:
        return await run_bounded(probe)
    finally:
        await probe.close()


@pytest.fixture
async def probe(provider: RunningFake) -> AsyncIterator[ProviderProbe]:
    probe = ProviderProbe(_config(provider, headers=AUTH))
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


async def test_without_the_key_the_provider_is_down_with_http_401(provider: RunningFake) -> None:
    outcome = await _outcome(_config(provider, **RELAXED))

    assert outcome.status is Status.DOWN and outcome.reason is Reason.HTTP_STATUS
    assert outcome.detail is not None
    assert outcome.detail.startswith("HTTP 401 Unauthorized: the provider refused the request's")
    assert "headers sent: none" in outcome.detail


async def test_a_wrong_key_is_401_naming_the_header_but_never_its_value(
    provider: RunningFake,
) -> None:
    wrong = "Bearer sk-wrong-key-5a4b3c2d1e"
    outcome = await _outcome(_config(provider, headers={"Authorization": wrong}, **RELAXED))

    assert outcome.reason is Reason.HTTP_STATUS and outcome.detail is not None
    assert "HTTP 401" in outcome.detail and "headers sent: Authorization;" in outcome.detail
    assert "sk-wrong-key" not in repr(outcome)


async def test_the_key_may_go_in_x_api_key(provider: RunningFake) -> None:
    outcome = await _outcome(_config(provider, headers={"X-API-Key": API_KEY}, **RELAXED))
    assert outcome.status is Status.OK


async def test_the_expected_json_field_is_checked(provider: RunningFake) -> None:
    right = _config(provider, headers=AUTH, expect_json={"field": "status", "equals": "ok"})
    wrong = _config(
        provider, headers=AUTH, expect_json={"field": "status", "equals": "healthy"}, **RELAXED
    )
    missing = _config(
        provider, headers=AUTH, expect_json={"field": "data.status", "equals": "ok"}, **RELAXED
    )

    assert (await _outcome(right)).status is Status.OK
    mismatched = await _outcome(wrong)
    assert (mismatched.status, mismatched.reason) == (Status.DOWN, Reason.PROTOCOL)
    assert mismatched.detail == 'JSON field status is "ok", expected "healthy"'
    absent = await _outcome(missing)
    assert absent.reason is Reason.PROTOCOL
    assert absent.detail == (
        'JSON field data.status is missing (the answer has fields ["provider", "status"])'
    )


async def test_a_post_sends_its_json_body(provider: RunningFake) -> None:
    keys: dict[str, Any] = {"method": "post", "path": "/v1/tasks", "headers": AUTH, **RELAXED}
    accepted = _config(
        provider,
        body=TASK,
        expect_status=[202],
        expect_json={"field": "status", "equals": "processing"},
        **keys,
    )
    empty = _config(provider, body={"feature": "matting"}, expect_status=202, **keys)

    assert (await _outcome(accepted)).status is Status.OK
    refused = await _outcome(empty)
    assert refused.reason is Reason.HTTP_STATUS
    assert refused.detail == "HTTP 400 Bad Request, expected 202"


async def test_expect_status_decides_which_answers_are_up(provider: RunningFake) -> None:
    keys: dict[str, Any] = {"path": "/v1/tasks/alpha-unknown", "headers": AUTH, **RELAXED}

    assert (await _outcome(_config(provider, expect_status=[404], **keys))).status is Status.OK
    default = await _outcome(_config(provider, **keys))
    assert default.reason is Reason.HTTP_STATUS
    assert default.detail == "HTTP 404 Not Found, expected 2xx"
    heartbeat = await _outcome(_config(provider, headers=AUTH, expect_status=[204, 201], **RELAXED))
    assert heartbeat.detail == "HTTP 200 OK, expected 204 or 201"


async def test_head_needs_no_body(provider: RunningFake) -> None:
    outcome = await _outcome(_config(provider, method="HEAD", headers=AUTH, **RELAXED))
    assert outcome.status is Status.OK


async def test_the_key_is_never_in_an_outcome_a_log_or_a_served_body(
    provider: RunningFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = ResultStore()
    configs = {
        "ok": _config(provider, headers=AUTH, **RELAXED),
        "json": _config(
            provider, headers=AUTH, expect_json={"field": "provider", "equals": "x"}, **RELAXED
        ),
        "status": _config(provider, headers=AUTH, expect_status=[201], **RELAXED),
        "refused": ProviderConfig.model_validate(
            {"name": "refused", "url": f"http://127.0.0.1:{free_port()}", "headers": AUTH}
        ),
    }
    outcomes = []
    for target, config in configs.items():
        config = config.model_copy(update={"name": target})
        store.register("provider", target, 10)
        outcomes.append(await _outcome(config))
        store.record(outcomes[-1])
    _mode(provider, mode="error")
    try:
        outcomes.append(await _outcome(configs["ok"]))
    finally:
        _mode(provider, mode="ok")
    async with TestClient(TestServer(build_app(store, build_registry(store)))) as client:
        served = [await (await client.get(path)).text() for path in ("/metrics", "/health")]

    assert {o.status for o in outcomes} == {Status.OK, Status.DOWN}
    assert "provider" in served[0] and "refused" in served[1]
    for text in [*map(repr, outcomes), caplog.text, *served]:
        assert API_KEY not in text


@pytest.mark.parametrize("latency_ms", [300, 1500])
async def test_a_heartbeat_past_the_200ms_budget_is_degraded_not_down(
    probe: ProviderProbe, provider: RunningFake, latency_ms: int
) -> None:
    # The seed: a heartbeat that misses 200 ms reports "degrade"; only no answer is down.
    _mode(provider, mode="slow", latency_ms=latency_ms)
    outcome = await run_bounded(probe)
    assert outcome.status is Status.DEGRADED and outcome.reason is Reason.SLOW
    assert outcome.success


@pytest.mark.parametrize("mode", ["error", "down"])
async def test_error_answers_are_down_with_http_status(provider: RunningFake, mode: str) -> None:
    _mode(provider, mode=mode)
    try:
        outcome = await _outcome(_config(provider, headers=AUTH, **RELAXED))
    finally:
        _mode(provider, mode="ok", latency_ms=0)
    assert outcome.status is Status.DOWN and outcome.reason is Reason.HTTP_STATUS
    assert outcome.detail in (
        "HTTP 500 Internal Server Error, expected 2xx",
        "HTTP 503 Service Unavailable, expected 2xx",
    )


async def test_provider_that_never_answers_is_down_at_its_2s_timeout(
    probe: ProviderProbe, provider: RunningFake
) -> None:
    _mode(provider, mode="timeout")
    began = time.monotonic()
    outcome = await run_bounded(probe)
    elapsed = time.monotonic() - began
    assert outcome.reason is Reason.TIMEOUT and not outcome.success
    assert probe.budget == pytest.approx(1.9)  # the 2 s timeout, less the runner's margin
    assert outcome.detail == "no answer within 1.9s"
    assert 1.9 <= elapsed < 2.4, elapsed
    _mode(provider, mode="ok")
    recovered = await run_bounded(probe)
    assert recovered.status is Status.OK


async def test_nothing_listening_is_refused() -> None:
    config = ProviderConfig.model_validate(
        {"name": "gone", "url": f"http://127.0.0.1:{free_port()}"}
    )
    outcome = await _outcome(config)
    assert outcome.reason is Reason.REFUSED and not outcome.success


@pytest.mark.parametrize(
    ("field", "equals", "document", "problem"),
    [
        ("data.ok", True, {"data": {"ok": True}}, None),
        ("data.ok", True, {"data": {"ok": 1}}, "JSON field data.ok is 1, expected true"),
        ("count", 1, {"count": 1.0}, None),
        ("count", "1", {"count": 1}, 'JSON field count is 1, expected "1"'),
        ("state", None, {"state": None}, None),
        ("items.1.up", "yes", {"items": [{}, {"up": "yes"}]}, None),
        (
            "items.2.up",
            "yes",
            {"items": [{}]},
            "JSON field items.2.up is missing (items has 1 items)",
        ),
        ("data.ok", True, {"data": None}, "JSON field data.ok is missing (data is null)"),
        ("ok", True, ["ok"], "JSON field ok is missing (the answer is a list of 1)"),
        ("note", "x", {"note": "y" * 100}, f'JSON field note is "{"y" * 56}..., expected "x"'),
    ],
)
def test_the_json_field_check_follows_json_not_python(
    field: str, equals: Any, document: Any, problem: str | None
) -> None:
    assert ExpectJson(field=field, equals=equals).mismatch(document) == problem
