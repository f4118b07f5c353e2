"""Benchmark the sidecars' leader fail-over, and the business counters across it.

Starts a local stack (its own port base) for MariaDB and Redis, three exporter sidecars with
the leader election on (default lease 30 s), a Prometheus scraping them (honor_labels, as
the generated config does) and a writer creating tasks at a steady rate in a scratch copy of
the platform schema. Each round kill -9s the leader and measures the time until another
sidecar exports leader=1 with the business series, then restarts the killed one. For each
round, `sum(increase(task_created_total[2m]))` over the two minutes centred on the kill is
compared with the tasks the writer created in that window. Prints Markdown for
docs/BENCHMARKS.md.

Usage: .venv/bin/python scripts/bench_leader.py [--rounds 5] [--lease 30] [--port-base 27500]
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pymysql
import yaml
from prometheus_client.parser import text_string_to_metric_families

from obsctl.metric_names import BusinessMetric, ExporterMetric
from obsctl.stack import envfile

SIDECARS = 3
SCRATCH = "bench_leader"
WINDOW = 120.0  # the increase() window of the done-when check
SCRAPE = 5.0


def obsctl(*args: str) -> None:
    """Run obsctl, aborting the benchmark if it fails."""
    result = subprocess.run([sys.executable, "-m", "obsctl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"obsctl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def scratch_database(socket: Path, dsn: str) -> str:
    """A copy of the platform's tables the exporter account may read; its DSN."""
    root = pymysql.connect(unix_socket=str(socket), user="root", autocommit=True)
    with root, root.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        cur.execute(f"CREATE DATABASE {SCRATCH} CHARACTER SET utf8mb4")
        for table in ("tasks", "quotas", "provider_configs"):
            cur.execute(f"CREATE TABLE {SCRATCH}.{table} LIKE platform.{table}")
        cur.execute(f"GRANT SELECT ON {SCRATCH}.* TO 'obsctl_exporter'@'127.0.0.1'")
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{SCRATCH}"))


class Writer(threading.Thread):
    """Creates tasks at a steady rate and remembers when each one was committed."""

    def __init__(self, socket: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.socket, self.rate = socket, rate
        self.created: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        """Insert until stopped."""
        conn = pymysql.connect(
            unix_socket=str(self.socket), user="root", database=SCRATCH, autocommit=True
        )
        features = ("matting", "outfit", "faceswap", "outpaint")
        n = 0
        while not self.stop.is_set():
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO tasks (user_id, feature, provider, status, created_at,"
                    " updated_at) VALUES (1, %s, 'alpha', 'queued', NOW(3), NOW(3))",
                    (features[n % 4],),
                )
            self.created.append(time.time())
            n += 1
            time.sleep(1 / self.rate)
        conn.close()

    def between(self, start: float, end: float) -> int:
        """Tasks committed in (start, end]."""
        return bisect.bisect_right(self.created, end) - bisect.bisect_right(self.created, start)


class Sidecar:
    """One exporter process."""

    def __init__(self, index: int, port: int, config: Path, log: Path) -> None:
        self.name, self.port, self.config, self.log = f"sidecar-{index}", port, config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it, output to its log."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "obsctl", "exporter", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill(self) -> None:
        """kill -9 and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def samples(self) -> dict[str, float]:
        """Sample name -> value on /metrics (empty when it does not answer)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=0.5).text
        except httpx.HTTPError:
            return {}
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    def leads(self) -> bool:
        """leader=1 on /metrics."""
        return self.samples().get(ExporterMetric.LEADER) == 1.0

    def leads_with_business(self) -> bool:
        """leader=1 and the business series on /metrics."""
        names = self.samples()
        return names.get(ExporterMetric.LEADER) == 1.0 and BusinessMetric.TASK_CREATED in names


def exporter_config(port: int, name: str, env: dict[str, str], dsn: str, lease: float) -> str:
    """A sidecar's config: per-host Redis and MySQL probes, the singletons, the lease."""
    redis_url = env["OBSCTL_REDIS_URL"]
    config = {
        "listen": f"127.0.0.1:{port}",
        "leader": {"enabled": True, "lease": f"{lease:g}s", "identity": name},
        "mysql": {"dsn": dsn, "interval": "5s", "timeout": "2s"},
        "business": {"interval": "5s", "timeout": "4s", "providers": ["alpha", "beta"]},
        "redis": {"url": redis_url, "interval": "5s", "timeout": "1s"},
        "bullmq": {"url": redis_url, "interval": "5s", "timeout": "2s"},
    }
    return yaml.safe_dump(config)


def wait(what: str, check: object, timeout: float) -> None:
    """Poll check() every 100 ms; abort the benchmark if it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def query(prometheus: str, expr: str, at: float) -> float:
    """One instant query's single value."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr, "time": at}).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


@dataclass
class Round:
    """One kill -9 of the leader and what followed."""

    killed_at: float
    leader_after: float
    exporting_after: float
    windows: list[tuple[float, int]] = field(default_factory=list)

    @property
    def led_at(self) -> float:
        """When the new leader exported the business series."""
        return self.killed_at + self.exporting_after

    def __str__(self) -> str:
        return (
            f"kill -9 -> leader=1 {self.leader_after:.2f} s, -> business series"
            f" {self.exporting_after:.2f} s; windows (increase, created): {self.windows}"
        )


def fail_over(sidecars: list[Sidecar], lease: float) -> Round:
    """kill -9 the leader, time the new one, restart the killed sidecar."""
    leader = next(s for s in sidecars if s.leads_with_business())
    killed_at = time.time()
    leader.kill()
    rest = [s for s in sidecars if s is not leader]
    wait("a new leader", lambda: any(s.leads() for s in rest), 3 * lease)
    leader_after = time.time() - killed_at
    wait("its business series", lambda: any(s.leads_with_business() for s in rest), lease)
    exporting_after = time.time() - killed_at
    leader.start()
    return Round(killed_at, leader_after, exporting_after)


def windows_around(
    prometheus: str, writer: Writer, item: Round, others: list[Round]
) -> list[tuple[float, int]]:
    """The window centred on the kill, then every window touching this gap and no other one
    (ends every 2.5 s)."""
    expr = f"sum(increase({BusinessMetric.TASK_CREATED}[{WINDOW:g}s]))"
    ends = [item.killed_at + WINDOW / 2]
    step, at = SCRAPE / 2, item.killed_at
    while at <= item.led_at + WINDOW:
        if not any(o.killed_at < at and at - WINDOW < o.led_at for o in others):
            ends.append(at)
        at += step
    return [(query(prometheus, expr, end), writer.between(end - WINDOW, end)) for end in ends]


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="tasks created per second")
    parser.add_argument("--port-base", type=int, default=27500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-leader-"))
    stack_dir = work / "stack"
    obsctl("stack", "up", "--dir", str(stack_dir), "--port-base", str(args.port_base))
    sidecars: list[Sidecar] = []
    prometheus: subprocess.Popen[bytes] | None = None
    writer: Writer | None = None
    try:
        env = envfile.read(stack_dir / "stack.env")
        socket = stack_dir / "mariadb" / "mysqld.sock"
        dsn = scratch_database(socket, env["OBSCTL_MYSQL_DSN"])
        ports = [args.port_base + 90 + i for i in range(SIDECARS)]
        for index, port in enumerate(ports):
            path = work / f"sidecar-{index}.yml"
            path.write_text(exporter_config(port, f"sidecar-{index}", env, dsn, args.lease))
            sidecars.append(Sidecar(index, port, path, work / f"sidecar-{index}.log"))
        prom_port = args.port_base + 95
        (work / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": f"{SCRAPE:g}s"},
                    "scrape_configs": [
                        {
                            "job_name": "obsctl-exporter",
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
                        }
                    ],
                }
            )
        )
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        prom_url = f"http://127.0.0.1:{prom_port}"
        writer = Writer(socket, args.rate)
        for sidecar in sidecars:
            sidecar.start()
        wait("a first leader", lambda: any(s.leads_with_business() for s in sidecars), 60)
        writer.start()
        time.sleep(WINDOW / 2 + 2 * SCRAPE)
        rounds: list[Round] = []
        for _ in range(args.rounds):
            rounds.append(fail_over(sidecars, args.lease))
            # The next kill comes once this fail-over's gap is out of the next centred window.
            time.sleep(max(0.0, rounds[-1].led_at + WINDOW / 2 + 2 * SCRAPE - time.time()))
        # Every window that has the gap at its edge has been scraped by now.
        time.sleep(max(0.0, rounds[-1].led_at + WINDOW + 2 * SCRAPE - time.time()))
        for item in rounds:
            others = [o for o in rounds if o is not item]
            item.windows = windows_around(prom_url, writer, item, others)
            print(f"{item}", file=sys.stderr)
        report(args, rounds)
    finally:
        if writer is not None:
            writer.stop.set()
        for sidecar in sidecars:
            sidecar.kill()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=10)
        obsctl("stack", "down", "--dir", str(stack_dir))


def report(args: argparse.Namespace, rounds: list[Round]) -> None:
    """The Markdown tables for docs/BENCHMARKS.md."""
    leads = [r.leader_after for r in rounds]
    exports = [r.exporting_after for r in rounds]
    print(
        "| rounds | lease | kill -9 -> leader=1: median / max | -> business series: median / max |"
    )
    print("|---|---|---|---|")
    print(
        f"| {len(rounds)} | {args.lease:g} s | {statistics.median(leads):.1f} / {max(leads):.1f} s"
        f" | {statistics.median(exports):.1f} / {max(exports):.1f} s |"
    )
    print()
    print("| round | 2 m window centred on the kill: increase / created | difference |"
          " worst window touching the gap |")  # fmt: skip
    print("|---|---|---|---|")
    for index, r in enumerate(rounds):
        (increase, created), *edges = r.windows
        worst = min(edges, key=lambda w: w[0] / w[1])
        print(
            f"| {index + 1} | {increase:.0f} / {created} | {percent(increase, created)}"
            f" | {worst[0]:.0f} / {worst[1]} ({percent(*worst)}) |"
        )


def percent(increase: float, created: int) -> str:
    """The difference of increase() from the truth."""
    return f"{(increase - created) / created * 100:+.1f} %"


if __name__ == "__main__":
    main()
