"""The exporter the stack runs: scraped by Prometheus, clean for promtool, healthy, complete."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from conftest import RunningStack, wait_for

FEATURES = ("matting", "outfit", "faceswap", "outpaint")
STATES = ("waiting", "active", "delayed", "prioritized", "paused", "failed", "completed")


def _exporter(stack: RunningStack) -> str:
    return f"http://{stack.env['OBSCTL_LISTEN']}"


def _query(stack: RunningStack, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(
        f"{stack.env['PROMETHEUS_URL']}/api/v1/query", params={"query": expr}, timeout=5
    ).json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_health_is_ok_for_every_dependency_of_the_stack(stack: RunningStack) -> None:
    def healthy() -> dict[str, Any] | None:
        response = httpx.get(f"{_exporter(stack)}/health", timeout=2)
        return response.json() if response.status_code == 200 else None

    body = wait_for("the exporter's /health to be ok", healthy, timeout=30)
    assert set(body["deps"]) == {"db", "redis", "cos", "provider:alpha", "provider:beta"}


@pytest.mark.needs_tools("promtool")
def test_metrics_pass_promtool_check_metrics(stack: RunningStack) -> None:
    wait_for(
        "business metrics on /metrics",
        lambda: "task_created_total" in httpx.get(f"{_exporter(stack)}/metrics", timeout=2).text,
    )
    text = httpx.get(f"{_exporter(stack)}/metrics", timeout=2).text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_exporter_with_every_queue_state(stack: RunningStack) -> None:
    wait_for(
        "up{job='obsctl-exporter'} == 1", lambda: _query(stack, 'up{job="obsctl-exporter"} == 1')
    )

    def demo_queue_series() -> list[dict[str, Any]] | None:
        found = _query(stack, 'bullmq_queue_jobs{prefix="bull"}')
        return [s for s in found if s["metric"]["queue"] in FEATURES] or None

    series = wait_for("bullmq_queue_jobs for the demo queues", demo_queue_series, timeout=30)
    pairs = {(s["metric"]["queue"], s["metric"]["state"]) for s in series}
    assert {(q, st) for q in FEATURES for st in STATES} <= pairs
    wait_for(
        "tasks counted as created by the exporter",
        lambda: _query(stack, "sum(task_created_total) > 0"),
        timeout=40,
    )
    assert _query(stack, 'obsctl_probe_success{probe="mysql"} == 1')
