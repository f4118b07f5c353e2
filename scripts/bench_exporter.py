"""Benchmark the obsctl exporter against the peers a user would run instead.

Starts a local stack (its own port base), then in the same run measures:
  * /health latency at a fixed rate from concurrent clients (p50/p99/max);
  * /metrics scrape time of obsctl vs mysqld_exporter + redis_exporter + blackbox_exporter
    (Debian packages) against the same MariaDB, Redis, providers and S3 endpoint;
  * resident memory of each exporter.
Prints Markdown for docs/BENCHMARKS.md.

Usage: .venv/bin/python scripts/bench_exporter.py [--rate 200] [--clients 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import psutil
import yaml

from obsctl.stack import envfile
from obsctl.stack.install import install_apt
from obsctl.stack.layout import PROVIDERS, StackLayout
from obsctl.stack.process import ProcessTable

PEERS = {
    "prometheus-mysqld-exporter": "prometheus-mysqld-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}


def blackbox_config(env: dict[str, str]) -> str:
    """http_2xx for S3, and per provider a module sending its key, as obsctl's probe does."""
    modules: dict[str, object] = {"http_2xx": {"prober": "http", "timeout": "2s"}}
    for name in PROVIDERS:
        key = env[f"PROVIDER_{name.upper()}_KEY"]
        modules[f"provider_{name}"] = {
            "prober": "http",
            "timeout": "2s",
            "http": {"headers": {"Authorization": f"Bearer {key}"}},
        }
    return yaml.safe_dump({"modules": modules})


def peer_urls(env: dict[str, str], base: int) -> list[str]:
    """What Prometheus would scrape of the peers: both exporters and every blackbox probe."""
    blackbox_targets = [
        (f"provider_{name}", f"{env[f'PROVIDER_{name.upper()}_URL']}/v1/heartbeat")
        for name in PROVIDERS
    ] + [("http_2xx", env["OBSCTL_COS_ENDPOINT"])]
    return [
        f"http://127.0.0.1:{base + 20}/metrics",
        f"http://127.0.0.1:{base + 21}/metrics",
        *(f"http://127.0.0.1:{base + 22}/probe?module={module}&target={t}"
          for module, t in blackbox_targets),
    ]  # fmt: skip


def obsctl(*args: str) -> None:
    """Run obsctl, aborting the benchmark if it fails."""
    result = subprocess.run([sys.executable, "-m", "obsctl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"obsctl {' '.join(args)} failed:\n{result.stderr}")


@contextmanager
def stack(root: Path, port_base: int) -> Iterator[dict[str, str]]:
    """A stack for the length of the benchmark."""
    obsctl("stack", "up", "--dir", str(root), "--port-base", str(port_base))
    try:
        yield envfile.read(root / "stack.env")
    finally:
        obsctl("stack", "down", "--dir", str(root))


@contextmanager
def peers(env: dict[str, str], work: Path, port_base: int) -> Iterator[dict[str, int]]:
    """Start the three peer exporters against the stack; yield name -> pid."""
    dsn = urlparse(env["OBSCTL_MYSQL_DSN"])
    mysql_dsn = (
        f"{unquote(dsn.username or '')}:{unquote(dsn.password or '')}@({dsn.hostname}:{dsn.port})/"
    )
    (work / "blackbox.yml").write_text(blackbox_config(env))
    redis = urlparse(env["OBSCTL_REDIS_URL"])
    commands = {
        "mysqld_exporter": (
            ["prometheus-mysqld-exporter", f"--web.listen-address=127.0.0.1:{port_base + 20}",
             "--collect.info_schema.processlist"],
            {"DATA_SOURCE_NAME": mysql_dsn},
        ),
        "redis_exporter": (
            ["prometheus-redis-exporter", f"-redis.addr=redis://{redis.hostname}:{redis.port}",
             f"-web.listen-address=127.0.0.1:{port_base + 21}",
             "-check-keys=bull:*:wait,bull:*:active,bull:*:delayed,bull:*:failed"],
            {},
        ),
        "blackbox_exporter": (
            ["prometheus-blackbox-exporter", f"--config.file={work / 'blackbox.yml'}",
             f"--web.listen-address=127.0.0.1:{port_base + 22}"],
            {},
        ),
    }  # fmt: skip
    procs = {
        name: subprocess.Popen(
            argv, env={**os.environ, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for name, (argv, extra) in commands.items()
    }
    try:
        time.sleep(1.5)
        yield {name: proc.pid for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


def scrape_times(urls: list[str], rounds: int) -> list[float]:
    """Seconds to fetch every URL in urls once (sequentially), per round."""
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(rounds):
            began = time.perf_counter()
            for url in urls:
                response = client.get(url)
                response.raise_for_status()
            times.append(time.perf_counter() - began)
    return times


async def health_latencies(url: str, rate: float, clients: int, seconds: float) -> list[float]:
    """Latencies of GET url at `rate` requests/s in total, spread over `clients` connections.

    Each client connects and sends one unrecorded request first: building 20 httpx clients
    (SSL contexts included) blocks the benchmark's own event loop for a few hundred ms, which
    would otherwise show up as server latency.
    """
    latencies: list[float] = []
    per_client = rate / clients
    total_per_client = int(per_client * seconds)
    pool = [httpx.AsyncClient(timeout=5) for _ in range(clients)]
    try:
        await asyncio.gather(*(client.get(url) for client in pool))
        start = time.perf_counter() + 0.1

        async def client_loop(client: httpx.AsyncClient, offset: float) -> None:
            for i in range(total_per_client):
                delay = start + offset + i / per_client - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                began = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - began)
                assert response.status_code in (200, 503)

        await asyncio.gather(*(client_loop(c, n / rate) for n, c in enumerate(pool)))
    finally:
        await asyncio.gather(*(client.aclose() for client in pool))
    return latencies


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    """Resident memory of pid and its children, in MB."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
    return total / 1e6


def main() -> None:
    """Run everything and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--port-base", type=int, default=19900)
    opts = parser.parse_args()
    install_apt(sorted({pkg for binary, pkg in PEERS.items() if not shutil.which(binary)}), print)
    with tempfile.TemporaryDirectory(prefix="obsctl-bench-") as tmp:
        work = Path(tmp)
        with stack(work / "stack", opts.port_base) as env, peers(env, work, opts.port_base) as pids:
            exporter = f"http://{env['OBSCTL_LISTEN']}"
            time.sleep(5)  # let every probe run at least once
            ours = scrape_times([f"{exporter}/metrics"], opts.scrapes)
            theirs = scrape_times(peer_urls(env, opts.port_base), opts.scrapes)
            latencies = asyncio.run(
                health_latencies(f"{exporter}/health", opts.rate, opts.clients, opts.seconds)
            )
            records = ProcessTable(StackLayout(work / "stack").processes_file).load()
            exporter_pid = records["exporter"].pid
            ours_rss = rss_mb(exporter_pid)
            peers_rss = {name: rss_mb(pid) for name, pid in pids.items()}
    print(f"### /health under load: {opts.rate:.0f} req/s from {opts.clients} clients "
          f"for {opts.seconds:.0f} s ({len(latencies)} requests)\n")  # fmt: skip
    print("| p50 ms | p99 ms | max ms |\n|---|---|---|")
    print(f"| {pct(latencies, 50) * 1000:.2f} | {pct(latencies, 99) * 1000:.2f} |"
          f" {max(latencies) * 1000:.2f} |\n")  # fmt: skip
    print(f"### /metrics scrape time, {opts.scrapes} rounds\n")
    print("| exporter | median ms | p90 ms |\n|---|---|---|")
    print(
        f"| obsctl exporter (MySQL, business, Redis, BullMQ, COS, 2 providers) |"
        f" {statistics.median(ours) * 1000:.1f} | {pct(ours, 90) * 1000:.1f} |"
    )
    print(
        f"| mysqld + redis + blackbox exporters (MySQL, Redis, 3 HTTP probes), combined |"
        f" {statistics.median(theirs) * 1000:.1f} | {pct(theirs, 90) * 1000:.1f} |"
    )
    print(
        f"\nratio obsctl / peers (median): "
        f"{statistics.median(ours) / statistics.median(theirs):.2f}\n"
    )
    print("### Resident memory\n\n| exporter | RSS MB |\n|---|---|")
    print(f"| obsctl exporter | {ours_rss:.1f} |")
    for name, value in peers_rss.items():
        print(f"| {name} | {value:.1f} |")
    print(f"| peers combined | {sum(peers_rss.values()):.1f} |")


if __name__ == "__main__":
    main()
