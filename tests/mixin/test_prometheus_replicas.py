"""Prometheus replicas from one generated file: each names itself, both remote_write to a store,
and Alertmanager sees their alerts as one (real Prometheus, a real receiver, real Alertmanager)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from obsctl.configfile import ConfigError
from obsctl.mixin.config import MixinConfig, load
from obsctl.mixin.prometheus_config import (
    CONFIG_PATH,
    REPLICA_ENV,
    render_prometheus,
    run_flags,
)
from obsctl.stack.fakes.launcher import free_port

from conftest import demo_config, stop_process, wait_for

pytestmark = pytest.mark.needs_tools("prometheus", "promtool", "prometheus-alertmanager")

NOTIFICATIONS_SENT = "prometheus_notifications_sent_total"
ALWAYS = """groups:
- name: replicas-test
  rules:
  - alert: ReplicaTestAlwaysFiring
    expr: vector(1)
    labels: {severity: info, team: sre}
"""


def _with(config: MixinConfig, **prometheus: Any) -> MixinConfig:
    raw = config.model_dump(by_alias=True, mode="json", exclude_unset=False)
    raw["prometheus"].update(prometheus)
    return MixinConfig.model_validate(raw)


def _store(url: str) -> dict[str, Any]:
    return {"name": "longterm", "url": url, "headers": {"X-Scope-OrgID": "image-saas"},
            "queue": {"capacity": 5000, "batch_send_deadline": "1s"}}  # fmt: skip


def test_replicas_name_themselves_and_alerts_drop_the_name() -> None:
    config = _with(demo_config(), replica_label="replica",
                   remote_write=[_store("https://mimir.example.com/api/v1/push")])  # fmt: skip
    text = render_prometheus(config)[CONFIG_PATH]
    document = yaml.safe_load(text)
    assert document["global"]["external_labels"] == {"replica": f"${{{REPLICA_ENV}}}"}
    assert document["alerting"]["alert_relabel_configs"] == [
        {"action": "labeldrop", "regex": "replica"}
    ]
    [store] = document["remote_write"]
    assert store["headers"] == {"X-Scope-OrgID": "image-saas"}
    assert store["queue_config"]["batch_send_deadline"] == "1s"
    assert "--enable-feature=expand-external-labels" in run_flags(config)
    assert "--enable-feature=expand-external-labels" in text.splitlines()[1], "the header says"
    without = render_prometheus(demo_config())[CONFIG_PATH]
    assert "remote_write" not in yaml.safe_load(without) and "expand-external" not in without


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"replica_label": "replica", "external_labels": {"replica": "a"}}, "replica_label"),
        ({"remote_write": [_store("https://a/push"), _store("https://b/push")]}, "names must"),
        (
            {
                "remote_write": [
                    {
                        **_store("https://a/push"),
                        "basic_auth": {"username": "u", "password_file": "/p"},
                        "bearer_token_file": "/t",
                    }
                ]
            },
            "one way",
        ),
        ({"remote_write": [{**_store("https://a/push"), "queu": {}}]}, "queu"),
        ({"remote_write": [_store("mimir:9009/push")]}, "url"),
    ],
)
def test_a_bad_replica_or_store_setting_is_refused(
    settings: dict[str, Any], problem: str, tmp_path: Path
) -> None:
    raw = yaml.safe_load((Path(__file__).parents[2] / "obsctl.yaml").read_text())
    raw["prometheus"].update(settings)
    path = tmp_path / "obsctl.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert problem in "\n".join(caught.value.problems)


def test_the_generated_file_with_a_store_passes_promtool(tmp_path: Path) -> None:
    config = _with(demo_config(), replica_label="replica",
                   remote_write=[_store("https://mimir.example.com/api/v1/push")])  # fmt: skip
    _write(config, tmp_path)
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(tmp_path / CONFIG_PATH)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _write(config: MixinConfig, project: Path) -> None:
    for relative, text in render_prometheus(config).items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)


@contextmanager
def _running(argv: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})  # fmt: skip
    try:
        yield
    finally:
        stop_process(proc, timeout=15)


def _query(base: str, promql: str) -> list[dict[str, Any]] | None:
    try:
        body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    except (httpx.TransportError, ValueError):
        return None
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _sent(base: str) -> float:
    """Alerts a Prometheus has sent, from its own /metrics (it does not scrape itself here)."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == NOTIFICATIONS_SENT
    )


def test_two_replicas_write_to_the_store_and_page_once(tmp_path: Path) -> None:
    store_port, am_port, a_port, b_port = (free_port() for _ in range(4))
    store, alertmanager = f"http://127.0.0.1:{store_port}", f"127.0.0.1:{am_port}"
    demo = demo_config()
    # The demo's other jobs stay (the config requires them); their targets simply go unscraped.
    targets = {**demo.prometheus.targets, "prometheus": [f"127.0.0.1:{store_port}"],
               "alertmanager": [alertmanager]}  # fmt: skip
    config = _with(
        demo,
        scrape_interval="1s",
        evaluation_interval="1s",
        replica_label="replica",
        remote_write=[_store(f"{store}/api/v1/write")],
        targets=targets,
    )
    project = tmp_path / "project"
    _write(config, project)
    (project / "alert-rules").mkdir()
    (project / "alert-rules" / "replicas.rules.yml").write_text(ALWAYS)
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text("route: {receiver: nobody, group_wait: 1s}\nreceivers: [{name: nobody}]\n")

    def prometheus(name: str, port: int, *extra: str) -> list[str]:
        return ["prometheus", f"--config.file={project / CONFIG_PATH}",
                f"--storage.tsdb.path={tmp_path / name}",
                f"--web.listen-address=127.0.0.1:{port}", *extra]  # fmt: skip

    (tmp_path / "store.yml").write_text("global: {}\n")
    with ExitStack() as running:
        running.enter_context(_running([
            "prometheus", f"--config.file={tmp_path / 'store.yml'}",
            f"--storage.tsdb.path={tmp_path / 'store'}",
            f"--web.listen-address=127.0.0.1:{store_port}",
            "--web.enable-remote-write-receiver",
        ]))  # fmt: skip
        running.enter_context(_running([
            "prometheus-alertmanager", f"--config.file={am_config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address={alertmanager}", "--cluster.listen-address=",
        ]))  # fmt: skip
        for name, port in (("a", a_port), ("b", b_port)):
            argv = prometheus(name, port, *run_flags(config))
            running.enter_context(_running(argv, {REPLICA_ENV: name}))

        def both_replicas_stored() -> set[str] | None:
            found = _query(store, 'count by (replica) (up{job="prometheus"})')
            replicas = {r["metric"].get("replica", "") for r in found or []}
            return replicas if replicas == {"a", "b"} else None

        wait_for("the store to hold series from both replicas", both_replicas_stored, 60)

        def both_sent() -> list[float] | None:
            sent = [_sent(f"http://127.0.0.1:{port}") for port in (a_port, b_port)]
            return sent if all(sent) else None

        wait_for("both replicas to send the alert", both_sent, 60)
        alerts = httpx.get(f"http://{alertmanager}/api/v2/alerts", timeout=5).json()
    firing = [a for a in alerts if a["labels"]["alertname"] == "ReplicaTestAlwaysFiring"]
    assert len(firing) == 1, f"one alert from two replicas, got {firing}"
    assert "replica" not in firing[0]["labels"]
