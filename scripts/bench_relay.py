"""Benchmark the relay's intake with the spool on: webhooks/s, latency, memory, nothing lost.

Starts the fake DingTalk robot and `obsctl relay` (a real process, spool on, fsync per group
commit), waits for steady state, then from a separate load process:

  * a burst: N webhooks of one alert each (distinct fingerprints) from C concurrent clients,
    as fast as they are answered; reports webhooks/s and answer latency p50/p99/max;
  * drains: waits until the robot holds every alert, each exactly once (robot and relay run
    at a raised send limit so 10,000 alerts drain in a couple of minutes; pacing at DingTalk's
    real 20/min is proved by the test suite);
  * resident memory of the relay before, right after the burst and once drained; CPU time
    over an idle minute.

Usage: .venv/bin/python scripts/bench_relay.py [--webhooks 10000] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import yaml

from obsctl.stack.fakes.launcher import free_port, start_fake

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "alertmanager" / "templates"
SECRET = "SECbench0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789"
TOKEN = "bench-relay-token"
DINGTALK_LIMIT = 20  # per robot and minute, while the bursts arrive
DRAIN_LIMIT = 600


def notification(i: int) -> dict[str, Any]:
    """One Alertmanager webhook body with one alert, as our rules produce them."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="BenchAlert",instance="host-{i}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "team",
        "groupLabels": {"alertname": "BenchAlert"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "BenchAlert", "severity": "warning", "team": "sre",
                    "instance": f"host-{i:05d}:9100", "job": "node",
                },
                "annotations": {
                    "summary": f"B{i:05d}E disk almost full",
                    "description": "filesystem /data is 93% full and grows 2%/h",
                    "runbook_url": "http://127.0.0.1:3000/runbooks/BenchAlert",
                },
                "startsAt": "2026-12-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"bench{i:08d}",
            }
        ],
    }  # fmt: skip


def load(url: str, count: int, clients: int, rate: float, first: int, result: Any) -> None:
    """The load process: `count` webhooks from `clients` connections, at `rate`/s (0: flat out)."""

    async def run() -> tuple[list[float], dict[int, int], float]:
        bodies = [json.dumps(notification(first + i)).encode() for i in range(count)]
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        queue = iter(range(count))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        # aiohttp's client, not httpx: at 50 connections httpx itself tops out near 300 req/s.
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

            async def client() -> None:
                for i in queue:
                    if rate:  # open loop: each webhook leaves at its scheduled time
                        delay = began + i / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    started = time.perf_counter()
                    async with http.post(url, data=bodies[i]) as response:
                        await response.read()
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status] = statuses.get(response.status, 0) + 1

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return latencies, statuses, time.perf_counter() - began

    result.put(asyncio.run(run()))


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1_048_576


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1_000.0, help="offered webhooks/s, run 2")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before measuring")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="obsctl-bench-relay-"))
    robots = work / "robots.json"
    robots.write_text(
        json.dumps({"tok-bench": {"secret": SECRET, "rate_limit_per_minute": DRAIN_LIMIT}})
    )
    robot = start_fake(
        "obsctl.stack.fakes.dingtalk", ["--robots", str(robots), "--store", str(work / "m.jsonl")]
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = work / "relay.yaml"
    env = {
        **os.environ,
        "OBSCTL_DINGTALK_TEAM_URL": f"{robot.base_url}/robot/send?access_token=tok-bench",
    }
    log = (work / "relay.log").open("wb")

    def start(send_limit: int) -> subprocess.Popen[bytes]:
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": f"127.0.0.1:{port}",
                    "webhook": {"token": TOKEN},
                    "delivery": {
                        "rate_limit_per_minute": send_limit,
                        "spool_dir": str(work / "spool"),
                        # Both bursts stay queued (paced at 20/min) until the drain: room for
                        # all of them, or the second burst is refused with 503s by design.
                        "max_queue": 2 * args.webhooks,
                    },
                    "render": {
                        "templates_dir": str(TEMPLATES),
                        "link_prefixes": ["http://127.0.0.1:3000/"],
                    },
                    "targets": {"team": {"secret": SECRET}},
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "obsctl", "relay", "--config", str(config), "--log-level",
             "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/ready", timeout=1)
                return process
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    sys.exit("relay did not start")
                time.sleep(0.1)

    relay = start(DINGTALK_LIMIT)
    try:
        process = psutil.Process(relay.pid)
        time.sleep(args.settle)
        cpu_before = sum(process.cpu_times()[:2])
        time.sleep(60)
        idle_cpu = (sum(process.cpu_times()[:2]) - cpu_before) / 60 * 100
        rss_idle = rss_mb(relay.pid)

        spy = None
        if os.environ.get("BENCH_PROFILE"):  # py-spy's raw stacks of the relay during the bursts
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                 "-o", os.environ["BENCH_PROFILE"], "--pid", str(relay.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        rows = []
        first = 0
        for label, rate in (("flat out", 0.0), (f"{args.rate:,.0f}/s offered", args.rate)):
            queue: Any = multiprocessing.Queue()
            loader = multiprocessing.Process(
                target=load,
                args=(f"{base}/dingtalk/team", args.webhooks, args.clients, rate, first, queue),
            )
            loader.start()
            latencies, statuses, elapsed = queue.get()
            loader.join()
            rows.append((label, latencies, statuses, elapsed))
            first += args.webhooks
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        rss_burst = rss_mb(relay.pid)
        # Draining 2 x N alerts at DingTalk's 20/min would take hours: restart the relay (the
        # spool carries the queue over) with a raised send limit the fake robot also allows.
        relay.terminate()
        relay.wait(timeout=20)
        relay = start(DRAIN_LIMIT)
        peak = rss_mb(relay.pid)

        drained_at = time.monotonic()
        while httpx.get(f"{base}/health").json()["targets"]["team"]["queue_depth"]:
            peak = max(peak, rss_mb(relay.pid))
            if time.monotonic() - drained_at > 900:
                sys.exit("the queue did not drain in 15 minutes")
            time.sleep(0.5)
        drain_seconds = time.monotonic() - drained_at
        time.sleep(5)
        rss_drained = rss_mb(relay.pid)
        sent = httpx.get(f"{robot.base_url}/_messages", params={"accepted": "true"}).json()
        texts = "".join(m["body"]["markdown"]["text"] for m in sent["messages"])
        seen = re.findall(r"B(\d{5})E", texts)
        counts = {int(s): 0 for s in seen}
        for s in seen:
            counts[int(s)] += 1
        total = 2 * args.webhooks
        missing = total - len(counts)
        twice = sum(1 for c in counts.values() if c > 1)
    finally:
        relay.terminate()
        relay.wait(timeout=20)
        robot.close()

    print(f"## relay intake, spool on ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
    print(f"{args.webhooks} webhooks of one alert per run, {args.clients} concurrent clients\n")
    print("| load | webhooks/s | p50 ms | p99 ms | max ms | answers |")
    print("|---|---|---|---|---|---|")
    for label, latencies, statuses, elapsed in rows:
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
        print(
            f"| {label} | {len(latencies) / elapsed:,.0f} | "
            f"{statistics.median(latencies) * 1e3:.1f} | {percentile(latencies, 0.99) * 1e3:.1f} | "
            f"{max(latencies) * 1e3:.1f} | {answers} |"
        )
    print(
        f"\ndelivered: {len(counts)} of {total} alerts in {len(sent['messages'])} messages, "
        f"{missing} missing, {twice} twice; drained after a restart in {drain_seconds:.0f} s "
        f"at {DRAIN_LIMIT}/min\n"
    )
    print("| relay RSS MB: idle | after the bursts | restarted, draining peak | drained "
          "| idle CPU % of a core |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| {rss_idle:.1f} | {rss_burst:.1f} | {peak:.1f} | {rss_drained:.1f} | {idle_cpu:.2f} |")
    if missing or twice:
        sys.exit(1)


if __name__ == "__main__":
    main()
