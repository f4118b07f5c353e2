"""Demo platform modules checked in plain Node, without MySQL or Redis."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import in_ci

DEMO = Path(__file__).resolve().parents[2] / "obsctl" / "stack" / "demo_platform"
NODE = shutil.which("node")
HAS_MODULES = (DEMO / "node_modules" / "express").is_dir()

pytestmark = pytest.mark.needs_tools("node")
# `obsctl stack install` runs npm ci; CI runs it, so there the modules must be present.
needs_modules = pytest.mark.skipif(
    not HAS_MODULES and not in_ci(), reason="run `npm ci` in demo_platform first"
)

VALID_ENV = {
    "DEMO_PORT": "18080",
    "PLATFORM_MYSQL_DSN": "mysql://platform:p%40ss@127.0.0.1:3307/platform",
    "REDIS_URL": "redis://127.0.0.1:6380/0",
    "PROVIDER_URLS": "alpha=http://127.0.0.1:18306/, beta=http://127.0.0.1:18307",
    "DEMO_ADMIN_TOKEN": "token-123",
}


def node_json(script: str) -> Any:
    """Run a Node snippet in the demo platform directory and parse the last line it prints."""
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", script], cwd=DEMO, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # the platform's log lines come first


def load_config(env: dict[str, str]) -> Any:
    script = f"""
      const {{ loadConfig }} = require('./src/config');
      try {{
        const c = loadConfig({json.dumps(env)});
        console.log(JSON.stringify({{
          ...c, providers: [...c.providers], providerKeys: [...c.providerKeys],
        }}));
      }} catch (err) {{
        console.log(JSON.stringify({{ problems: err.problems }}));
      }}
    """
    return node_json(script)


def test_config_reads_env_with_defaults() -> None:
    config = load_config(VALID_ENV)

    assert config["host"] == "127.0.0.1"
    assert config["port"] == 18080
    assert config["mysql"] == {
        "host": "127.0.0.1",
        "port": 3307,
        "user": "platform",
        "password": "p@ss",
        "database": "platform",
    }
    assert config["providers"] == [
        ["alpha", "http://127.0.0.1:18306"],
        ["beta", "http://127.0.0.1:18307"],
    ]
    assert (config["tasksPerSecond"], config["seedUsers"], config["bullmqPrefix"]) == (
        4,
        1000,
        "bull",
    )


def test_config_names_every_bad_variable_without_leaking_the_password() -> None:
    env = {
        **VALID_ENV,
        "DEMO_PORT": "70000",
        "PLATFORM_MYSQL_DSN": "mysql://platform:topsecret@127.0.0.1:3306/",
        "PROVIDER_URLS": "alpha=ftp://x",
        "DEMO_TASKS_PER_SECOND": "fast",
    }
    del env["DEMO_ADMIN_TOKEN"]

    problems = load_config(env)["problems"]

    named = {p.split(":")[0].split(" ")[0] for p in problems}
    assert named == {
        "DEMO_PORT",
        "PLATFORM_MYSQL_DSN",
        "PROVIDER_URLS",
        "DEMO_TASKS_PER_SECOND",
        "DEMO_ADMIN_TOKEN",
    }
    assert not any("topsecret" in p for p in problems)


def test_provider_keys_are_read_per_provider_and_never_echoed() -> None:
    keyed = load_config(
        {**VALID_ENV, "PROVIDER_ALPHA_KEY": "sk-alpha-1", "PROVIDER_GAMMA_KEY": "x"}
    )
    broken = load_config({**VALID_ENV, "PROVIDER_BETA_KEY": "sk-beta 2\n"})

    assert keyed["providerKeys"] == [["alpha", "sk-alpha-1"]]
    assert broken["problems"] == [
        "PROVIDER_BETA_KEY: must be printable ASCII without spaces (the key is not shown)"
    ]


def test_weighted_provider_choice_follows_the_weights() -> None:
    picks = node_json("""
      const { Catalog } = require('./src/catalog');
      const configs = { matting: { feature: { key: 'matting' }, routes: [
        { provider: 'a', weight: 1 }, { provider: 'b', weight: 3 },
        { provider: 'gone', weight: 9 }] } };
      const cache = { get: async (key) => configs[key] || null };
      const catalog = new Catalog(null, new Map([['a', 'u'], ['b', 'u']]), { cache });
      (async () => console.log(JSON.stringify(await Promise.all(
        [0, 0.24, 0.26, 0.99].map((r) => catalog.pickProvider('matting', { random: () => r }))
        .concat([
          catalog.pickProvider('outfit'),
          catalog.pickProvider('matting', { exclude: ['b'], random: () => 0.99 }),
          catalog.pickProvider('matting', { usable: (p) => p !== 'a', random: () => 0 }),
          catalog.pickProvider('matting', { exclude: ['a'], usable: (p) => p !== 'b' }),
        ])))))();
    """)

    assert picks == ["a", "a", "b", "b", None, "a", "b", None]


def test_a_provider_breaker_opens_on_failures_and_closes_after_a_good_trial() -> None:
    seen = node_json("""
      const { createMetrics } = require('./src/metrics');
      const { ProviderBreakers } = require('./src/breakers');
      const { ProviderError } = require('./src/provider-client');
      const metrics = createMetrics({ getPool: () => null, poolMax: 8, providers: ['a', 'b'] });
      const registry = metrics.registry;
      const breakers = new ProviderBreakers(['a', 'b'], metrics.breakers, {
        timeout: 200, errorThresholdPercentage: 50, resetTimeout: 300,
        rollingCountTimeout: 1000, rollingCountBuckets: 10, volumeThreshold: 3 });
      const fail = async () => { throw new ProviderError('provider_error', 'HTTP 500'); };
      const codes = [];
      const metric = async (name) => (await registry.getSingleMetricAsString(name))
        .split('\\n').filter((l) => l.includes('provider="a"') && !l.endsWith(' 0'));
      (async () => {
        for (let i = 0; i < 2; i++) await breakers.fire('a', fail).catch((e) => codes.push(e.code));
        const openAfterTwo = breakers.isOpen('a');
        await breakers.fire('a', fail).catch((e) => codes.push(e.code));
        await breakers.fire('a', async () => 1).catch((e) => codes.push(e.code));
        const open = { a: breakers.isOpen('a'), b: breakers.isOpen('b') };
        const state = await metric('circuit_breaker_state');
        await new Promise((r) => setTimeout(r, 350));
        const trial = await breakers.fire('a', async () => 'ok');
        const slow = await breakers.fire('b', () => new Promise((r) => setTimeout(r, 400)))
          .catch((e) => e.code);
        console.log(JSON.stringify({ codes, openAfterTwo, open, state, trial, slow,
          closed: !breakers.isOpen('a'), calls: await metric('circuit_breaker_calls_total'),
          opens: await metric('circuit_breaker_opens_total') }));
        breakers.shutdown();
      })();
    """)

    assert seen["codes"] == ["provider_error"] * 3 + ["EOPENBREAKER"]
    assert seen["openAfterTwo"] is False  # under the volume threshold
    assert seen["open"] == {"a": True, "b": False}
    assert seen["state"] == ['circuit_breaker_state{provider="a",state="open"} 1']
    assert (seen["trial"], seen["closed"], seen["slow"]) == ("ok", True, "ETIMEDOUT")
    assert sorted(seen["calls"]) == [
        'circuit_breaker_calls_total{provider="a",outcome="failure"} 3',
        'circuit_breaker_calls_total{provider="a",outcome="rejected"} 1',
        'circuit_breaker_calls_total{provider="a",outcome="success"} 1',
    ]
    assert seen["opens"] == ['circuit_breaker_opens_total{provider="a"} 1']


def test_validators_name_the_field() -> None:
    errors = node_json("""
      const v = require('./src/validate');
      const attempt = (fn) => {
        try { fn(); return null; } catch (e) { return [e.status, e.body]; }
      };
      console.log(JSON.stringify([
        attempt(() => v.requireObject([1])),
        attempt(() => v.requireObject({ error_rat: 1 }, { allowed: ['error_rate'] })),
        attempt(() => v.number(2, 'error_rate', { min: 0, max: 1 })),
        attempt(() => v.number(1.5, 'latency_ms', { min: 0, max: 9, integer: true })),
        attempt(() => v.idParam('12abc', 'id')),
        attempt(() => v.idParam('42', 'id')),
      ]));
    """)

    fields = [e[1]["field"] if e else None for e in errors]
    assert fields == ["body", "error_rat", "error_rate", "latency_ms", "id", None]
    assert all(e[0] == 400 for e in errors if e)


@needs_modules
def test_list_cursor_round_trips_and_rejects_garbage() -> None:
    result = node_json("""
      const { encodeCursor, decodeCursor } = require('./src/routes/api');
      const cursor = encodeCursor({ id: 42, created_at: new Date('2026-01-02T03:04:05.678Z') });
      const back = decodeCursor(cursor);
      let bad = null;
      try { decodeCursor('not-a-cursor'); } catch (e) { bad = e.body; }
      console.log(JSON.stringify({ id: back.id, at: back.createdAt.toISOString(), bad }));
    """)

    assert result["id"] == 42
    assert result["at"] == "2026-01-02T03:04:05.678Z"
    assert result["bad"]["field"] == "cursor"


@needs_modules
def test_server_exits_2_naming_missing_variables() -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "src/server.js"],
        cwd=DEMO,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["level"] == "error"
    required = ("DEMO_PORT", "PLATFORM_MYSQL_DSN", "REDIS_URL", "PROVIDER_URLS", "DEMO_ADMIN_TOKEN")
    for var in required:
        assert any(var in p for p in line["problems"]), var


def test_an_open_breaker_is_reset_by_hand() -> None:
    seen = node_json("""
      const { createMetrics } = require('./src/metrics');
      const { ProviderBreakers } = require('./src/breakers');
      const metrics = createMetrics({ getPool: () => null, poolMax: 8, providers: ['a'] });
      const breakers = new ProviderBreakers(['a'], metrics.breakers, {
        errorThresholdPercentage: 50, resetTimeout: 60000, volumeThreshold: 1 });
      (async () => {
        await breakers.fire('a', async () => { throw new Error('boom'); }).catch(() => {});
        const opened = breakers.isOpen('a');
        const known = breakers.reset('a');
        const state = (await metrics.registry.getSingleMetricAsString('circuit_breaker_state'))
          .split('\\n').filter((l) => l.endsWith(' 1'));
        console.log(JSON.stringify({ opened, known, unknown: breakers.reset('zz'),
          closed: !breakers.isOpen('a'), state, after: await breakers.fire('a', async () => 2) }));
        breakers.shutdown();
      })();
    """)

    assert seen == {
        "opened": True, "known": True, "unknown": False, "closed": True, "after": 2,
        "state": ['circuit_breaker_state{provider="a",state="closed"} 1'],
    }  # fmt: skip


# A provider on loopback that accepts every task and fails it (the fake's task_failure mode),
# the platform's real processor, breakers and metrics, a recording task table and dead-letter
# queue in place of MySQL and Redis.
_RETRY_HARNESS = """
  const http = require('node:http');
  const { createMetrics } = require('./src/metrics');
  const { ProviderBreakers } = require('./src/breakers');
  const { DeadLetters } = require('./src/dead-letter');
  const { createTaskProcessor } = require('./src/worker');
  const { JOB_OPTIONS } = require('./src/queues');
  // Task 3's input is refused (content_rejected), every other task fails with model_error.
  const provider = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    res.setHeader('content-type', 'application/json');
    if (req.method === 'POST') {
      res.statusCode = 202;
      res.end(JSON.stringify({ task_id: `v${JSON.parse(body).client_task_id}` }));
      return;
    }
    const error = req.url.endsWith('/v3') ? 'content_rejected' : 'model_error';
    res.end(JSON.stringify({ status: 'failed', error }));
  });
  const calls = [];
  const tasks = new Map([[1, 'alpha'], [2, 'gone'], [3, 'alpha']].map(([id, p]) => [id, {
    id, feature: 'matting', provider: p, status: 'queued', vendor_task_id: null }]));
  const repo = {
    getTask: async (id) => ({ ...tasks.get(id) }),
    markProcessing: async (id) => { tasks.get(id).status = 'processing'; return true; },
    setVendorTask: async (id, v) => { calls.push(['vendor', id, v.vendorTaskId]);
      tasks.get(id).vendor_task_id = v.vendorTaskId; },
    clearVendorTask: async (id) => { calls.push(['clear', id]);
      tasks.get(id).vendor_task_id = null; },
    finishTask: async (id, status, code) => { calls.push(['finish', id, status, code]); },
  };
  const metrics = createMetrics({ getPool: () => null, poolMax: 8, providers: ['alpha'] });
  const added = [];
  const queue = { add: async (name, data, opts) => added.push({ name, data, jobId: opts.jobId }) };
  const deadLetters = new DeadLetters({ queue, counter: metrics.jobs.deadLettered });
  const breakers = new ProviderBreakers(['alpha'], metrics.breakers);
  const job = (id, taskId, attemptsMade) => ({ id, queueName: 'matting', data: { taskId },
    attemptsMade, opts: JOB_OPTIONS });
  const nonZero = async (name) => (await metrics.registry.getSingleMetricAsString(name))
    .split('\\n').filter((l) => !l.startsWith('#') && !l.endsWith(' 0'));
"""


def test_a_failed_attempt_is_retried_and_the_last_one_dead_lettered() -> None:
    seen = node_json(
        _RETRY_HARNESS
        + """
      provider.listen(0, '127.0.0.1', async () => {
        const url = `http://127.0.0.1:${provider.address().port}`;
        const process = createTaskProcessor({ repo, breakers,
          catalog: { pickProvider: async () => null }, providerUrls: new Map([['alpha', url]]),
          retries: metrics.jobs.retries, deadLetters });
        const errors = [];
        for (const attempt of [0, 1, 2]) {
          await process(job('7', 1, attempt)).catch((e) => errors.push([e.code, e.name]));
        }
        await process(job('8', 2, 0)).catch((e) => errors.push([e.code, e.name]));
        await process(job('9', 3, 0)).catch((e) => errors.push([e.code, e.name]));
        console.log(JSON.stringify({ options: JOB_OPTIONS, errors, calls, added,
          retries: await nonZero('bullmq_job_retries_total'),
          dead: await nonZero('bullmq_jobs_dead_lettered_total') }));
        breakers.shutdown();
        provider.close();
      });
    """
    )

    assert seen["options"]["attempts"] == 3
    assert seen["options"]["backoff"] == {"type": "exponential", "delay": 1000}
    assert seen["errors"] == [["provider_failed", "ProviderError"]] * 3 + [
        ["provider_unknown", "UnrecoverableError"],
        ["provider_rejected", "UnrecoverableError"],
    ]
    # Two retries, each forgetting the vendor task so the next attempt submits anew; the third
    # attempt fails the task. A provider without a URL is not retried at all, nor is an input
    # the provider refuses, which is not dead-lettered either: there is nothing to replay.
    assert seen["calls"] == [
        ["vendor", 1, "v1"], ["clear", 1],
        ["vendor", 1, "v1"], ["clear", 1],
        ["vendor", 1, "v1"], ["finish", 1, "failed", "provider_failed"],
        ["finish", 2, "failed", "provider_unknown"],
        ["vendor", 3, "v3"], ["finish", 3, "failed", "provider_rejected"],
    ]  # fmt: skip
    assert [(a["jobId"], a["data"]["reason"], a["data"]["attempts"]) for a in seen["added"]] == [
        ("matting-7", "provider_failed", 3),
        ("matting-8", "provider_unknown", 1),
    ]
    assert seen["added"][0]["data"] | {"error": "", "failed_at": ""} == {
        "queue": "matting", "job_id": "7", "task_id": 1, "reason": "provider_failed",
        "error": "", "attempts": 3, "failed_at": "",
    }  # fmt: skip
    assert "model_error" in seen["added"][0]["data"]["error"]
    assert seen["retries"] == [
        'bullmq_job_retries_total{queue="matting",reason="provider_failed"} 2'
    ]
    assert sorted(seen["dead"]) == [
        'bullmq_jobs_dead_lettered_total{queue="matting",reason="provider_failed"} 1',
        'bullmq_jobs_dead_lettered_total{queue="matting",reason="provider_unknown"} 1',
    ]


def test_retry_and_dead_letter_series_exist_before_any_failure() -> None:
    seen = node_json("""
      const { createMetrics } = require('./src/metrics');
      const metrics = createMetrics({ getPool: () => null, poolMax: 8 });
      (async () => {
        const text = await metrics.registry.metrics();
        const count = (name) => text.split('\\n').filter((l) => l.startsWith(name + '{')).length;
        console.log(JSON.stringify([count('bullmq_job_retries_total'),
          count('bullmq_jobs_dead_lettered_total')]));
      })();
    """)

    assert seen == [4 * 8, 4 * 8]  # every feature queue x every reason, at 0


def test_a_replay_moves_back_only_the_letters_whose_task_it_requeues() -> None:
    seen = node_json("""
      const { DeadLetters } = require('./src/dead-letter');
      const removed = [];
      const letter = (id, queue, task_id) => ({ id, data: { queue, task_id },
        remove: async () => removed.push(id) });
      const all = () => [letter('matting-1', 'matting', 1), letter('outfit-2', 'outfit', 2)];
      const queue = { getJobs: async (states, start, end) => all().slice(start, end + 1) };
      const letters = new DeadLetters({ queue, counter: null });
      (async () => {
        const asked = [];
        const answer = await letters.replay(10, async (q, id) => { asked.push([q, id]);
          return id === 1; });
        const one = await letters.replay(1, async () => true);
        console.log(JSON.stringify({ answer, asked, removed, one }));
      })();
    """)

    assert seen["asked"] == [["matting", 1], ["outfit", 2]]
    assert seen["answer"] == {
        "replayed": [{"id": "matting-1", "queue": "matting", "task_id": 1}],
        "kept": [{"id": "outfit-2", "queue": "outfit", "task_id": 2}],
    }
    assert seen["removed"] == ["matting-1", "matting-1"]  # the second replay took one letter
    assert seen["one"]["replayed"] == [{"id": "matting-1", "queue": "matting", "task_id": 1}]
