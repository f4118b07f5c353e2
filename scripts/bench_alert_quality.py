"""Run a fresh local stack with its healthy workload and noise; report every alert that went off.

Usage: .venv/bin/python scripts/bench_alert_quality.py [--minutes 60] [--port-base 25500]
The stack runs with its default noise (provider latency jitter, sporadic single 500s, bursts of
task creation; obsctl/stack/noise.py) and no injected fault, so any alert but the Watchdog that
fires is a false alarm. Exits 1 when there was one, or when anything but the heartbeat was
delivered to DingTalk or email.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from obsctl.drills.local import StackTarget
from obsctl.quality import QualityReport, as_json, stack_report

# Rates need a minute of samples before the rules see the workload as it is.
SETTLE_SECONDS = 60
PROGRESS_EVERY_SECONDS = 300


def obsctl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the obsctl CLI."""
    return subprocess.run([sys.executable, "-m", "obsctl", *args], capture_output=True, text=True)


def alert_history(target: StackTarget, seconds: float) -> str:
    """`obsctl report alerts` over the window: episodes, noise candidates and their ratio."""
    answer = obsctl(
        "report", "alerts", "--since", f"{int(seconds) + 1}s",
        "--prometheus-url", target.prometheus_url, "--alertmanager-url", target.alertmanager_url,
        "--relay-url", target.env["RELAY_URL"], "--relay-token", target.env["OBSCTL_RELAY_TOKEN"],
    )  # fmt: skip
    if answer.returncode != 0:
        return f"obsctl report alerts failed (exit {answer.returncode}): {answer.stderr.strip()}"
    return answer.stdout.rstrip()


def main() -> None:
    """Start the stack, let it run for --minutes, print the report, stop the stack."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="healthy time to watch")
    parser.add_argument("--port-base", type=int, default=25500)
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--keep-logs",
        type=Path,
        default=Path("bench-alert-quality-logs"),
        help="where the servers' logs are copied when anything fired (to find the cause)",
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="obsctl-quality-") as tmp:
        root = Path(tmp) / "stack"
        up = obsctl("stack", "up", "--dir", str(root), "--port-base", str(opts.port_base))
        if up.returncode != 0:
            sys.exit(up.stderr)
        report: QualityReport | None = None
        try:
            target = StackTarget.open(root)
            start = time.time()
            end = start + SETTLE_SECONDS + opts.minutes * 60
            print(f"stack up in {root}; watching {opts.minutes:g} min", file=sys.stderr)
            while (left := end - time.time()) > 0:
                time.sleep(min(left, PROGRESS_EVERY_SECONDS))
                so_far = stack_report(target, start, time.time())
                print(
                    f"{so_far.minutes:.0f} min: {so_far.false_alarms} false alarms, "
                    f"{len(so_far.pages)} pages",
                    file=sys.stderr,
                )
            time.sleep(10)  # a notification of the last seconds is still on its way
            report = stack_report(target, start, end)
            history = alert_history(target, time.time() - start)
        finally:
            obsctl("stack", "down", "--dir", str(root))
            if report is None or not report.quiet:
                shutil.copytree(root / "logs", opts.keep_logs, dirs_exist_ok=True)
                print(f"servers' logs kept in {opts.keep_logs}", file=sys.stderr)
    print(report.render())
    print()
    print("`obsctl report alerts` over the same window (the false-alarm rate of issue 16):")
    print(history)
    if opts.json:
        opts.json.write_text(json.dumps(as_json(report), indent=2) + "\n")
    sys.exit(0 if report.quiet else 1)


if __name__ == "__main__":
    main()
