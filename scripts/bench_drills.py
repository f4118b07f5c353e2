"""Run every drill scenario on a fresh local stack and print its key timings as Markdown.

Usage: .venv/bin/python scripts/bench_drills.py [--port-base 20500] [--scenario NAME ...]
The stack uses the shipped intervals (exporter probes every 10 s, Prometheus scrape and rule
evaluation every 5 s, Alertmanager group_wait 5 s), so the figures are what on-call gets.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from obsctl.drills.journal import Journal
from obsctl.drills.scenarios import SCENARIOS

RUNS = [(name, None) for name in SCENARIOS] + [
    ("mysql-down", "hang"),
    ("redis-down", "hang"),
    ("alert-path-down", "hang"),
]
COLUMNS = ["fault_to_firing", "fault_to_dingtalk", "fault_to_email", "restore_to_dingtalk_resolved"]
# The drills that stop the alert path also give the dead man's switch's detection time.
DEADMAN_COLUMNS = ["last_heartbeat_to_firing"]
# Fault -> signed DingTalk message: a minute for every drill (the first promise to on-call),
# tighter for the outages and the API's rates (issue 14's goals).
BUDGET_SECONDS = 60.0
GOAL_SECONDS = {
    "mysql-down": 30.0, "redis-down": 30.0, "cos-down": 30.0, "provider-outage": 30.0,
    "api-errors": 45.0, "api-latency": 45.0,
}  # fmt: skip


def obsctl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the obsctl CLI."""
    return subprocess.run([sys.executable, "-m", "obsctl", *args], capture_output=True, text=True)


def main() -> None:
    """Run the drills one after another and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-base", type=int, default=20500)
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    opts = parser.parse_args()
    runs = [r for r in RUNS if not opts.scenario or r[0] in opts.scenario]
    rows = []
    with tempfile.TemporaryDirectory(prefix="obsctl-drills-") as tmp:
        root = Path(tmp) / "stack"
        up = obsctl("stack", "up", "--dir", str(root), "--port-base", str(opts.port_base))
        if up.returncode != 0:
            sys.exit(up.stderr)
        try:
            time.sleep(30)  # let rates and probes settle
            for name, variant in runs:
                journal_path = Path(tmp) / f"{name}-{variant or 'default'}.json"
                args = ["drill", "run", name, "--dir", str(root), "--journal", str(journal_path)]
                for _ in range(3):  # refused while an earlier drill's alerts are still active
                    result = obsctl(*args, *(["--variant", variant] if variant else []))
                    if result.returncode != 3:
                        break
                    time.sleep(60)
                journal = Journal.load(journal_path)
                rows.append((name + (f" ({variant})" if variant else ""), journal))
                print(f"{rows[-1][0]}: {journal.status}", file=sys.stderr)
        finally:
            obsctl("stack", "down", "--dir", str(root))
    columns = COLUMNS
    if any(SCENARIOS[journal.scenario].deadman for _, journal in rows):
        columns = DEADMAN_COLUMNS + COLUMNS
    heads = " | ".join(c.replace("_", " ") for c in columns)
    print(f"| scenario | status | {heads} | goal (fault to dingtalk) |")
    print("|---|---|" + "---|" * (len(columns) + 1))
    failed = []
    for label, journal in rows:
        timings = journal.timings()
        cells = [f"{timings[c]:.1f} s" if c in timings else "—" for c in columns]
        took = timings.get("fault_to_dingtalk")
        goal = GOAL_SECONDS.get(journal.scenario)
        verdict = "—"
        if goal is not None and took is not None:
            verdict = f"≤ {goal:g} s: {'met' if took <= goal else 'missed'}"
        if journal.status != "passed" or (took is not None and took > BUDGET_SECONDS):
            failed.append(label)
        print(f"| {label} | {journal.status} | " + " | ".join(cells) + f" | {verdict} |")
    if failed:
        sys.exit(f"failed or past the {BUDGET_SECONDS:g} s budget: {', '.join(failed)}")


if __name__ == "__main__":
    main()
