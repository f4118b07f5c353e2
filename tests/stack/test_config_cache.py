"""The demo platform's feature config cache (src/config-cache.js) on a real Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import RedisServer, in_ci

DEMO = Path(__file__).resolve().parents[2] / "obsctl" / "stack" / "demo_platform"
HAS_MODULES = (DEMO / "node_modules" / "lru-cache").is_dir()

pytestmark = [
    pytest.mark.needs_tools("node", "redis-server"),
    pytest.mark.skipif(not HAS_MODULES and not in_ci(), reason="run `npm ci` in demo_platform"),
]

# Two "processes" of the platform: each a ConfigCache with its own LRU, registry and Redis
# connections (one of them a subscriber), over one fake database whose loads take 20 ms.
PRELUDE = """
const IORedis = require('ioredis');
const { createMetrics } = require('./src/metrics');
const { ConfigCache } = require('./src/config-cache');
const url = process.argv[1];
const db = {
  matting: { feature: { key: 'matting', cost: 1 }, routes: [{ provider: 'a', weight: 1 }] } };
const loads = [];
const load = async (f) => { loads.push(f); await new Promise((r) => setTimeout(r, 20));
  return db[f] ? JSON.parse(JSON.stringify(db[f])) : null; };
const connections = [];
async function proc() {
  const redis = new IORedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  await new Promise((r) => redis.once('ready', r));
  const metrics = createMetrics({ getPool: () => null, poolMax: 8 });
  const cache = new ConfigCache({ redis, load, metrics: metrics.configCache });
  const sub = new IORedis(url);
  sub.on('error', () => {});
  await cache.subscribe(sub);
  connections.push(redis, sub);
  const lookups = async () => Object.fromEntries(
    (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'config_cache_lookups_total')
      .values.map((v) => [`${v.labels.layer}/${v.labels.result}`, v.value]));
  const sample = async (name) => (await metrics.registry.getMetricsAsJSON())
    .find((m) => m.name === name).values;
  return { redis, cache, metrics, lookups, sample };
}
const done = (out) => {
  console.log(JSON.stringify(out));
  connections.forEach((c) => c.disconnect());
};
"""


def _run(redis: RedisServer, script: str) -> Any:
    node = shutil.which("node") or "node"
    result = subprocess.run(
        [node, "-e", PRELUDE + script, redis.url()],
        cwd=DEMO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _run_around(redis: RedisServer, script: str, between: Callable[[], None]) -> Any:
    """Like _run, for a script that prints `ready` and waits: between() runs at that point."""
    node = shutil.which("node") or "node"
    proc = subprocess.Popen(
        [node, "-e", PRELUDE + script, redis.url()], cwd=DEMO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    between()
    out, err = proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def test_a_hundred_concurrent_misses_load_once_and_the_next_process_hits_redis(
    redis_server: Callable[..., RedisServer],
) -> None:
    seen = _run(redis_server(), """
      (async () => {
        const a = await proc();
        const values = await Promise.all(Array.from({ length: 100 }, () => a.cache.get('matting')));
        const burstLoads = loads.length;
        const again = await a.cache.get('matting');
        const ttl = await a.redis.ttl('cfg:matting:v1');
        const b = await proc();
        const fromRedis = await b.cache.get('matting');
        const origin = await a.sample('config_cache_origin_load_duration_seconds');
        done({ burstLoads, loads: loads.length, version: values[0].version,
          same: values.every((v) => JSON.stringify(v) === JSON.stringify(values[0])),
          again: again.routes, ttl, fromRedis: fromRedis.feature, a: await a.lookups(),
          b: await b.lookups(),
          originCount: origin.find((v) => v.metricName.endsWith('_count')).value });
      })();
    """)  # fmt: skip

    assert seen["burstLoads"] == 1 and seen["loads"] == 1  # single-flight, then cached
    assert seen["same"] and seen["version"] == "v1"
    assert seen["again"] == [{"provider": "a", "weight": 1}]
    assert 240 <= seen["ttl"] <= 360  # 300 s +- 60 s of jitter
    assert seen["fromRedis"] == {"key": "matting", "cost": 1}
    assert seen["a"] == {
        "local/hit": 1, "local/miss": 100, "local/null": 0,
        "redis/hit": 0, "redis/miss": 1, "redis/null": 0,
    }  # fmt: skip
    assert seen["b"]["local/miss"] == 1 and seen["b"]["redis/hit"] == 1
    assert seen["b"]["redis/miss"] == 0 and seen["originCount"] == 1


def test_a_missing_feature_is_null_cached_for_30_seconds(
    redis_server: Callable[..., RedisServer],
) -> None:
    seen = _run(redis_server(), """
      (async () => {
        const a = await proc();
        const first = await a.cache.get('nope');
        const second = await a.cache.get('nope');
        const raw = await a.redis.get('cfg:nope:v1');
        const ttl = await a.redis.ttl('cfg:nope:v1');
        const b = await proc();
        const third = await b.cache.get('nope');
        done({ first, second, third, raw, ttl, loads: loads.length, a: await a.lookups(),
          b: await b.lookups() });
      })();
    """)  # fmt: skip

    assert (seen["first"], seen["second"], seen["third"]) == (None, None, None)
    assert seen["raw"] == "null" and 25 <= seen["ttl"] <= 30
    assert seen["loads"] == 1
    assert seen["a"]["local/null"] == 1 and seen["a"]["redis/miss"] == 1
    assert seen["b"]["redis/null"] == 1


def test_an_invalidation_reaches_the_other_process_within_200_ms(
    redis_server: Callable[..., RedisServer],
) -> None:
    seen = _run(redis_server(), """
      (async () => {
        const a = await proc();
        const b = await proc();
        await b.cache.get('matting'); // b holds cost 1 in its local LRU for 30 s
        db.matting.feature.cost = 2;
        const stale = (await b.cache.get('matting')).feature.cost;
        const started = process.hrtime.bigint();
        const keys = await a.cache.invalidate(['matting']);
        let cost;
        while ((cost = (await b.cache.get('matting')).feature.cost) !== 2) {
          if (process.hrtime.bigint() - started > 2000000000n) break;
          await new Promise((r) => setImmediate(r));
        }
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const received = await b.sample('config_cache_invalidations_total');
        const subscribed = await b.sample('config_cache_invalidation_subscribed');
        const numsub = await a.redis.pubsub('NUMSUB', 'config.invalidate');
        done({ stale, cost, ms, keys, received: received[0].value,
          subscribed: subscribed[0].value, numsub });
      })();
    """)  # fmt: skip

    assert seen["stale"] == 1  # the local LRU is what invalidation exists for
    assert seen["cost"] == 2 and seen["ms"] < 200, seen
    assert seen["keys"] == ["cfg:matting:v1"]
    assert seen["received"] == 1 and seen["subscribed"] == 1
    assert seen["numsub"] == ["config.invalidate", 2]


def test_a_miss_storm_loads_every_lookup_until_it_is_turned_off(
    redis_server: Callable[..., RedisServer],
) -> None:
    seen = _run(redis_server(), """
      (async () => {
        const a = await proc();
        await a.cache.get('matting');
        await a.redis.set('cfg:outfit:v1', 'null');
        await a.cache.setStorm(true);
        const flushed = await a.redis.keys('cfg:*');
        for (let i = 0; i < 5; i++) await a.cache.get('matting');
        const stormLoads = loads.length;
        const during = await a.lookups();
        await a.cache.setStorm(false);
        await a.cache.get('matting');
        await a.cache.get('matting');
        done({ flushed, stormLoads, loads: loads.length, during, after: await a.lookups(),
          stored: await a.redis.exists('cfg:matting:v1') });
      })();
    """)  # fmt: skip

    assert seen["flushed"] == []
    assert seen["stormLoads"] == 6  # the first fill and each of the five storm lookups
    assert seen["during"]["redis/miss"] == 6 and seen["during"]["local/hit"] == 0
    assert seen["loads"] == 7 and seen["stored"] == 1
    assert seen["after"]["local/hit"] == 1


def test_with_redis_stopped_lookups_load_from_the_database(
    redis_server: Callable[..., RedisServer],
) -> None:
    redis = redis_server()
    script = """
      (async () => {
        const a = await proc();
        process.stdout.write('ready\\n');
        await new Promise((r) => process.stdin.once('data', r));
        const started = Date.now();
        const value = await a.cache.get('matting');
        done({ cost: value.feature.cost, ms: Date.now() - started, loads: loads.length,
          lookups: await a.lookups() });
      })();
    """
    seen = _run_around(redis, script, redis.stop)

    assert seen["cost"] == 1 and seen["loads"] == 1
    assert seen["ms"] < 1000
    assert seen["lookups"]["redis/miss"] == 1


def test_after_a_redis_restart_the_subscriber_is_back_and_the_stale_lru_dropped(
    redis_server: Callable[..., RedisServer],
) -> None:
    redis = redis_server()
    script = """
      const until = async (what, ok) => {
        const deadline = Date.now() + 10000;
        while (!(await ok())) {
          if (Date.now() > deadline) throw new Error(`never: ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      (async () => {
        const a = await proc();
        const b = await proc();
        await b.cache.get('matting');
        process.stdout.write('ready\\n');
        await new Promise((r) => process.stdin.once('data', r));
        const gauge = async () => (await b.sample('config_cache_invalidation_subscribed'))[0].value;
        await until('b resubscribed', async () => (await gauge()) === 1);
        await until('a reconnected', async () => a.redis.status === 'ready');
        const loadsBefore = loads.length;
        await b.cache.get('matting'); // its LRU was dropped: Redis (empty now), then the database
        const reloaded = loads.length - loadsBefore;
        db.matting.feature.cost = 3;
        await a.cache.invalidate(['matting']);
        await until('b sees cost 3', async () => (await b.cache.get('matting')).feature.cost === 3);
        done({ reloaded, numsub: await a.redis.pubsub('NUMSUB', 'config.invalidate') });
      })().catch((err) => { console.error(err); process.exit(1); });
    """

    def restart() -> None:
        redis.stop()
        redis.start()

    seen = _run_around(redis, script, restart)

    assert seen["reloaded"] == 1
    assert seen["numsub"] == ["config.invalidate", 2]
