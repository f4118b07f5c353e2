"""`obsctl probe`: one-shot probes from the command line, against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from conftest import RunningStack


def _probe(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsctl", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **stack.env},
    )


def test_every_dependency_of_a_healthy_stack_is_ok(stack: RunningStack) -> None:
    result = _probe(stack, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)
    assert {(r["probe"], r["target"]) for r in rows} >= {
        ("mysql", "main"), ("redis", "main"), ("cos", "main"), ("bullmq", "bull"),
        ("business", "platform"), ("provider", "alpha"), ("provider", "beta"),
    }  # fmt: skip
    assert all(r["status"] in ("ok", "degraded") for r in rows), rows


def test_a_provider_outage_exits_1_and_names_the_reason(stack: RunningStack) -> None:
    beta = stack.env["PROVIDER_BETA_URL"]
    httpx.put(f"{beta}/_control", json={"mode": "down"}, timeout=2).raise_for_status()
    try:
        result = _probe(stack, "provider")
    finally:
        httpx.put(f"{beta}/_control", json={"mode": "ok"}, timeout=2).raise_for_status()
    assert result.returncode == 1
    beta_line = next(line for line in result.stdout.splitlines() if " beta " in line)
    assert "down" in beta_line and "http_status" in beta_line
    assert "mysql" not in result.stdout, "only the selected probes run"


def test_an_unknown_target_is_a_usage_error(stack: RunningStack) -> None:
    result = _probe(stack, "kafka")
    assert result.returncode == 2
    assert "no probe matches kafka" in result.stderr and "provider:alpha" in result.stderr
