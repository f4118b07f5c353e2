"""health-probes/obsctl-health against the stack's exporter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from obsctl.stack.fakes.launcher import free_port

from conftest import RunningStack, wait_for

SHIM = Path(__file__).resolve().parents[2] / "health-probes" / "obsctl-health"


def _shim(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OBSCTL_HEALTH_URL": url}
    return subprocess.run([str(SHIM), *args], capture_output=True, text=True, env=env, timeout=10)


def test_exit_codes_follow_health(stack: RunningStack) -> None:
    url = f"http://{stack.env['OBSCTL_LISTEN']}"
    wait_for("db healthy", lambda: _shim(url, "db").returncode == 0, timeout=30)
    beta = stack.env["PROVIDER_BETA_URL"]
    httpx.put(f"{beta}/_control", json={"mode": "down"}, timeout=2).raise_for_status()
    try:
        degraded = wait_for(
            "providers degraded", lambda: _shim(url, "providers").returncode == 1 or None, 30
        )
        assert degraded
    finally:
        httpx.put(f"{beta}/_control", json={"mode": "ok"}, timeout=2).raise_for_status()
    assert _shim(url, "kafka").returncode == 2
    assert _shim(f"http://127.0.0.1:{free_port()}").returncode == 2
