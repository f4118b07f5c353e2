"""The generated dashboards hold their conventions and match the Grafana 11.6 schema (no stack)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from obsctl.cli.dashboards import dashboards as dashboards_cli
from obsctl.configfile import ConfigError
from obsctl.mixin.config import MixinConfig, load
from obsctl.mixin.dashboards import (
    BUILDERS,
    SCHEMA_VERSION,
    Dashboard,
    build_dashboards,
    render_dashboards,
)
from obsctl.mixin.dashboards.lint import (
    KNOWN_METRICS,
    lint,
    metric_names,
    panels,
    queries,
    recorded_metrics,
    schema_problems,
)
from obsctl.mixin.dashboards.provisioning import DASHBOARDS_PATH, DATASOURCE_UID
from obsctl.snapshot.prometheus import RenderError, expand, parse_time, time_range
from obsctl.snapshot.render_png import format_value

REPO = Path(__file__).resolve().parents[3]
DEMO_CONFIG = REPO / "obsctl.yaml"
CONFIG = load(DEMO_CONFIG)


def boards(config: MixinConfig = CONFIG) -> dict[str, Dashboard]:
    return {b.key: b for b in build_dashboards(config)}


def panel(board: Dashboard, title: str) -> dict[str, Any]:
    return next(p for p in panels(board.json) if p["title"] == title)


def test_every_dashboard_and_both_provisioning_files_are_rendered() -> None:
    files = render_dashboards(CONFIG)
    assert sorted(files) == sorted(
        [f"dashboards/{key}.json" for key in BUILDERS]
        + [
            "dashboards/provisioning/datasources/obsctl.yaml",
            "dashboards/provisioning/dashboards/obsctl.yaml",
        ]
    )
    for path, text in files.items():
        if path.endswith(".json"):
            document = json.loads(text)
            assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            assert document["schemaVersion"] == SCHEMA_VERSION
    assert render_dashboards(CONFIG) == files, "rendering twice must give the same bytes"


def test_committed_files_are_what_the_config_generates() -> None:
    for path, text in render_dashboards(CONFIG).items():
        committed = REPO / path
        assert committed.exists(), f"{path} is not generated into the repo"
        assert committed.read_text() == text, f"{path} is stale: regenerate it"


def test_every_lint_rule_holds() -> None:
    rules_dir = REPO / "alert-rules"
    assert lint(build_dashboards(CONFIG), CONFIG, recorded_metrics(rules_dir)) == []


def test_dashboards_round_trip_through_the_sdk_models_of_grafana_11_6() -> None:
    for board in build_dashboards(CONFIG):
        assert schema_problems(board.json) == [], board.key


def test_schema_check_rejects_what_the_schema_does_not_describe() -> None:
    board = boards()["api"]
    broken = copy.deepcopy(board.json)
    broken["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "s"
    broken["refreshEvery"] = "30s"
    broken["annotations"]["list"][0]["titleFormat"] = "only allowed on the ALERTS annotation"
    problems = schema_problems(broken)
    assert any(p.startswith("panels[1].fieldConfig.defaults.unitt") for p in problems)
    assert any(p.startswith("refreshEvery") for p in problems)
    assert any(p.startswith("annotations.list[0].titleFormat") for p in problems)


def test_uids_are_the_ones_alerts_link_to() -> None:
    for key, board in boards().items():
        assert board.json["uid"] == CONFIG.links.dashboard_uids[key]
        assert CONFIG.dashboard_url(key).endswith(f"/d/{board.json['uid']}")
    uids = dict(CONFIG.links.dashboard_uids, api="payments-api")
    moved = CONFIG.model_copy(
        update={"links": CONFIG.links.model_copy(update={"dashboard_uids": uids})}
    )
    assert boards(moved)["api"].json["uid"] == "payments-api"
    overview_links = {link.get("url") for link in boards(moved)["overview"].json["links"]}
    assert "/d/payments-api" in overview_links


def test_a_dashboard_without_uid_is_a_config_error() -> None:
    uids = {k: v for k, v in CONFIG.links.dashboard_uids.items() if k != "queues"}
    config = CONFIG.model_copy(
        update={"links": CONFIG.links.model_copy(update={"dashboard_uids": uids})}
    )
    with pytest.raises(ConfigError, match=r"links.dashboard_uids: no UID for dashboard 'queues'"):
        render_dashboards(config)


def test_threshold_lines_come_from_the_config() -> None:
    thresholds = CONFIG.thresholds.model_copy(
        update={
            "api_error_ratio": 0.037,
            "api_latency_p95_seconds": 0.333,
            "queue_backlog_jobs": 1234,
            "mysql_probe_latency_seconds": 0.077,
            "db_connections_ratio": 0.66,
            "cache_hit_ratio": 0.55,
            "task_pass_rate": 0.44,
        }
    )
    built = boards(CONFIG.model_copy(update={"thresholds": thresholds}))

    def lines(key: str, title: str) -> list[float]:
        steps = panel(built[key], title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [s["value"] for s in steps if s["value"] is not None]

    assert lines("api", "5xx error ratio") == [0.037]
    assert lines("api", "Latency P50 / P95 / P99") == [0.333]
    assert lines("queues", "Backlog by queue") == [1234]
    assert lines("dependencies", "MySQL probe latency") == [0.077]
    assert lines("database", "Connections used") == [0.66]
    assert lines("dependencies", "Cache hit ratio") == [0.55]
    assert lines("business", "Task pass rate by feature") == [0.44]
    assert lines("overview", "API P95 latency") == [0.333]
    dashed = panel(built["api"], "Latency P50 / P95 / P99")["fieldConfig"]["defaults"]["custom"]
    assert dashed["thresholdsStyle"]["mode"] == "dashed"


def test_template_variables_where_they_help() -> None:
    expected = {
        "overview": set(),
        "api": {"route"},
        "business": {"feature", "provider"},
        "queues": {"queue"},
        "dependencies": set(),
        "database": set(),
        "host": set(),
    }
    for key, board in boards().items():
        variables = {v["name"]: v for v in board.json["templating"]["list"]}
        assert set(variables) == {"datasource"} | expected[key], key
        for name in expected[key]:
            assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
            assert variables[name]["query"].startswith("label_values(")
            users = [q for q in queries(board.json) if q.kind == "panel" and f"${name}" in q.expr]
            assert users, f"{key}: no panel uses ${name}"


def test_alert_annotations_on_every_dashboard() -> None:
    for key, board in boards().items():
        annotations = board.json["annotations"]["list"]
        builtin = [a for a in annotations if a.get("builtIn") == 1]
        assert builtin and builtin[0]["name"] == "Annotations & Alerts", key
        assert builtin[0]["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}
        alerts = [a for a in annotations if a.get("expr") == 'ALERTS{alertstate="firing"}']
        assert alerts and alerts[0]["enable"], key
        assert alerts[0]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert alerts[0]["titleFormat"] == "{{alertname}}"


def test_overview_links_to_every_other_dashboard() -> None:
    built = boards()
    urls = {link.get("url") for link in built["overview"].json["links"]}
    for key, board in built.items():
        if key != "overview":
            assert f"/d/{board.json['uid']}" in urls
    tiles = [p for p in panels(built["overview"].json) if p["type"] == "stat" and p.get("links")]
    assert len(tiles) >= 10, "overview tiles link to the dashboard with the details"


def test_dashboards_query_only_known_metrics() -> None:
    used: set[str] = set()
    for board in build_dashboards(CONFIG):
        for query in queries(board.json):
            used |= metric_names(query.expr)
    assert used <= KNOWN_METRICS | recorded_metrics(REPO / "alert-rules")
    for needed in (
        "http_request_duration_seconds_bucket",
        "task_succeeded_total",
        "bullmq_queue_jobs",
        "obsctl_probe_failure_reason",
        "db_pool_connections_pending",
        "obsctl_mysql_pool_connections",
        "mysql_processlist_connections",
    ):
        assert needed in used


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route) (rate(a_total{job="x", route=~"$route"}[$__rate_interval]))', {"a_total"}),
        ("histogram_quantile(0.95, sum by (le, route) (rate(b_bucket[5m])))", {"b_bucket"}),
        ("count (up == 0) or vector(0)", {"up"}),
        ('sum without (status) (s{status="down"}) + 2 * on (probe) group_left (x) t', {"s", "t"}),
        ("time() - last_seconds offset 5m", {"last_seconds"}),
        ("topk(5, max(m:recorded:rate5m) by (queue))", {"m:recorded:rate5m"}),
        ('label_replace(q, "a", "$1", "b", "(.*)") unless bool r', {"q", "r"}),
        ('{__name__="only_labels"}', set()),
    ],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def _mutate(key: str, change: Callable[[dict[str, Any]], None]) -> list[str]:
    built = build_dashboards(CONFIG)
    mutated = []
    for board in built:
        document = copy.deepcopy(board.json)
        if board.key == key:
            change(document)
        mutated.append(Dashboard(board.key, document, board.quiet))
    return lint(mutated, CONFIG, recorded_metrics(REPO / "alert-rules"))


def _first_panel(document: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in document["panels"] if p["type"] != "row")


def _set_expr(expr: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        _first_panel(document)["targets"][0]["expr"] = expr

    return change


@pytest.mark.parametrize(
    ("key", "change", "problem"),
    [
        ("api", lambda d: d.update(uid="renamed"), "uid: 'renamed', but links.dashboard_uids.api"),
        (
            "api",
            lambda d: d["templating"]["list"].pop(0),
            "templating: no 'datasource' variable",
        ),
        (
            "queues",
            lambda d: _first_panel(d).update(datasource={"type": "prometheus", "uid": "prod"}),
            "datasource must be",
        ),
        (
            "business",
            lambda d: _first_panel(d)["fieldConfig"]["defaults"].pop("unit"),
            "no unit",
        ),
        (
            "api",
            _set_expr('sum(rate(http_request_duration_seconds_count{route=~"$route"}[5m]))'),
            "range [5m] must be [$__rate_interval]",
        ),
        ("api", _set_expr("sum(rate(made_up_requests_total[$__rate_interval]))"), "unknown metric"),
        ("database", _set_expr('mysql_threads_running{pool=~"$pool"}'), "uses $pool"),
        (
            "dependencies",
            lambda d: d["annotations"]["list"].pop(1),
            'no Prometheus annotation of ALERTS{alertstate="firing"}',
        ),
        (
            "dependencies",
            lambda d: d["annotations"]["list"].pop(0),
            "no built-in 'Annotations & Alerts'",
        ),
        (
            "queues",
            lambda d: _first_panel(d)["fieldConfig"]["defaults"]["thresholds"]["steps"].append(
                {"value": 450, "color": "red"}
            ),
            "threshold 450 is not a value of config.thresholds",
        ),
        ("overview", lambda d: d["links"].pop(), "links: no link to the host dashboard"),
        ("database", lambda d: _first_panel(d)["gridPos"].update(x=12), "overlaps panel"),
        ("api", _set_expr("sum(rate(http_request_duration_seconds_count"), "unclosed '('"),
        (
            "queues",
            lambda d: d["templating"]["list"][1].update(query="label_values(bogus_metric, queue)"),
            "unknown metric 'bogus_metric'",
        ),
    ],
)
def test_lint_catches_each_broken_convention(
    key: str, change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    problems = _mutate(key, change)
    assert any(problem in p and p.startswith(f"dashboards/{key}.json") for p in problems), problems


def test_recording_rules_may_be_queried(tmp_path: Path) -> None:
    (tmp_path / "obsctl.rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [{"record": "job:http_errors:ratio_rate5m", "expr": "1"}],
                    }
                ]
            }
        )
    )
    change = _set_expr("max(job:http_errors:ratio_rate5m)")
    assert any("unknown metric" in p for p in _mutate("api", change))
    built = []
    for board in build_dashboards(CONFIG):
        document = copy.deepcopy(board.json)
        if board.key == "api":
            change(document)
        built.append(Dashboard(board.key, document, board.quiet))
    # The shipped rules' recordings, which the shipped boards read, plus the test's own.
    recorded = recorded_metrics(REPO / "alert-rules") | recorded_metrics(tmp_path)
    assert lint(built, CONFIG, recorded) == []


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    files = render_dashboards(CONFIG)
    datasources = yaml.safe_load(files["dashboards/provisioning/datasources/obsctl.yaml"])
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == DATASOURCE_UID
    assert source["isDefault"] is True and source["url"].startswith("http://")
    providers = yaml.safe_load(files["dashboards/provisioning/dashboards/obsctl.yaml"])
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == DASHBOARDS_PATH
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards:{DASHBOARDS_PATH}:ro" in mounts


def test_lint_cli_passes_on_the_generated_dashboards() -> None:
    result = CliRunner().invoke(dashboards_cli, ["lint", "--project", str(REPO)])
    assert result.exit_code == 0, result.output
    assert "7 dashboards pass" in result.output


def test_queries_are_expanded_as_grafana_would() -> None:
    expr = 'rate(x{queue=~"$queue", route=~"${route}"}[$__rate_interval])'
    assert expand(expr, "1m") == 'rate(x{queue=~".*", route=~".*"}[1m])'
    assert expand(expr, "75s", {"queue": "matting"}) == (
        'rate(x{queue=~"matting", route=~".*"}[75s])'
    )
    with pytest.raises(RenderError, match="unsupported Grafana variable"):
        expand("x[$__range]", "1m")


def test_time_ranges_and_units() -> None:
    now = 1_700_000_000.0
    assert parse_time("now", now) == now
    assert parse_time("now-1h", now) == now - 3600
    assert parse_time("30m", now) == now - 1800
    assert parse_time("2023-11-14T22:13:20+00:00", now) == now
    window = time_range("1h", "now", None, now=now)
    assert window.step == 15 and window.rate_interval == "60s"
    assert time_range("6h", "now", "1m", now=now).rate_interval == "75s"
    with pytest.raises(RenderError, match="is empty"):
        time_range("now", "1h", None, now=now)
    with pytest.raises(RenderError, match="not a time"):
        parse_time("yesterday", now)
    assert format_value(0.012, "percentunit") == "1.2%"
    assert format_value(0.2, "s") == "200 ms"
    assert format_value(2.5 * 1024**2, "bytes") == "2.5 MiB"
    assert format_value(8.25, "reqps") == "8.25 req/s"
