"""Soak: resident memory and CPU of the exporter, relay and deadman over an hour of workload.

Starts a local stack (its own port base) with the demo platform's normal workload and, against
the same servers, the Debian peers a user would run instead (as bench_exporter.py does),
scraped every 15 s as Prometheus would scrape them. After
--settle minutes it samples every process once a minute for --minutes, then prints Markdown for
docs/BENCHMARKS.md: RSS when settled, after 30 minutes and at the end, the growth over the soak
(issue 14: < 5 %), and each process's CPU as a share of one core over the soak (issue 14:
exporter <= 2 %, relay <= 1 %). Steady state, not the figure right after start.

Usage: .venv/bin/python scripts/bench_soak.py [--minutes 60] [--settle 5] [--port-base 20600]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from obsctl.stack.install import install_apt
from obsctl.stack.layout import StackLayout
from obsctl.stack.process import ProcessTable

OURS = ("exporter", "relay", "deadman")
SAMPLE_SECONDS = 60.0
SCRAPE_SECONDS = 15.0  # the stack's scrape interval


@dataclass
class Watched:
    """One process: its RSS samples (MB) and CPU seconds at the start and end of the soak."""

    name: str
    process: psutil.Process
    rss: list[float] = field(default_factory=list)
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children."""
        times = self.process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def sample(self) -> None:
        """Record the current resident memory."""
        self.rss.append(self.process.memory_info().rss / 1_048_576)


def main() -> None:
    """Start everything, soak, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--port-base", type=int, default=20600)
    opts = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_exporter import PEERS, peer_urls, peers, stack  # the same stack and peers

    install_apt(sorted({pkg for binary, pkg in PEERS.items() if not shutil.which(binary)}), print)
    with tempfile.TemporaryDirectory(prefix="obsctl-soak-") as tmp:
        work = Path(tmp)
        root = work / "stack"
        with stack(root, opts.port_base) as env, peers(env, work, opts.port_base) as pids:
            records = ProcessTable(StackLayout(root).processes_file).load()
            watched = [Watched(n, psutil.Process(records[n].pid)) for n in OURS]
            watched += [Watched(n.removeprefix("prometheus-"), psutil.Process(p))
                        for n, p in pids.items()]  # fmt: skip
            print(f"settling {opts.settle:g} min, then {opts.minutes:g} min", file=sys.stderr)
            time.sleep(opts.settle * 60)
            started = time.monotonic()
            for w in watched:
                w.cpu_start = w.cpu_seconds()
                w.sample()
            urls = peer_urls(env, opts.port_base)
            next_sample = started + SAMPLE_SECONDS
            while (now := time.monotonic()) - started < opts.minutes * 60:
                # The peers work only when scraped: scrape them as Prometheus would.
                for url in urls:
                    with contextlib.suppress(httpx.HTTPError):
                        httpx.get(url, timeout=SCRAPE_SECONDS)
                if now >= next_sample:
                    next_sample += SAMPLE_SECONDS
                    for w in watched:
                        w.sample()
                time.sleep(max(0.0, SCRAPE_SECONDS - (time.monotonic() - now)))
            for w in watched:
                w.sample()
            elapsed = time.monotonic() - started
            for w in watched:
                w.cpu_end = w.cpu_seconds()
    half = min(30, int(opts.minutes))
    print(f"### {opts.minutes:g} minutes of the normal workload, after {opts.settle:g} to settle\n")
    print(f"| process | RSS MB settled | after {half} min | at the end | growth |"
          " CPU % of a core |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for w in watched:
        growth = 100 * (w.rss[-1] - w.rss[0]) / w.rss[0]
        cpu = 100 * (w.cpu_end - w.cpu_start) / elapsed
        print(f"| {w.name} | {w.rss[0]:.1f} | {w.rss[min(half, len(w.rss) - 1)]:.1f} |"
              f" {w.rss[-1]:.1f} | {growth:+.1f} % | {cpu:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
