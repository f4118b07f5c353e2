"""Every dashboard query against the real stack's Prometheus, with the demo workload running.

Queries are expanded as Grafana would (`$__rate_interval` -> 1m, template variables -> `.*` and
a real value, `$datasource` is the stack's Prometheus). Panels that are rightly empty on a healthy
system are filled by injecting the fault they show, through the demo platform's admin API.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from obsctl import metric_names
from obsctl.cli.dashboards import dashboards as dashboards_cli
from obsctl.mixin.config import load
from obsctl.mixin.dashboards import Dashboard, build_dashboards
from obsctl.mixin.dashboards.alert_path import DEADMAN_PANELS
from obsctl.mixin.dashboards.lint import KNOWN_METRICS, PROMETHEUS_METRICS, panels, queries
from obsctl.mixin.dashboards.panels import Fault
from obsctl.mixin.promql import series
from obsctl.snapshot.prometheus import Prometheus, QueryError, expand, time_range
from obsctl.snapshot.render_png import render_dashboards_png

from conftest import RunningStack, wait_for

pytestmark = pytest.mark.stack

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "obsctl.yaml"

CONFIG = load(DEMO_CONFIG)
RATE_INTERVAL = "1m"
DATA_TIMEOUT = 75.0
FAULT_TIMEOUT = 45.0
# A rate over 1m forgets a fault only a minute after it ends, plus a scrape and an evaluation.
CLEAR_TIMEOUT = 90.0
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    """One panel target, expanded for one choice of variable values."""

    board: str
    panel: str
    ref_id: str
    expr: str
    quiet: Fault | None


@pytest.fixture(scope="module")
def prometheus(stack: RunningStack) -> Iterator[Prometheus]:
    with Prometheus(stack.env["PROMETHEUS_URL"]) as client:
        yield client


@pytest.fixture(scope="module")
def boards() -> list[Dashboard]:
    return build_dashboards(CONFIG)


def _variable_values(board: Dashboard, prometheus: Prometheus) -> dict[str, list[str]]:
    """Each query variable's values, from its own label_values query."""
    found: dict[str, list[str]] = {}
    for variable in board.json["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        selector = expand(match.group("selector"), RATE_INTERVAL)
        label = match.group("label")
        options = prometheus.label_values(label, selector)
        # Values with recent samples first: a route another test called once has no rate now.
        live = {
            s.labels.get(label)
            for s in prometheus.query(f"sum by ({label}) (changes({selector}[2m])) > 0")
        }
        found[variable["name"]] = sorted(options, key=lambda value: value not in live)
    return found


def _panel_queries(board: Dashboard, choice: dict[str, str]) -> list[PanelQuery]:
    return [
        PanelQuery(
            board.key,
            panel["title"],
            target["refId"],
            expand(target["expr"], RATE_INTERVAL, choice),
            board.quiet.get(panel["title"]),
        )
        for panel in panels(board.json)
        for target in panel["targets"]
    ]


def _has_numbers(prometheus: Prometheus, expr: str) -> bool:
    return any(not math.isnan(s.last()) for s in prometheus.query(expr))


@pytest.fixture(scope="module")
def all_queries(boards: list[Dashboard], prometheus: Prometheus) -> list[PanelQuery]:
    """Every panel query with variables at All and at one real value each (once they exist)."""
    deadline = time.monotonic() + DATA_TIMEOUT
    values: dict[str, dict[str, list[str]]] = {}
    while time.monotonic() < deadline:
        values = {b.key: _variable_values(b, prometheus) for b in boards}
        if all(v for per_board in values.values() for v in per_board.values()):
            break
        time.sleep(1)
    found = []
    for board in boards:
        for name, options in values[board.key].items():
            assert options, f"{board.key}: variable ${name} has no values"
        found += _panel_queries(board, {})
        one = {name: options[0] for name, options in values[board.key].items()}
        if one:
            found += _panel_queries(board, one)
    return found


def _scrapes_a_deadman(prometheus: Prometheus) -> bool:
    """Whether the stack runs a dead man's switch its Prometheus scrapes (the demo names one)."""
    return bool(prometheus.query(series("up", CONFIG.selectors.deadman)))


def test_every_metric_the_dashboards_may_query_is_exposed(
    stack: RunningStack, prometheus: Prometheus
) -> None:
    """By some target of the stack's Prometheus: the API, the exporter, the relay, node_exporter,
    Prometheus, Alertmanager (and the dead man's switch, once the stack runs one)."""
    wanted = {CONFIG.job_name(job) for job in ("api", "exporter", "relay", "alertmanager",
                                               "prometheus", "node")}  # fmt: skip

    def discovered() -> list[dict[str, Any]] | None:
        # A Prometheus just started lists no targets until its first discovery sync (~5 s).
        active = httpx.get(f"{stack.env['PROMETHEUS_URL']}/api/v1/targets", timeout=5).json()
        targets = active["data"]["activeTargets"]
        return targets if wanted <= {t["labels"]["job"] for t in targets} else None

    targets = wait_for(f"Prometheus scraping {sorted(wanted)}", discovered, timeout=30)
    exposed: set[str] = set()
    for target in targets:
        text = httpx.get(target["scrapeUrl"], timeout=5).text
        exposed |= {
            line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()
        }
    expected = KNOWN_METRICS - PROMETHEUS_METRICS
    if not _scrapes_a_deadman(prometheus):
        expected -= metric_names.exposed((metric_names.DeadmanMetric,))
    # Alertmanager exports its cluster's series only with clustering on (the --ha topology).
    expected -= {metric_names.AlertmanagerMetric.CLUSTER_MEMBERS.value}
    assert exposed >= expected, sorted(expected - exposed)


def test_every_panel_query_runs_and_returns_data(
    all_queries: list[PanelQuery], prometheus: Prometheus
) -> None:
    """All panels except the rightly-empty ones return at least one number, within 75 s."""
    deadline = time.monotonic() + DATA_TIMEOUT
    # Until the stack runs a dead man's switch, the panels of its series are rightly empty.
    deadman = _scrapes_a_deadman(prometheus)
    required = [
        q
        for q in all_queries
        if q.quiet is None and (deadman or CONFIG.selectors.deadman not in q.expr)
    ]
    pending = list(required)
    while pending and time.monotonic() < deadline:
        still = []
        for query in pending:
            try:
                if not _has_numbers(prometheus, query.expr):
                    still.append(query)
            except QueryError as exc:
                pytest.fail(f"{query.board} / {query.panel} / {query.ref_id}: {exc}\n{query.expr}")
        pending = still
        if pending:
            time.sleep(2)
    assert not pending, "no data for:\n" + "\n".join(
        f"{q.board} / {q.panel} / {q.ref_id}: {q.expr}" for q in pending
    )
    for query in all_queries:
        if query not in required:
            prometheus.query(query.expr)  # runs without error, empty or not
    assert len({(q.board, q.panel) for q in all_queries}) >= 60


def test_annotation_queries_run(boards: list[Dashboard], prometheus: Prometheus) -> None:
    ran = 0
    for board in boards:
        for query in queries(board.json):
            if query.kind == "annotation":
                prometheus.query(expand(query.expr, RATE_INTERVAL))
                ran += 1
    # Every dashboard shows the firing alerts: one annotation query each, at least.
    assert len(boards) >= 6 and ran >= len(boards), (ran, len(boards))


def _admin(stack: RunningStack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.env["DEMO_APP_URL"],
        headers={"Authorization": f"Bearer {stack.env['DEMO_ADMIN_TOKEN']}"},
        timeout=10,
    )


def _faulted(prometheus: Prometheus, query: PanelQuery, queue: str) -> bool:
    """Whether a quiet panel shows the injected fault (and not only something else)."""
    shown = prometheus.query(query.expr)
    if query.quiet is Fault.CONFIG_CACHE_MISS_STORM:
        return any(not math.isnan(s.last()) for s in shown)
    if query.quiet is Fault.PROVIDER_TIMEOUT:
        return any(
            (s.labels["probe"], s.labels["target"], s.labels["reason"])
            == ("provider", "alpha", "timeout")
            for s in shown
        )
    return any(s.labels["queue"] == queue for s in shown)


def _wait_faulted(
    prometheus: Prometheus, quiet: list[PanelQuery], queue: str, faulted: bool
) -> list[PanelQuery]:
    """Poll until each quiet panel shows (or stops showing) the fault; the ones that did not."""
    deadline = time.monotonic() + (FAULT_TIMEOUT if faulted else CLEAR_TIMEOUT)
    pending = list(quiet)
    while pending and time.monotonic() < deadline:
        pending = [q for q in pending if _faulted(prometheus, q, queue) != faulted]
        if pending:
            time.sleep(1)
    return pending


def test_rightly_empty_panels_show_the_fault_they_are_for(
    stack: RunningStack, all_queries: list[PanelQuery], prometheus: Prometheus
) -> None:
    """Failure reasons fill on a provider timeout, paused queues on a paused queue, config
    origin load times on a config cache miss storm, and clear."""
    queue = "faceswap"
    pinned = re.compile(r'queue=~"([^"]*)"')
    quiet = [
        q
        for q in all_queries
        if q.quiet is not None and all(v in (".*", queue) for v in pinned.findall(q.expr))
    ]
    assert {q.quiet for q in quiet} == set(Fault)
    with _admin(stack) as admin:
        try:
            admin.put("/admin/providers/alpha", json={"mode": "timeout"}).raise_for_status()
            admin.post(f"/admin/queues/{queue}/pause").raise_for_status()
            admin.put("/admin/config-cache", json={"storm": True}).raise_for_status()
            missing = _wait_faulted(prometheus, quiet, queue, faulted=True)
            assert not missing, [f"{q.board} / {q.panel}: {q.expr}" for q in missing]
        finally:
            admin.put("/admin/providers/alpha", json={"mode": "ok"}).raise_for_status()
            admin.post(f"/admin/queues/{queue}/resume").raise_for_status()
            admin.put("/admin/config-cache", json={"storm": False}).raise_for_status()
    still = _wait_faulted(prometheus, quiet, queue, faulted=False)
    assert not still, [f"{q.board} / {q.panel} still shows the fault" for q in still]


def test_render_draws_every_dashboard_with_threshold_lines(
    stack: RunningStack, all_queries: list[PanelQuery], prometheus: Prometheus, tmp_path: Path
) -> None:
    out = tmp_path / "png"
    result = CliRunner().invoke(
        dashboards_cli,
        ["render", "--out", str(out), "--prometheus", stack.env["PROMETHEUS_URL"], "--from", "3m"],
    )
    assert result.exit_code == 0, result.output
    for key in ("overview", "api", "business", "queues", "dependencies", "database", "host"):
        picture = (out / f"{key}.png").read_bytes()
        assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) > 10_000, key
        assert f"{out / key}.png" in result.output

    window = time_range("3m", "now", None)
    drawn = {
        r.key: r
        for r in render_dashboards_png(
            build_dashboards(CONFIG), stack.env["PROMETHEUS_URL"], window, tmp_path / "again"
        )
    }
    without_deadman = set() if _scrapes_a_deadman(prometheus) else set(DEADMAN_PANELS)
    for board in drawn.values():
        assert board.errors == []
        assert all(
            p.quiet or p.title in without_deadman for p in board.panels if p.title in board.empty
        ), board.empty
    lines = {(k, p.title): p.thresholds for k, r in drawn.items() for p in r.panels}
    limits = CONFIG.thresholds
    assert lines[("api", "Latency P50 / P95 / P99")] == [limits.api_latency_p95_seconds]
    assert lines[("api", "5xx error ratio")] == [limits.api_error_ratio]
    assert lines[("queues", "Backlog by queue")] == [limits.queue_backlog_jobs]
    assert lines[("dependencies", "MySQL probe latency")] == [limits.mysql_probe_latency_seconds]
    assert lines[("business", "Task pass rate by provider")] == [limits.task_pass_rate]
    assert lines[("host", "Memory available")] == [limits.host_memory_available_ratio]
    assert lines[("host", "Filesystem free")] == [limits.host_disk_free_ratio]
