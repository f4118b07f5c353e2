"""`obsctl check app`: the demo platform holds to the metric contract; broken copies do not.

The broken copies are the demo's own live /metrics text, edited one way each and served from
a local HTTP server. The PM2 case is a real Node cluster (what PM2 cluster mode runs) of the
demo's own metrics code and prom-client.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from obsctl.stack.fakes.launcher import free_port
from obsctl.stack.install import DEMO_PLATFORM_DIR

from conftest import RunningStack, obsctl, wait_for

REPO = Path(__file__).resolve().parents[2]
TEXT = "text/plain; version=0.0.4; charset=utf-8"
HTTP = "http_request_duration_seconds"
CLUSTER_JS = Path(__file__).resolve().parents[1] / "fixtures" / "prom_cluster" / "cluster.js"
# A static page: two scrapes without a pause are enough for the one-registry check.
QUICK = ("--scrapes", "2", "--interval", "0")


@dataclass(frozen=True)
class Page:
    """What the local server answers to every GET."""

    body: str
    content_type: str = TEXT
    status: int = 200
    token: str = ""  # when set, only `Authorization: Bearer <token>` gets the body


@contextmanager
def serve(page: Page) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering page; yields its /metrics URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = page.status
            if page.token and self.headers.get("Authorization") != f"Bearer {page.token}":
                status = 401
            body = page.body.encode() if status == 200 else b"no\n"
            self.send_response(status)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def check(url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run `obsctl check app url --json`, then the same for people: (exit code, JSON, lines)."""
    as_json = obsctl("check", "app", url, "--json", *args)
    lines = obsctl("check", "app", url, *args)
    assert as_json.returncode == lines.returncode, (as_json.stderr, lines.stderr)
    report = json.loads(as_json.stdout) if as_json.stdout.strip() else {}
    return as_json.returncode, report, lines.stdout + lines.stderr


def violations(report: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, subject) of every violation of a JSON report."""
    return {(v["kind"], v["subject"]) for c in report["checks"] for v in c["violations"]}


@pytest.fixture(scope="module")
def demo_text(stack: RunningStack) -> str:
    """The demo platform's live /metrics, once its workload has requested the usual routes."""
    url = f"{stack.env['DEMO_APP_URL']}/metrics"

    def ready() -> str | None:
        text = httpx.get(url, timeout=5).text
        wanted = ('route="/api/tasks/:id"', 'route="/api/tasks"', 'status_code="200"')
        return text if all(w in text for w in wanted) else None

    return wait_for("the demo workload's requests in /metrics", ready, timeout=60)


@pytest.mark.stack
def test_the_demo_platform_holds_to_the_contract(stack: RunningStack) -> None:
    url = f"{stack.env['DEMO_APP_URL']}/metrics"
    code, report, lines = check(url, "--interval", "0.5")
    assert code == 0, lines
    assert (report["command"], report["target"], report["ok"]) == ("check app", url, True)
    assert {c["status"] for c in report["checks"]} == {"ok"}, lines
    assert "contract holds" in lines
    assert "ok    http_request_duration_seconds: histogram {route, status_code}" in lines
    assert "buckets at 0.2s (ApiHighLatencyP95)" in lines


def _drop_family(text: str, name: str) -> str:
    own = re.compile(rf"^(?:# (?:HELP|TYPE) )?{name}(?:_bucket|_count|_sum)?[ {{]")
    return "\n".join(line for line in text.splitlines() if not own.match(line)) + "\n"


def _edit_http(text: str, edit: Callable[[str], str]) -> str:
    return (
        "\n".join(edit(line) if line.startswith(HTTP) else line for line in text.splitlines())
        + "\n"
    )


def _many_users(text: str) -> str:
    family = "app_requests_by_user_total"
    lines = [f"# HELP {family} Requests per user.", f"# TYPE {family} counter"]
    lines += [f'{family}{{user_id="u{i}"}} 1' for i in range(150)]
    return text + "\n".join(lines) + "\n"


BROKEN: dict[str, tuple[Callable[[str], str], set[tuple[str, str]], str]] = {
    "a metric dropped": (
        lambda t: _drop_family(t, "db_pool_connections_pending"),
        {("missing_metric", "db_pool_connections_pending")},
        "missing metric db_pool_connections_pending",
    ),
    "no route label": (
        lambda t: _edit_http(t, lambda line: re.sub(r'route="[^"]*",?', "", line)),
        {("missing_label", f"{HTTP}.route")},
        f"missing label route on {HTTP}",
    ),
    "no 0.2 s bucket": (
        lambda t: "\n".join(x for x in t.splitlines() if f'{HTTP}_bucket{{le="0.2",' not in x),
        {("missing_bucket", HTTP)},
        f'missing bucket le="0.2" on {HTTP}, so ApiHighLatencyP95 cannot be exact',
    ),
    "a counter without _total": (
        lambda t: t.replace("process_cpu_seconds_total", "process_cpu_seconds"),
        {
            ("counter_without_total", "process_cpu_seconds"),
            ("missing_metric", "process_cpu_seconds_total"),
        },
        "counter process_cpu_seconds has no _total suffix",
    ),
    "raw URLs as routes": (
        lambda t: t.replace('route="/api/tasks/:id"', 'route="/api/tasks/12345"').replace(
            'route="/api/tasks"', 'route="/api/tasks?user_id=7&limit=20"'
        ),
        {("raw_label_value", f"{HTTP}.route")},
        f"label route of {HTTP} holds raw URLs or ids",
    ),
    "a gauge served untyped": (
        lambda t: t.replace(
            "# TYPE db_pool_connections_max gauge", "# TYPE db_pool_connections_max untyped"
        ),
        {("wrong_type", "db_pool_connections_max")},
        "wrong type: unknown, not gauge",
    ),
    "status codes as words": (
        lambda t: _edit_http(t, lambda line: line.replace('status_code="200"', 'status_code="OK"')),
        {("bad_label_value", f"{HTTP}.status_code")},
        "'OK'",
    ),
    "a label per user": (
        _many_users,
        {("too_many_label_values", "app_requests_by_user_total.user_id")},
        "label user_id of app_requests_by_user_total has 150 distinct values",
    ),
}


@pytest.mark.stack
@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_copy_is_named(demo_text: str, case: str) -> None:
    edit, expected, phrase = BROKEN[case]
    broken = edit(demo_text)
    assert broken != demo_text
    with serve(Page(broken)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 1, lines
    assert violations(report) == expected, lines
    assert phrase in lines
    assert "expected" in lines and "fix" in lines


@pytest.mark.stack
def test_the_missing_bucket_names_its_threshold_and_neighbours(demo_text: str) -> None:
    edit = BROKEN["no 0.2 s bucket"][0]
    with serve(Page(edit(demo_text))) as url:
        _, report, _ = check(url, *QUICK)
    (violation,) = [v for c in report["checks"] for v in c["violations"]]
    assert "thresholds.api_latency_p95_seconds = 0.2s" in violation["expected"]
    assert "interpolates between 0.1 and 0.3" in violation["found"]
    assert "add 0.2 to the histogram's buckets" in violation["fix"]


@pytest.mark.stack
def test_the_buckets_follow_the_projects_thresholds(demo_text: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    demo = yaml.safe_load((REPO / "obsctl.yaml").read_text())
    demo["thresholds"]["api_latency_p95_seconds"] = 0.25
    (project / "obsctl.yaml").write_text(yaml.safe_dump(demo))
    demo["thresholds"]["api_latency_p95_seconds"] = 0.4
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(demo))
    with serve(Page(demo_text)) as url:
        code, report, lines = check(url, *QUICK, "--project", str(project))
        by_config = obsctl("check", "app", url, *QUICK, "--config", str(other))
    assert code == 1, lines
    assert violations(report) == {("missing_bucket", HTTP)}
    assert 'le="0.25"' in lines
    assert f"thresholds from {project / 'obsctl.yaml'}" in lines
    assert by_config.returncode == 1
    assert 'le="0.4"' in by_config.stdout


@pytest.mark.stack
def test_a_histogram_without_series_is_not_verified_but_does_not_fail(demo_text: str) -> None:
    without = "\n".join(
        line for line in demo_text.splitlines() if not re.match(rf"{HTTP}_(bucket|count|sum)", line)
    )
    with serve(Page(without)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 0, lines
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop(HTTP) == "warn"
    assert set(statuses.values()) == {"ok"}
    assert "not verified" in lines


@pytest.mark.stack
def test_a_platform_without_breakers_is_warned_not_failed(demo_text: str) -> None:
    without = demo_text
    for family in ("state", "opens_total", "calls_total", "fallbacks_total"):
        without = _drop_family(without, f"circuit_breaker_{family}")
    assert "circuit_breaker" not in without
    with serve(Page(without)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 0, lines
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop("circuit_breaker_state") == "warn"
    counters = ("opens", "calls", "fallbacks")
    assert {statuses.pop(f"circuit_breaker_{f}_total") for f in counters} == {"warn"}
    assert set(statuses.values()) == {"ok"}, lines
    assert "without circuit breakers around the provider calls" in lines
    assert "CircuitBreakerOpen" in lines and "opossum" in lines
    # A breaker family served with the wrong type still fails.
    untyped = demo_text.replace(
        "# TYPE circuit_breaker_state gauge", "# TYPE circuit_breaker_state untyped"
    )
    with serve(Page(untyped)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 1 and violations(report) == {("wrong_type", "circuit_breaker_state")}, lines


@pytest.mark.stack
def test_a_platform_without_dead_letters_is_warned_not_failed(demo_text: str) -> None:
    families = ("bullmq_job_retries_total", "bullmq_jobs_dead_lettered_total")
    assert all(f"# TYPE {family} counter" in demo_text for family in families)
    without = demo_text
    for family in families:
        without = _drop_family(without, family)
    with serve(Page(without)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 0, lines
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert {statuses.pop(family) for family in families} == {"warn"}
    assert set(statuses.values()) == {"ok"}, lines
    assert "without retries and a dead-letter queue for the task jobs" in lines
    assert "DeadLetterJobsGrowing" in lines


@pytest.mark.stack
def test_a_platform_without_a_config_cache_is_warned_not_failed(demo_text: str) -> None:
    families = (
        "config_cache_lookups_total",
        "config_cache_origin_load_duration_seconds",
        "config_cache_invalidations_total",
        "config_cache_invalidation_subscribed",
    )
    without = demo_text
    for family in families:
        without = _drop_family(without, family)
    assert "config_cache" not in without
    with serve(Page(without)) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 0, lines
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert {statuses.pop(f) for f in families} == {"warn"}
    assert set(statuses.values()) == {"ok"}, lines
    assert "without a feature config cache (local LRU and Redis)" in lines
    assert "ConfigCacheHitRatioLow" in lines


@pytest.mark.stack
def test_a_header_is_sent_and_never_shown(demo_text: str) -> None:
    token = "s3cret-token-value"
    with serve(Page(demo_text, token=token)) as url:
        refused = obsctl("check", "app", url, *QUICK)
        allowed = obsctl("check", "app", url, *QUICK, "--header", f"Authorization: Bearer {token}")
    assert refused.returncode == 2
    assert "answered HTTP 401" in refused.stderr and "--header" in refused.stderr
    assert allowed.returncode == 0, allowed.stdout
    assert token not in refused.stdout + refused.stderr + allowed.stdout + allowed.stderr


@pytest.mark.stack
def test_credentials_in_the_url_are_never_shown(demo_text: str) -> None:
    with serve(Page(demo_text)) as url:
        with_password = url.replace("http://", "http://scraper:pa55word@") + "?token=t0ken"
        code, report, lines = check(with_password, *QUICK)
    assert code == 0, lines
    assert report["target"] == url
    assert "pa55word" not in lines and "t0ken" not in lines


@pytest.mark.needs_tools("node")
def test_openmetrics_from_prom_client_is_read(tmp_path: Path) -> None:
    """The demo's metrics code with prom-client switched to OpenMetrics, one request observed."""
    script = """
      const client = require('prom-client');
      const { EventEmitter } = require('events');
      const { createMetrics } = require('./src/metrics');
      const { registry, httpMiddleware } = createMetrics(
        { getPool: () => null, poolMax: 8, providers: ['alpha'] });
      registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
      const res = Object.assign(new EventEmitter(), { locals: { route: '/api/tasks/:id' } });
      res.statusCode = 200;
      httpMiddleware({ method: 'GET' }, res, () => res.emit('finish'));
      registry.metrics().then((text) => {
        console.log(JSON.stringify({ type: registry.contentType, text }));
      });
    """
    made = subprocess.run(
        ["node", "-e", script], cwd=DEMO_PLATFORM_DIR, capture_output=True, text=True, timeout=30
    )
    assert made.returncode == 0, made.stderr
    page = json.loads(made.stdout)
    assert page["type"].startswith("application/openmetrics-text")
    with serve(Page(page["text"], page["type"])) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 0, lines
    assert report["ok"] is True
    renamed = page["text"].replace("process_cpu_seconds", "process_cpu_time")
    with serve(Page(renamed, page["type"])) as url:
        code, report, lines = check(url, *QUICK)
    assert code == 1
    assert violations(report) == {("missing_metric", "process_cpu_seconds_total")}


def test_an_endpoint_that_is_not_metrics_exits_2() -> None:
    refused = obsctl("check", "app", f"http://127.0.0.1:{free_port()}/metrics")
    assert refused.returncode == 2
    assert "cannot scrape" in refused.stderr
    with serve(Page("<html><body>hello</body></html>", "text/html")) as url:
        html = obsctl("check", "app", url)
    assert html.returncode == 2
    assert "text/html, not Prometheus metrics" in html.stderr
    with serve(Page("nothing here", status=404)) as url:
        missing = obsctl("check", "app", url)
    assert missing.returncode == 2
    assert "answered HTTP 404" in missing.stderr
    with serve(Page("this is { not metrics\n")) as url:
        garbage = obsctl("check", "app", url)
    assert garbage.returncode == 2
    assert "not a Prometheus exposition" in garbage.stderr


def test_a_bad_config_or_no_project_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds:\n  api_latency_p95_seconds: -1\n")
    result = obsctl("check", "app", "http://127.0.0.1:1/metrics", "--config", str(bad))
    assert result.returncode == 2
    assert "thresholds.api_latency_p95_seconds" in result.stderr
    nowhere = tmp_path / "empty"
    nowhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "OBSCTL_PROJECT"}
    lost = subprocess.run(
        [sys.executable, "-m", "obsctl", "check", "app", "http://127.0.0.1:1/metrics"],
        cwd=nowhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lost.returncode == 2
    assert "no obsctl.yaml" in lost.stderr


@contextmanager
def node_cluster(mode: str, port: int, metrics_port: int = 0) -> Iterator[None]:
    """cluster.js with two workers; stopped (workers too) when the block exits."""
    env = {**os.environ, "DEMO_PLATFORM_DIR": str(DEMO_PLATFORM_DIR)}
    args = ["node", str(CLUSTER_JS), mode, str(port), *([str(metrics_port)] * bool(metrics_port))]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _requests(port: int, count: int) -> None:
    for _ in range(count):
        # A new connection each time, so the cluster hands each to the next worker.
        assert httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=5).text == "pong"


@pytest.mark.needs_tools("node")
def test_pm2_workers_answering_one_port_in_turn_are_caught() -> None:
    port = free_port()
    with node_cluster("workers", port):
        _requests(port, 5)  # 3 to one worker, 2 to the other
        code, report, lines = check(f"http://127.0.0.1:{port}/metrics", "--interval", "0.2")
    assert code == 1, lines
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop("one registry") == "fail"
    assert set(statuses.values()) == {"ok"}, lines
    assert ("counter_went_down", "counters") in violations(report)
    assert f'{HTTP}_count{{method="GET",route="/api/ping",status_code="200"}}' in lines
    assert "AggregatorRegistry" in lines and "`worker` label" in lines


@pytest.mark.needs_tools("node")
def test_pm2_workers_behind_an_aggregator_registry_pass() -> None:
    port, metrics_port = free_port(), free_port()
    with node_cluster("aggregated", port, metrics_port):
        _requests(port, 5)
        code, report, lines = check(f"http://127.0.0.1:{metrics_port}/metrics", "--interval", "0.2")
    assert code == 0, lines
    assert {c["status"] for c in report["checks"]} == {"ok"}, lines
