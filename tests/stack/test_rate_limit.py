"""The demo platform's rate limiters (rate-limiter-flexible on a real Redis), Redis up and down."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RedisServer, RunningStack, in_ci, stop_process, wait_for

DEMO = Path(__file__).resolve().parents[2] / "obsctl" / "stack" / "demo_platform"
HAS_MODULES = (DEMO / "node_modules" / "rate-limiter-flexible").is_dir()

pytestmark = [
    pytest.mark.needs_tools("node", "redis-server"),
    pytest.mark.skipif(not HAS_MODULES and not in_ci(), reason="run `npm ci` in demo_platform"),
]

TASK_CREATE = 3  # the harness's task_create limit per window; the others stay out of the way

# The platform's limiter middleware in a bare express app on the platform's kind of ioredis
# connection, with its metrics on /metrics; prints its URL once it listens.
HARNESS = """
const express = require('express');
const IORedis = require('ioredis');
const { createMetrics } = require('./src/metrics');
const { createRateLimits } = require('./src/rate-limit');
const redis = new IORedis(process.argv[1], { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
redis.on('error', () => {});
const metrics = createMetrics({ getPool: () => null, poolMax: 8 });
const rl = createRateLimits({ redis, limits: JSON.parse(process.argv[2]), metrics });
const registry = metrics.registry;
const app = express();
app.set('trust proxy', 'loopback');
app.post('/api/tasks', express.json(), rl.api, rl.taskCreate, (req, res) => res.json({ ok: 1 }));
app.get('/metrics', async (req, res) => res.type('text/plain').send(await registry.metrics()));
redis.once('ready', () => {
  const server = app.listen(0, '127.0.0.1', () =>
    console.log(`http://127.0.0.1:${server.address().port}`));
});
"""


@contextmanager
def _harness(redis: RedisServer) -> Iterator[str]:
    limits = {name: {"points": 1000, "seconds": 60} for name in ("global", "ip", "user")}
    limits["task_create"] = {"points": TASK_CREATE, "seconds": 60}
    node = shutil.which("node") or "node"
    proc = subprocess.Popen(
        [node, "-e", HARNESS, redis.url(), json.dumps(limits)],
        cwd=DEMO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), f"the harness did not start (exit {proc.poll()})"
        yield url
    finally:
        stop_process(proc)


def _post(url: str, user: str, ip: str = "198.51.100.1") -> httpx.Response:
    headers = {"x-user-id": user, "x-forwarded-for": ip}
    return httpx.post(f"{url}/api/tasks", json={}, headers=headers, timeout=5)


def _sample(url: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}}")


def test_past_the_limit_requests_get_429_naming_the_limiter(
    redis_server: Callable[..., RedisServer],
) -> None:
    with _harness(redis_server()) as url:
        rejected = {"limiter": "task_create", "outcome": "rejected"}
        assert _sample(url, "rate_limit_requests_total", **rejected) == 0  # zero-filled
        assert [_post(url, "7").status_code for _ in range(TASK_CREATE)] == [200] * TASK_CREATE

        refused = _post(url, "7")
        assert refused.status_code == 429
        body = refused.json()
        assert body["error"] == "rate_limited" and body["limiter"] == "task_create"
        assert 1 <= body["retry_after_seconds"] <= 60
        assert refused.headers["retry-after"] == str(body["retry_after_seconds"])
        assert _sample(url, "rate_limit_requests_total", **rejected) == 1
        # Another user (same IP) still has its own budget; the store never failed.
        assert _post(url, "8").status_code == 200
        assert _sample(url, "rate_limit_errors_total", limiter="task_create") == 0


@pytest.mark.parametrize("outage", ["stop", "hang"])
def test_a_redis_outage_limits_from_memory_instead_of_refusing_everyone(
    redis_server: Callable[..., RedisServer], outage: str
) -> None:
    redis = redis_server()
    with _harness(redis) as url:
        assert [_post(url, "7").status_code for _ in range(TASK_CREATE)] == [200] * TASK_CREATE
        assert _post(url, "7").status_code == 429
        redis.stop() if outage == "stop" else redis.hang()
        try:
            started = time.monotonic()
            # Each process limits alone from memory: the user's budget starts afresh there.
            answers = [_post(url, "7").status_code for _ in range(TASK_CREATE + 1)]
            took = time.monotonic() - started
            assert answers == [200] * TASK_CREATE + [429]
            assert _post(url, "9").status_code == 200
            # The store timeout (200 ms) bounds each check of a hung Redis.
            assert took < (TASK_CREATE + 1) * 4 * 0.5
            assert _sample(url, "rate_limit_errors_total", limiter="task_create") >= TASK_CREATE
        finally:
            if outage == "hang":
                redis.resume()


def _demo_metric(stack: RunningStack, line_start: str) -> float:
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(line_start))  # fmt: skip


def test_the_stack_platform_refuses_a_flooding_user_with_429(stack: RunningStack) -> None:
    """The shipped task_create limit (60 a minute per user) on the stack's own platform."""
    url = stack.env["DEMO_APP_URL"]
    counter = 'rate_limit_requests_total{limiter="task_create",outcome="rejected"}'
    before = _demo_metric(stack, counter)
    user = "999"  # one seeded user; the workload picks among 1000, a few times a minute each
    answers: list[Any] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(61):
            answer = client.post(
                "/api/tasks", json={"user_id": int(user), "feature": "matting"},
                headers={"x-user-id": user},
            )  # fmt: skip
            answers.append(answer)
            if answer.status_code == 429:
                break
            time.sleep(0.05)  # 20 requests/s: under the per-user limit of all routes (50/s)
    last = answers[-1]
    assert last.status_code == 429, [a.status_code for a in answers]
    assert last.json()["limiter"] == "task_create"
    assert int(last.headers["retry-after"]) == last.json()["retry_after_seconds"]
    assert _demo_metric(stack, counter) > before


def test_the_storm_drill_fault_floods_one_user_and_its_restore_stops_it(
    stack: RunningStack,
) -> None:
    """The rate-limit-storm drill's local fault and restore on the stack's platform."""
    from obsctl.drills.local import StackTarget
    from obsctl.drills.scenarios import SCENARIOS, STORM_LIMITER, STORM_REQUESTS_PER_SECOND

    target = StackTarget.open(stack.root)
    inject, restore = target.fault(SCENARIOS["rate-limit-storm"], None, "test")
    counter = f'rate_limit_requests_total{{limiter="{STORM_LIMITER}",outcome="rejected"}}'
    headers = {"Authorization": f"Bearer {stack.env['DEMO_ADMIN_TOKEN']}"}

    def flood() -> dict[str, Any]:
        state = httpx.get(f"{stack.env['DEMO_APP_URL']}/admin/state", headers=headers, timeout=5)
        return dict(state.json()["flood"])

    before = _demo_metric(stack, counter)
    try:
        inject()
        assert flood()["requests_per_second"] == STORM_REQUESTS_PER_SECOND
        wait_for("the flood to be refused", lambda: _demo_metric(stack, counter) > before + 20)
    finally:
        restore()
    stopped = flood()
    assert stopped["requests_per_second"] == 0 and stopped["rejected"] > 20
    time.sleep(1)
    sent = flood()["sent"]
    time.sleep(1)
    assert flood()["sent"] == sent, "the flood goes on after its restore"
