"""The project's generated prometheus.yml: file_sd targets per job, its rules, its Alertmanagers,
loaded by a real Prometheus that scrapes the local stack with it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from obsctl.mixin.generate import render
from obsctl.mixin.prometheus_config import CONFIG_PATH, render_prometheus
from obsctl.stack.fakes.launcher import free_port

from conftest import DEMO_PROJECT, RunningStack, demo_config, wait_for

pytestmark = pytest.mark.needs_tools("prometheus", "promtool")


def test_each_job_reads_its_own_target_file_and_a_host_is_one_line() -> None:
    config = demo_config()
    files = render_prometheus(config)
    document = yaml.safe_load(files[CONFIG_PATH])

    jobs = {
        job["job_name"]: job["file_sd_configs"][0]["files"] for job in document["scrape_configs"]
    }
    assert jobs["demo-app"] == ["targets/api.yml"], "the api job is named by selectors.api"
    assert jobs["obsctl-relay"] == ["targets/relay.yml"]
    assert document["rule_files"] == ["../alert-rules/*.rules.yml"]
    assert "--storage.tsdb.retention.time=35d" in files[CONFIG_PATH]
    more = config.prometheus.model_copy(
        update={"targets": {**config.prometheus.targets, "api": ["a:1", "b:2"]}}
    )
    grown = render(config.model_copy(update={"prometheus": more}))
    before = render(config)
    assert {p for p in before if before[p] != grown[p]} == {"prometheus/targets/api.yml"}


def test_a_real_prometheus_scrapes_the_stack_with_the_generated_config(
    stack: RunningStack, tmp_path: Path
) -> None:
    def address(url: str) -> str:
        return urlsplit(url).netloc

    config = demo_config()
    local = config.prometheus.model_copy(
        update={
            "scrape_interval": 1.0,
            "evaluation_interval": 1.0,
            "targets": {
                "api": [address(stack.env["DEMO_APP_URL"])],
                "exporter": [stack.env["OBSCTL_LISTEN"]],
                "relay": [address(stack.env["RELAY_URL"])],
                "alertmanager": [address(stack.env["ALERTMANAGER_URL"])],
            },
        }
    )
    project = tmp_path / "project"
    for relative, text in render_prometheus(
        config.model_copy(update={"prometheus": local})
    ).items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    shutil.copytree(DEMO_PROJECT / "alert-rules", project / "alert-rules")
    port = free_port()
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={project / CONFIG_PATH}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> dict[str, float] | None:
            try:
                found = httpx.get(f"{base}/api/v1/query", params={"query": "up"}).json()
            except (httpx.TransportError, ValueError):
                return None
            values = {r["metric"]["job"]: float(r["value"][1]) for r in found["data"]["result"]}
            return values if len(values) == 4 and all(values.values()) else None

        jobs = wait_for("every generated job to be up", up, timeout=60)
        rules = httpx.get(f"{base}/api/v1/rules").json()["data"]["groups"]
        managers = httpx.get(f"{base}/api/v1/alertmanagers").json()["data"]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=10)
    assert set(jobs) == {"demo-app", "obsctl-exporter", "obsctl-relay", "alertmanager"}
    assert sum(len(group["rules"]) for group in rules) > 30, "the project's rules are loaded"
    assert [m["url"] for m in managers["activeAlertmanagers"]] == [
        f"{stack.env['ALERTMANAGER_URL']}/api/v2/alerts"
    ]
