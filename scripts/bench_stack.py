"""Time `obsctl stack up` and `down`: a fresh directory and a restart, several rounds.

Usage: .venv/bin/python scripts/bench_stack.py [--rounds N] [--port-base B]
Prints a Markdown table for docs/BENCHMARKS.md. Packages must already be installed
(`obsctl stack install`), which is what the 15 s target is about.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(*args: str) -> float:
    """Seconds one obsctl command took; abort the benchmark if it failed."""
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "obsctl", *args], capture_output=True, text=True)
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        sys.exit(f"`obsctl {' '.join(args)}` failed:\n{result.stderr}")
    return elapsed


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=19800)
    opts = parser.parse_args()
    samples: dict[str, list[float]] = {"up (fresh dir)": [], "up (restart)": [], "down": []}
    for _ in range(opts.rounds):
        with tempfile.TemporaryDirectory(prefix="obsctl-bench-") as tmp:
            root = str(Path(tmp) / "stack")
            base = ["--dir", root]
            samples["up (fresh dir)"].append(
                timed("stack", "up", *base, "--port-base", str(opts.port_base), "--no-install")
            )
            samples["down"].append(timed("stack", "down", *base))
            samples["up (restart)"].append(timed("stack", "up", *base, "--no-install"))
            samples["down"].append(timed("stack", "down", *base))
    print("| operation | runs | median s | max s |\n|---|---|---|---|")
    for name, values in samples.items():
        print(
            f"| `stack {name}` | {len(values)} | {statistics.median(values):.1f} |"
            f" {max(values):.1f} |"
        )


if __name__ == "__main__":
    main()
