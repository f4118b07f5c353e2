"""A failed config reload of a real Prometheus and a real Alertmanager sets the very gauge
PrometheusBadConfig and AlertmanagerFailedReload read, and a good reload clears it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from obsctl.metric_names import AlertmanagerMetric, PrometheusMetric
from obsctl.stack.fakes.launcher import free_port

from conftest import stop_process, wait_for

pytestmark = pytest.mark.needs_tools("prometheus", "prometheus-alertmanager")

GOOD_PROMETHEUS = "global: {scrape_interval: 15s}\n"
GOOD_ALERTMANAGER = "route: {receiver: nobody}\nreceivers: [{name: nobody}]\n"
BROKEN = "route: [this is: not\n"


@contextmanager
def _server(argv: list[str]) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        stop_process(proc, timeout=15)


def _gauge(base: str, name: str) -> float | None:
    try:
        text = httpx.get(f"{base}/metrics", timeout=5).text
    except httpx.TransportError:
        return None
    values = [s.value for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == name]  # fmt: skip
    return values[0] if values else None


def _reload_sets_the_gauge(base: str, config: Path, good: str, name: str) -> None:
    wait_for(f"{name} to be 1 after start-up", lambda: _gauge(base, name) == 1, 30)
    config.write_text(BROKEN)
    answer = httpx.post(f"{base}/-/reload", timeout=10)
    assert answer.status_code >= 400, "a broken file is refused"
    assert _gauge(base, name) == 0, f"{name} reads the failed reload"
    config.write_text(good)
    assert httpx.post(f"{base}/-/reload", timeout=10).status_code == 200
    assert _gauge(base, name) == 1


def test_prometheus_reload_failure_is_what_prometheus_bad_config_reads(tmp_path: Path) -> None:
    config, port = tmp_path / "prometheus.yml", free_port()
    config.write_text(GOOD_PROMETHEUS)
    with _server(["prometheus", f"--config.file={config}", "--web.enable-lifecycle",
                  f"--storage.tsdb.path={tmp_path / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}"]):  # fmt: skip
        _reload_sets_the_gauge(f"http://127.0.0.1:{port}", config, GOOD_PROMETHEUS,
                               PrometheusMetric.CONFIG_RELOADED)  # fmt: skip


def test_alertmanager_reload_failure_is_what_its_alert_reads(tmp_path: Path) -> None:
    config, port = tmp_path / "alertmanager.yml", free_port()
    config.write_text(GOOD_ALERTMANAGER)
    with _server(["prometheus-alertmanager", f"--config.file={config}",
                  f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=",
                  f"--web.listen-address=127.0.0.1:{port}"]):  # fmt: skip
        _reload_sets_the_gauge(f"http://127.0.0.1:{port}", config, GOOD_ALERTMANAGER,
                               AlertmanagerMetric.CONFIG_RELOADED)  # fmt: skip
