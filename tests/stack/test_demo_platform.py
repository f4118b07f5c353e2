"""The demo platform started by the stack behaves like the watched system."""

from __future__ import annotations

import json
import time

import httpx
import pymysql
import pytest
import redis

from conftest import RunningStack, mysql_connect, processes_mentioning, wait_for

FEATURES = ("matting", "outfit", "faceswap", "outpaint")


def _platform_db(stack: RunningStack) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return mysql_connect(stack.env["PLATFORM_MYSQL_DSN"])


def _scalar(stack: RunningStack, sql: str) -> int:
    conn = _platform_db(stack)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0
    finally:
        conn.close()


def _admin(stack: RunningStack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.env["DEMO_APP_URL"],
        headers={"Authorization": f"Bearer {stack.env['DEMO_ADMIN_TOKEN']}"},
        timeout=10,
    )


def test_schema_has_the_seed_indexes(stack: RunningStack) -> None:
    conn = _platform_db(stack)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index),"
            " MAX(non_unique) FROM information_schema.statistics WHERE table_schema = DATABASE()"
            " GROUP BY table_name, index_name"
        )
        indexes = {(t, cols): unique == 0 for t, _, cols, unique in cur.fetchall()}
    expected = {
        ("tasks", "user_id,status,created_at,id"): False,
        ("tasks", "status,created_at,id"): False,
        ("tasks", "vendor_task_id"): True,
        ("tasks", "updated_at,id"): False,
        ("tasks", "finished_at,id"): False,
        ("provider_configs", "provider,feature_key"): False,
        ("quotas", "user_id,updated_at"): False,
        ("feature_definitions", "feature_key"): True,
    }
    for key, unique in expected.items():
        assert key in indexes, f"missing index {key}"
        assert indexes[key] == unique, f"index {key} unique={indexes[key]}"


def test_seeded_users_all_have_quotas(stack: RunningStack) -> None:
    users = _scalar(stack, "SELECT COUNT(*) FROM users")
    assert users >= 1000
    assert _scalar(stack, "SELECT COUNT(*) FROM quotas") >= users
    features = _scalar(stack, "SELECT COUNT(DISTINCT feature_key) FROM feature_definitions")
    assert features == len(FEATURES)


def test_workload_moves_tasks_to_succeeded_and_failed(stack: RunningStack) -> None:
    def terminal() -> tuple[int, int] | None:
        ok = _scalar(stack, "SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'")
        bad = _scalar(stack, "SELECT COUNT(*) FROM tasks WHERE status = 'failed'")
        return (ok, bad) if ok and bad else None

    wait_for("tasks to succeed and fail", terminal, timeout=60)
    assert _scalar(stack, "SELECT COUNT(DISTINCT feature) FROM tasks") == len(FEATURES)
    assert _scalar(stack, "SELECT COUNT(DISTINCT provider) FROM tasks") >= 2
    wait_for(  # the aggregator runs every 5 s, on tasks finished 2 s ago
        "tasks counted in tasks_daily_stats",
        lambda: _scalar(stack, "SELECT COALESCE(SUM(count), 0) FROM tasks_daily_stats") > 0,
    )
    assert _scalar(stack, "SELECT COUNT(*) FROM tasks WHERE finished_at IS NULL AND status IN"
                   " ('succeeded', 'failed')") == 0  # fmt: skip
    assert _scalar(stack, "SELECT SUM(used) FROM quotas") > 0


def test_queues_are_real_bullmq_queues(stack: RunningStack) -> None:
    client = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"], decode_responses=True)

    def finished_jobs() -> int:
        return sum(client.zcard(f"bull:{q}:completed") for q in FEATURES)

    wait_for("completed BullMQ jobs", finished_jobs, timeout=60)
    for queue in FEATURES:
        assert client.exists(f"bull:{queue}:meta"), queue
        assert client.type(f"bull:{queue}:events") == "stream"
    job_key = next(k for k in client.scan_iter("bull:matting:*") if k.split(":")[-1].isdigit())
    assert {"data", "timestamp"} <= set(client.hkeys(job_key))


def test_api_histogram_is_exported_and_scraped_by_prometheus(stack: RunningStack) -> None:
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    assert 'http_request_duration_seconds_bucket{le="0.2",route="/api/tasks"' in text or (
        "http_request_duration_seconds_bucket{" in text and 'route="/api/tasks"' in text
    )
    for gauge in ("in_use", "pending", "available"):
        assert f'db_pool_connections_{gauge}{{pool="platform"}}' in text
    assert "process_cpu_seconds_total" in text

    def query(expr: str) -> list[dict[str, object]]:
        body = httpx.get(
            f"{stack.env['PROMETHEUS_URL']}/api/v1/query", params={"query": expr}, timeout=5
        ).json()
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    wait_for("up{job='demo-app'} == 1", lambda: query('up{job="demo-app"} == 1'), timeout=30)
    wait_for(
        "the API histogram in Prometheus",
        lambda: query("sum(rate(http_request_duration_seconds_count[1m])) > 0"),
        timeout=30,
    )


def test_admin_endpoints_need_the_token(stack: RunningStack) -> None:
    url = stack.env["DEMO_APP_URL"]
    assert httpx.get(f"{url}/admin/state", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (
        httpx.put(f"{url}/admin/faults", json={"error_rate": 1}, headers=wrong).status_code == 401
    )


def test_admin_injects_api_errors_and_restores(stack: RunningStack) -> None:
    with _admin(stack) as admin:
        bad = admin.put("/admin/faults", json={"error_rate": 2})
        assert bad.status_code == 400 and "error_rate" in bad.text
        assert admin.put("/admin/faults", json={"error_rate": 1.0, "latency_ms": 0}).is_success
        try:
            response = admin.post("/api/tasks", json={"user_id": 1, "feature": "matting"})
            assert response.status_code >= 500
        finally:
            assert admin.put("/admin/faults", json={"error_rate": 0, "latency_ms": 0}).is_success
        assert admin.get("/admin/state").json()["faults"]["error_rate"] == 0


def test_admin_switches_a_provider_into_an_outage_and_back(stack: RunningStack) -> None:
    beta = dict(p.split("=", 1) for p in stack.env["PROVIDER_URLS"].split(","))["beta"]
    key = {"Authorization": f"Bearer {stack.env['PROVIDER_BETA_KEY']}"}
    with _admin(stack) as admin:
        assert admin.put("/admin/providers/nope", json={"mode": "down"}).status_code == 404
        assert admin.put("/admin/providers/beta", json={"mode": "down"}).is_success
        try:
            assert httpx.get(f"{beta}/v1/heartbeat", headers=key, timeout=2).status_code == 503
        finally:
            assert admin.put("/admin/providers/beta", json={"mode": "ok"}).is_success
        assert httpx.get(f"{beta}/v1/heartbeat", headers=key, timeout=2).status_code == 200


def _breaker_state(stack: RunningStack, provider: str) -> str | None:
    """The state whose circuit_breaker_state series is 1 for the provider, from /metrics."""
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    prefix = f'circuit_breaker_state{{provider="{provider}",state="'
    for line in text.splitlines():
        if line.startswith(prefix) and line.endswith(" 1"):
            return line[len(prefix) :].split('"', 1)[0]
    return None


def test_a_failing_provider_opens_its_breaker_and_tasks_move_to_the_other(
    stack: RunningStack,
) -> None:
    assert _breaker_state(stack, "beta") == "closed"
    before = _scalar(stack, "SELECT COALESCE(MAX(id), 0) FROM tasks")
    with _admin(stack) as admin:
        assert admin.put("/admin/providers/beta", json={"mode": "submit_error"}).is_success
        try:
            wait_for("beta's breaker to open", lambda: _breaker_state(stack, "beta") == "open")
            after = _scalar(stack, "SELECT COALESCE(MAX(id), 0) FROM tasks")
            unfinished = (
                f"SELECT COUNT(*) FROM tasks WHERE id > {before} AND id <= {after}"
                " AND finished_at IS NULL"
            )
            wait_for(
                "the tasks of the outage to finish",
                lambda: _scalar(stack, unfinished) == 0,
                timeout=60,
            )
        finally:
            assert admin.put("/admin/providers/beta", json={"mode": "ok"}).is_success
        # A trial call 30 s after opening finds beta healthy again.
        wait_for("beta's breaker to close", lambda: _breaker_state(stack, "beta") == "closed",
                 timeout=90)  # fmt: skip

    outage = f"id > {before} AND id <= {after}"
    assert _scalar(stack, f"SELECT COUNT(*) FROM tasks WHERE {outage}") > 0
    # No task was lost to beta's outage: each went to alpha, on failure or at once while open.
    assert _scalar(stack, f"SELECT COUNT(*) FROM tasks WHERE {outage} AND error_code IN"
                   " ('provider_error', 'provider_circuit_open')") == 0  # fmt: skip
    assert _scalar(stack, f"SELECT COUNT(*) FROM tasks WHERE {outage} AND status = 'succeeded'"
                   " AND provider = 'alpha'") > 0  # fmt: skip
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    fallbacks = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('circuit_breaker_fallbacks_total{provider="beta"}')
    )
    assert fallbacks > 0
    assert 'circuit_breaker_calls_total{provider="beta",outcome="rejected"}' in text


def _metric(url: str, prefix: str) -> float:
    """The value of the first sample of a /metrics page that starts with prefix (0 if none)."""
    lines = httpx.get(url, timeout=5).text.splitlines()
    return next((float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix)), 0)


def test_a_task_failing_every_attempt_is_retried_with_back_off_then_dead_lettered(
    stack: RunningStack,
) -> None:
    client = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"], decode_responses=True)
    app_metrics = f"{stack.env['DEMO_APP_URL']}/metrics"
    retried = 'bullmq_job_retries_total{queue="matting",reason="provider_failed"}'
    retries_before = _metric(app_metrics, retried)
    with _admin(stack) as admin:
        # beta accepts every task and fails it on its side (the dead-letter drill's fault).
        assert admin.put("/admin/providers/beta", json={"mode": "task_failure"}).is_success
        try:
            task = None
            for _ in range(30):  # the provider is a weighted random choice
                created = admin.post("/api/tasks", json={"user_id": 1, "feature": "matting"})
                assert created.status_code == 201, created.text
                if created.json()["provider"] == "beta":
                    task = created.json()
                    break
            assert task is not None, "no task went to beta"

            def dead_letter() -> dict[str, object] | None:
                body = admin.get("/admin/dead-letters", params={"limit": 1000}).json()
                return next((j for j in body["jobs"] if j["task_id"] == task["id"]), None)

            entry = wait_for("the task's job in the dead-letter queue", dead_letter, timeout=60)
        finally:
            assert admin.put("/admin/providers/beta", json={"mode": "ok"}).is_success

    assert (entry["queue"], entry["reason"], entry["attempts"]) == ("matting", "provider_failed", 3)
    assert "model_error" in str(entry["error"])
    failed = (
        "SELECT status = 'failed' AND error_code = 'provider_failed' AND finished_at IS NOT NULL"
        f" FROM tasks WHERE id = {task['id']}"
    )
    assert _scalar(stack, failed) == 1
    # The job itself stays in BullMQ's failed set after its 3 attempts; its last one started at
    # least the back-off (1 s, then 2 s) after it was created.
    job = client.hgetall(f"bull:matting:{entry['job_id']}")
    assert job["atm"] == "3"  # BullMQ's attemptsMade
    assert client.zscore("bull:matting:failed", entry["job_id"]) is not None
    assert int(job["processedOn"]) - int(job["timestamp"]) >= 3000
    assert _metric(app_metrics, retried) >= retries_before + 2
    dead = 'bullmq_jobs_dead_lettered_total{queue="matting",reason="provider_failed"}'
    assert _metric(app_metrics, dead) >= 1
    # The dead-letter queue is paused, with no worker: the exporter counts its jobs as paused.
    assert client.hget("bull:dead-letter:meta", "paused") == "1"
    exporter = f"http://{stack.env['OBSCTL_LISTEN']}/metrics"
    depth = 'bullmq_queue_jobs{prefix="bull",queue="dead-letter",state="paused"'
    wait_for("the exporter to count the dead letter",
             lambda: _metric(exporter, depth) >= 1, timeout=60)  # fmt: skip

    # beta is healthy again: the replay puts the failed task back to work, where it succeeds.
    with _admin(stack) as admin:
        answer = admin.post("/admin/dead-letters/replay", json={"limit": 1000})
        assert answer.status_code == 200, answer.text
        replayed = answer.json()["replayed"]
        assert {"id": entry["id"], "queue": "matting", "task_id": task["id"]} in replayed
        left = admin.get("/admin/dead-letters", params={"limit": 1000}).json()["jobs"]
        assert all(j["task_id"] != task["id"] for j in left)
        assert admin.post("/admin/dead-letters/replay", json={"limit": 0}).status_code == 400
    succeeded = f"SELECT status = 'succeeded' FROM tasks WHERE id = {task['id']}"
    wait_for("the replayed task to succeed", lambda: _scalar(stack, succeeded) == 1, timeout=60)
    client.close()


def test_the_stack_providers_require_their_own_key(stack: RunningStack) -> None:
    alpha = stack.env["PROVIDER_ALPHA_URL"]
    answers = {
        name: httpx.get(f"{alpha}/v1/heartbeat", headers=headers, timeout=2).status_code
        for name, headers in {
            "none": {},
            "beta's key": {"Authorization": f"Bearer {stack.env['PROVIDER_BETA_KEY']}"},
            "alpha's key": {"Authorization": f"Bearer {stack.env['PROVIDER_ALPHA_KEY']}"},
        }.items()
    }

    assert answers == {"none": 401, "beta's key": 401, "alpha's key": 200}
    # The stack hands the keys over in the environment: no command line shows one.
    assert processes_mentioning(stack.env["PROVIDER_ALPHA_KEY"]) == []


def test_admin_pauses_workers_so_the_backlog_grows(stack: RunningStack) -> None:
    client = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"])
    with _admin(stack) as admin:
        assert admin.post("/admin/workers/pause").is_success
        try:
            assert admin.post(
                "/admin/workload/burst", json={"count": 50, "feature": "outpaint"}
            ).is_success
            waiting = wait_for(
                "a backlog in bull:outpaint:wait", lambda: client.llen("bull:outpaint:wait") >= 50
            )
            assert waiting
        finally:
            assert admin.post("/admin/workers/resume").is_success
        wait_for(
            "the backlog to drain after resume",
            lambda: client.llen("bull:outpaint:wait") < 50,
            timeout=60,
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [({"user_id": 1, "feature": "nope"}, "feature"), ({"feature": "matting"}, "user_id")],
)
def test_bad_task_requests_are_rejected_naming_the_field(
    stack: RunningStack, body: dict[str, object], field: str
) -> None:
    response = httpx.post(f"{stack.env['DEMO_APP_URL']}/api/tasks", json=body, timeout=5)
    assert response.status_code == 400
    assert field in response.text


def _cache_lookups(stack: RunningStack) -> dict[str, float]:
    """config_cache_lookups_total by "layer/result", and the invalidations received."""
    text = httpx.get(f"{stack.env['DEMO_APP_URL']}/metrics", timeout=5).text
    seen: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("config_cache_lookups_total{"):
            labels, value = line.rsplit(" ", 1)
            layer = labels.split('layer="', 1)[1].split('"', 1)[0]
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            seen[f"{layer}/{result}"] = float(value)
        elif line.startswith("config_cache_invalidations_total "):
            seen["invalidations"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("config_cache_invalidation_subscribed "):
            seen["subscribed"] = float(line.rsplit(" ", 1)[1])
    return seen


def test_feature_config_is_cached_null_cached_and_invalidated_within_200_ms(
    stack: RunningStack,
) -> None:
    """BE-CACHE-001..003 on the stack's Redis: cache-aside, null cache, pub/sub invalidation."""
    r = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"])
    task = {"user_id": 5, "feature": "faceswap"}
    api = f"{stack.env['DEMO_APP_URL']}/api/tasks"
    before = _cache_lookups(stack)
    assert before["subscribed"] == 1
    assert int(r.pubsub_numsub("config.invalidate")[0][1]) >= 1
    assert httpx.post(api, json=task, timeout=5).status_code == 201
    assert json.loads(r.get("cfg:faceswap:v1") or b"")["feature"]["key"] == "faceswap"
    assert 0 < r.ttl("cfg:faceswap:v1") <= 360
    hits = _cache_lookups(stack)
    assert hits["local/hit"] > before["local/hit"]

    with _admin(stack) as admin:
        try:
            changed = admin.put("/admin/features/faceswap", json={"enabled": False})
            assert changed.json()["invalidated"] == ["cfg:faceswap:v1"]
            refused = httpx.post(api, json=task, timeout=5)
            assert refused.status_code == 400, refused.text
            assert r.get("cfg:faceswap:v1") == b"null"  # the null cache
            assert 0 < r.ttl("cfg:faceswap:v1") <= 30
            httpx.post(api, json=task, timeout=5)
            nulls = _cache_lookups(stack)
            assert nulls["local/null"] > hits["local/null"]
            assert nulls["invalidations"] > before["invalidations"]
        finally:
            started = time.monotonic()
            assert admin.put("/admin/features/faceswap", json={"enabled": True}).is_success
            created = httpx.post(api, json=task, timeout=5)
            elapsed = time.monotonic() - started
    assert created.status_code == 201, created.text
    assert elapsed < 0.2, f"the re-enabled feature took {elapsed * 1000:.0f} ms to be seen"


def test_the_cache_miss_storm_fault_keeps_missing_and_its_restore_refills(
    stack: RunningStack,
) -> None:
    """The cache-miss-storm drill's local fault and restore on the stack's platform."""
    from obsctl.drills.local import StackTarget
    from obsctl.drills.scenarios import SCENARIOS

    r = redis.Redis.from_url(stack.env["OBSCTL_REDIS_URL"])
    api = f"{stack.env['DEMO_APP_URL']}/api/tasks"
    task = {"user_id": 7, "feature": "outfit"}
    target = StackTarget.open(stack.root)
    inject, restore = target.fault(SCENARIOS["cache-miss-storm"], None, "test")
    try:
        inject()
        before = _cache_lookups(stack)
        for _ in range(3):
            assert httpx.post(api, json=task, timeout=5).status_code == 201
        during = _cache_lookups(stack)
        assert not list(r.scan_iter("cfg:*"))  # flushed, and nothing is written back
        assert during["redis/miss"] - before["redis/miss"] >= 6  # two lookups per creation
        assert during["local/hit"] == before["local/hit"]
    finally:
        restore()
    assert httpx.post(api, json=task, timeout=5).status_code == 201
    assert r.exists("cfg:outfit:v1")
    after = _cache_lookups(stack)
    assert httpx.post(api, json=task, timeout=5).status_code == 201
    assert _cache_lookups(stack)["local/hit"] > after["local/hit"]
