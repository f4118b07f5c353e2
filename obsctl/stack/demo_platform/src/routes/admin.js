'use strict';

const crypto = require('node:crypto');
const express = require('express');
const { ApiError } = require('../errors');
const { FEATURE_KEYS } = require('../features');
const { tagRoute } = require('../metrics');
const { JOB_OPTIONS } = require('../queues');
const { control } = require('../provider-client');
const { requireObject, number, oneOf } = require('../validate');
const { withTimeout } = require('../util');
const { log, describeError } = require('../log');

const STATE_PROBE_TIMEOUT_MS = 500;
const REDIS_TIMEOUT_MS = 1000;

/** Operator knobs under /admin, used by drills; all need the bearer token. */
function adminRouter(ctx) {
  const router = express.Router();
  const pre = [tagRoute, bearerAuth(ctx.adminToken), express.json({ limit: '64kb' })];

  router.get('/faults', ...pre, (req, res) => res.json(ctx.faults));

  router.put('/faults', ...pre, (req, res) => {
    const body = requireObject(req.body, { allowed: ['error_rate', 'latency_ms', 'sporadic_errors_per_minute'] });
    const update = {
      error_rate: number(body.error_rate, 'error_rate', { min: 0, max: 1, required: false }),
      latency_ms: number(body.latency_ms, 'latency_ms', { min: 0, max: 60000, integer: true, required: false }),
      sporadic_errors_per_minute: number(body.sporadic_errors_per_minute, 'sporadic_errors_per_minute', {
        min: 0,
        max: 600,
        required: false,
      }),
    };
    ctx.faults.set(update);
    log.info('faults set', ctx.faults.toJSON());
    res.json(ctx.faults);
  });

  router.post('/workers/pause', ...pre, async (req, res) => {
    await ctx.workers.pause();
    log.info('workers paused');
    res.json({ workers_paused: true });
  });

  router.post('/workers/resume', ...pre, async (req, res) => {
    await ctx.workers.resume();
    log.info('workers resumed');
    res.json({ workers_paused: false });
  });

  // An operator's recount, or the stats-lag drill: every tasks_daily_stats aggregator stops
  // folding tasks in (the flag is on the shared cursor row) until resume.
  for (const action of ['pause', 'resume']) {
    router.post(`/daily-stats/${action}`, ...pre, async (req, res) => {
      await ctx.dailyStats.setPaused(action === 'pause');
      log.info(`daily stats ${action}d`);
      res.json({ daily_stats_paused: await ctx.dailyStats.isPaused() });
    });
  }

  for (const action of ['pause', 'resume']) {
    router.post(`/queues/:name/${action}`, ...pre, async (req, res) => {
      const queue = ctx.queues.get(req.params.name);
      if (!queue) throw ApiError.notFound('unknown_queue');
      await withTimeout(queue[action](), REDIS_TIMEOUT_MS, `queue ${action} timed out`);
      log.info(`queue ${action}d`, { queue: req.params.name });
      res.json({ queue: req.params.name, paused: action === 'pause' });
    });
  }

  router.put('/workload', ...pre, (req, res) => {
    const body = requireObject(req.body, { allowed: ['tasks_per_second', 'bursts'] });
    const rate = number(body.tasks_per_second, 'tasks_per_second', { min: 0, max: 500, required: body.bursts === undefined });
    const bursts = body.bursts === undefined ? undefined : readBursts(body.bursts);
    if (rate !== undefined) ctx.workload.setRate(rate);
    if (bursts) ctx.workload.setBursts(bursts);
    log.info('workload set', ctx.workload.settings());
    res.json(ctx.workload.settings());
  });

  router.post('/workload/burst', ...pre, async (req, res) => {
    const body = requireObject(req.body, { allowed: ['count', 'feature'] });
    const count = number(body.count, 'count', { min: 1, max: 5000, integer: true });
    const feature = oneOf(body.feature, 'feature', FEATURE_KEYS, { required: false });
    const result = await ctx.workload.burst(count, feature);
    log.info('burst done', result);
    res.json(result);
  });

  router.put('/flood', ...pre, (req, res) => {
    const body = requireObject(req.body, { allowed: ['requests_per_second', 'user_id'] });
    const rate = number(body.requests_per_second, 'requests_per_second', { min: 0, max: 200 });
    const userId = number(body.user_id, 'user_id', { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true, required: false });
    ctx.flood.set(rate, userId);
    log.info('flood set', ctx.flood.state());
    res.json(ctx.flood);
  });

  router.put('/providers/:name', ...pre, async (req, res) => {
    const baseUrl = ctx.providerUrls.get(req.params.name);
    if (!baseUrl) throw ApiError.notFound('unknown_provider');
    const body = requireObject(req.body);
    let answer;
    try {
      answer = await control(baseUrl, body);
    } catch (err) {
      throw new ApiError(502, { error: 'provider_unreachable', message: describeError(err) });
    }
    if (answer.json === null) throw new ApiError(502, { error: 'provider_bad_response', status: answer.status });
    log.info('provider control forwarded', { provider: req.params.name, status: answer.status, body });
    res.status(answer.status).json(answer.json);
  });

  // The plan's manual reset (BE-ASYNC-003): close a provider's breaker once it is known healthy.
  router.post('/breakers/:name/reset', ...pre, (req, res) => {
    if (!ctx.breakers) throw new ApiError(503, { error: 'not_ready' });
    if (!ctx.breakers.reset(req.params.name)) throw ApiError.notFound('unknown_provider');
    log.info('circuit breaker reset', { provider: req.params.name });
    res.json({ provider: req.params.name, state: 'closed' });
  });

  // BE-ASYNC-001: the jobs whose every attempt failed, oldest first (?limit=, at most 1000).
  router.get('/dead-letters', ...pre, async (req, res) => {
    if (!ctx.deadLetters) throw new ApiError(503, { error: 'not_ready' });
    const limit = number(req.query.limit === undefined ? 100 : Number(req.query.limit), 'limit', { min: 1, max: 1000, integer: true });
    res.json(await withTimeout(ctx.deadLetters.list(limit), REDIS_TIMEOUT_MS, 'redis timed out'));
  });

  // The on-call action once the cause is fixed: failed tasks of up to `limit` dead letters go
  // back to queued and to their queue (fresh attempts); their dead letters leave the queue.
  router.post('/dead-letters/replay', ...pre, async (req, res) => {
    if (!ctx.deadLetters) throw new ApiError(503, { error: 'not_ready' });
    const body = requireObject(req.body ?? {}, { allowed: ['limit'] });
    const limit = number(body.limit, 'limit', { min: 1, max: 1000, integer: true, required: false }) ?? 100;
    const requeue = async (queueName, taskId) => {
      const queue = ctx.queues.get(queueName);
      if (!queue || !Number.isInteger(taskId) || !(await ctx.repo.requeueFailedTask(taskId))) return false;
      try {
        await withTimeout(queue.add('task', { taskId }, JOB_OPTIONS), REDIS_TIMEOUT_MS, 'enqueue timed out');
      } catch (err) {
        await ctx.repo.finishTask(taskId, 'failed', 'enqueue_failed').catch(() => {});
        throw err;
      }
      return true;
    };
    res.json(await ctx.deadLetters.replay(limit, requeue));
  });

  // The afterUpdate hook of BE-CACHE-002: write the database, then invalidate every process.
  router.put('/features/:key', ...pre, async (req, res) => {
    const key = oneOf(req.params.key, 'key', FEATURE_KEYS);
    const body = requireObject(req.body, { allowed: ['enabled', 'cost'] });
    const changes = {};
    if (body.enabled !== undefined) {
      if (typeof body.enabled !== 'boolean') throw ApiError.invalid('enabled', 'must be true or false');
      changes.enabled = body.enabled;
    }
    const cost = number(body.cost, 'cost', { min: 0, max: 1000, integer: true, required: false });
    if (cost !== undefined) changes.cost = cost;
    if (!Object.keys(changes).length) throw ApiError.invalid('body', 'expected enabled or cost');
    const result = await ctx.catalog.updateFeature(key, changes);
    if (!result) throw ApiError.notFound('unknown_feature');
    log.info('feature updated', result);
    res.json(result);
  });

  // A config cache miss storm for drills: every cfg:* key flushed and nothing cached until off.
  router.put('/config-cache', ...pre, async (req, res) => {
    const body = requireObject(req.body, { allowed: ['storm'] });
    if (typeof body.storm !== 'boolean') throw ApiError.invalid('storm', 'must be true or false');
    const state = await withTimeout(ctx.configCache.setStorm(body.storm), REDIS_TIMEOUT_MS, 'config cache flush timed out');
    log.info('config cache storm set', state);
    res.json(state);
  });

  router.get('/state', ...pre, async (req, res) => {
    const [queues, providers] = await Promise.all([queueStates(ctx.queues), providerStates(ctx.providerUrls)]);
    res.json({
      faults: ctx.faults,
      workers_paused: ctx.workers.paused,
      queues,
      workload: ctx.workload.state(),
      flood: ctx.flood.state(),
      config_cache: ctx.configCache ? ctx.configCache.state() : null,
      providers,
    });
  });

  return router;
}

/** {every_seconds, seconds, factor} of the workload's bursts; every_seconds 0 turns them off. */
function readBursts(value) {
  const body = requireObject(value, { allowed: ['every_seconds', 'seconds', 'factor'] });
  return {
    everySeconds: number(body.every_seconds, 'bursts.every_seconds', { min: 0, max: 86400, required: false }),
    seconds: number(body.seconds, 'bursts.seconds', { min: 0, max: 3600, required: false }),
    factor: number(body.factor, 'bursts.factor', { min: 1, max: 50, required: false }),
  };
}

/** Constant-time check of "Authorization: Bearer <token>" (hashes make the lengths equal). */
function bearerAuth(token) {
  const expected = crypto.createHash('sha256').update(token).digest();
  return (req, res, next) => {
    const match = /^Bearer (.+)$/.exec(req.get('authorization') || '');
    const given = crypto.createHash('sha256').update(match ? match[1] : '').digest();
    if (!match || !crypto.timingSafeEqual(given, expected)) {
      res.set('WWW-Authenticate', 'Bearer').status(401).json({ error: 'unauthorized' });
      return;
    }
    next();
  };
}

async function queueStates(queues) {
  const entries = await Promise.all(
    [...queues].map(async ([name, queue]) => {
      try {
        return [name, { paused: await withTimeout(queue.isPaused(), REDIS_TIMEOUT_MS, 'redis timed out') }];
      } catch (err) {
        return [name, { paused: null, error: describeError(err) }];
      }
    }),
  );
  return Object.fromEntries(entries);
}

async function providerStates(providerUrls) {
  return Promise.all(
    [...providerUrls].map(async ([name, url]) => {
      try {
        const { status, json } = await control(url, undefined, { timeoutMs: STATE_PROBE_TIMEOUT_MS });
        return { name, url, control: status === 200 ? json : null, control_status: status };
      } catch (err) {
        return { name, url, control: null, error: describeError(err) };
      }
    }),
  );
}

module.exports = { adminRouter, bearerAuth };
