"""Hand-written expectations for a few generated rules and their promtool cases.

The generated promtool tests compute their expected annotations with the same config and
functions as the rules, so a wrong threshold or wording would move both and still pass. These
literals are written by hand from the seed's requirements (5xx > 1 %, P95 > 200 ms, backlog >
500 waiting jobs) and pin what the shipped mixin.yaml must generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from obsctl.mixin.config import load
from obsctl.mixin.rule_tests import TESTS_PATH
from obsctl.mixin.rule_tests import build as build_tests
from obsctl.mixin.rules import RULES_PATH, render_rules

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "obsctl.yaml"

RULES = yaml.safe_load(render_rules(load(DEMO_CONFIG))[RULES_PATH])
CASES = build_tests(load(DEMO_CONFIG))[TESTS_PATH]["tests"]


def _rule(key: str, name: str) -> dict[str, Any]:
    [found] = [r for g in RULES["groups"] for r in g["rules"] if r.get(key) == name]
    return found


def _firing(case_name: str) -> dict[str, Any]:
    [case] = [c for c in CASES if c["name"] == case_name]
    [test] = case["alert_rule_test"]
    [alert] = test["exp_alerts"]
    return alert


def test_api_high_error_rate_pages_above_one_percent_of_busy_traffic() -> None:
    rule = _rule("alert", "ApiHighErrorRate")
    assert rule["expr"] == (
        "job:http_request_errors:ratio_rate1m > 0.01 and on (job) job:http_requests:rate1m > 0.5"
    )
    assert rule["for"] == "20s"
    assert rule["labels"] == {"severity": "critical", "team": "platform"}
    assert rule["annotations"] == {
        "summary": "The API answers too many 5xx",
        "description": "{{ $value | humanizePercentage }} of {{ $labels.job }} requests answered"
        " 5xx over the last 1m (threshold 1%, at more than 0.5 requests/s).",
        "runbook": "runbooks/ApiHighErrorRate.md",
        "dashboard_url": "http://127.0.0.1:3000/d/obsctl-api",
    }
    assert _rule("record", "job:http_request_errors:ratio_rate1m")["expr"] == (
        '(sum by (job) (rate(http_request_duration_seconds_count{job="demo-app",'
        ' status_code=~"5.."}[1m]))'
        ' or sum by (job) (rate(http_request_duration_seconds_count{job="demo-app"}[1m])) * 0)'
        ' / sum by (job) (rate(http_request_duration_seconds_count{job="demo-app"}[1m]))'
    )
    fired = _firing("ApiHighErrorRate fires at 0.02 errors")
    assert fired["exp_labels"] == {"job": "demo-app", "severity": "critical", "team": "platform"}
    assert fired["exp_annotations"]["description"] == (
        "2% of demo-app requests answered 5xx over the last 1m"
        " (threshold 1%, at more than 0.5 requests/s)."
    )


def test_api_latency_warns_above_a_p95_of_200_ms() -> None:
    rule = _rule("alert", "ApiHighLatencyP95")
    assert rule["expr"] == (
        "job:http_request_duration_seconds:p95_rate1m > 0.2"
        " and on (job) job:http_requests:rate1m > 0.5"
    )
    assert (rule["for"], rule["labels"]["severity"]) == ("30s", "warning")
    assert rule["annotations"]["description"] == (
        "P95 latency of {{ $labels.job }} is {{ $value | humanizeDuration }} over the last 1m"
        " (threshold 200ms)."
    )
    fired = _firing("ApiHighLatencyP95 fires at P95 0.295s")
    assert fired["exp_annotations"]["description"] == (
        "P95 latency of demo-app is 295ms over the last 1m (threshold 200ms)."
    )


def test_queue_backlog_warns_above_500_waiting_jobs() -> None:
    rule = _rule("alert", "QueueBacklogHigh")
    assert rule["expr"] == "queue:bullmq_waiting_jobs:sum > 500"
    assert rule["labels"] == {"severity": "warning", "team": "ai", "source": "exporter"}
    assert rule["annotations"]["summary"] == "A BullMQ queue has a large backlog"
    assert _rule("record", "queue:bullmq_waiting_jobs:sum")["expr"] == (
        "sum by (prefix, queue) (bullmq_queue_jobs"
        '{job="obsctl-exporter", queue!="dead-letter", state="waiting"})'
    )
    fired = _firing("QueueBacklogHigh fires at 1000 waiting jobs")
    assert fired["exp_annotations"]["description"] == (
        "Queue image-tasks (prefix bull) has 1k waiting jobs (threshold 500)."
    )
    quiet = [c for c in CASES if c["name"] == "QueueBacklogHigh is quiet at the threshold"]
    assert quiet and quiet[0]["alert_rule_test"][0]["exp_alerts"] == []
