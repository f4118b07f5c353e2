'use strict';

const v8 = require('node:v8');
const client = require('prom-client');
const { LIMITERS } = require('./limiters');
const { FEATURE_KEYS, TERMINAL_STATUSES } = require('./features');
const { FAILURE_REASONS } = require('./dead-letter');

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5];
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const UNMATCHED_ROUTE = 'unmatched';

/**
 * The platform's Prometheus registry: default process metrics, the V8 heap limit, the HTTP
 * latency histogram, the BE-DB-005 pool gauges (read from tarn at scrape time), the
 * BE-ASYNC-003 circuit breaker families of each provider (fed by src/breakers.js), the rate
 * limiters' counters (zero-filled for every limiter, so no series appears only on a refusal),
 * the BE-CACHE feature config cache's families (src/config-cache.js), the BE-DB-004
 * daily-stats aggregator's freshness and the task jobs' retries and dead letters (BE-ASYNC-001,
 * fed by src/worker.js).
 */
function createMetrics({ getPool, poolName = 'platform', poolMax, providers = [] }) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  // prom-client's AggregatorRegistry (PM2 cluster mode) omits the start time; the newest
  // worker's start time changes whenever any worker restarts, which NodeProcessRestarting counts.
  registry.getSingleMetric('process_start_time_seconds').aggregator = 'max';

  // The heap's limit (--max-old-space-size), which prom-client's defaults leave out:
  // NodeHeapNearLimit compares nodejs_heap_size_used_bytes with it.
  new client.Gauge({
    name: 'nodejs_heap_size_limit_bytes',
    help: 'V8 heap size limit (--max-old-space-size) in bytes.',
    registers: [registry],
    collect() {
      this.set(v8.getHeapStatistics().heap_size_limit);
    },
  });

  const httpDuration = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests to /api and /admin, by express route pattern.',
    labelNames: ['route', 'method', 'status_code'],
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });

  const poolGauge = (name, help, read) =>
    new client.Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        const pool = getPool();
        this.set({ pool: poolName }, pool ? read(pool) : 0);
      },
    });
  poolGauge('db_pool_connections_in_use', 'Knex pool connections checked out.', (p) => p.numUsed());
  poolGauge('db_pool_connections_pending', 'Knex pool acquire requests waiting for a connection.', (p) => p.numPendingAcquires());
  poolGauge('db_pool_connections_available', 'Knex pool connections open and idle.', (p) => p.numFree());
  poolGauge('db_pool_connections_max', 'Knex pool maximum size.', () => poolMax);

  const breakers = createBreakerMetrics(registry, providers);
  const rateLimitRequests = new client.Counter({
    name: 'rate_limit_requests_total',
    help: 'Requests checked by each rate limiter, by outcome (allowed or rejected).',
    labelNames: ['limiter', 'outcome'],
    registers: [registry],
  });
  const rateLimitErrors = new client.Counter({
    name: 'rate_limit_errors_total',
    help: 'Rate limiter checks the Redis store failed or timed out; answered from process memory.',
    labelNames: ['limiter'],
    registers: [registry],
  });
  for (const limiter of LIMITERS) {
    for (const outcome of ['allowed', 'rejected']) rateLimitRequests.inc({ limiter, outcome }, 0);
    rateLimitErrors.inc({ limiter }, 0);
  }

  const jobs = createJobMetrics(registry);
  const configCache = createConfigCacheMetrics(registry);

  /** Observes every request; the route label comes from tagRoute, so raw URLs never become labels. */
  function httpMiddleware(req, res, next) {
    const end = httpDuration.startTimer();
    let done = false;
    const observe = () => {
      if (done) return;
      done = true;
      end({
        route: res.locals.route || UNMATCHED_ROUTE,
        method: KNOWN_METHODS.has(req.method) ? req.method : 'OTHER',
        status_code: String(res.statusCode),
      });
    };
    res.once('finish', observe);
    res.once('close', observe);
    next();
  }

  const dailyStats = createDailyStatsMetrics(registry);
  return {
    registry,
    httpMiddleware,
    breakers,
    rateLimitRequests,
    rateLimitErrors,
    configCache,
    dailyStats,
    jobs,
  };
}

/** BE-DB-004: the tasks_daily_stats aggregator (src/daily-stats.js), zero-filled. */
function createDailyStatsMetrics(registry) {
  // min across PM2 workers: the summary is as fresh as the aggregator that ran last saw it.
  const lag = new client.Gauge({
    name: 'tasks_daily_stats_lag_seconds',
    help: 'Age of the oldest finished task not yet counted in tasks_daily_stats, at the last run; 0 when caught up.',
    aggregator: 'min',
    registers: [registry],
  });
  const lastRun = new client.Gauge({
    name: 'tasks_daily_stats_last_run_timestamp_seconds',
    help: 'Unix time of the last completed tasks_daily_stats aggregation run.',
    aggregator: 'max',
    registers: [registry],
  });
  const applied = new client.Counter({
    name: 'tasks_daily_stats_applied_total',
    help: 'Finished tasks folded into tasks_daily_stats, by status.',
    labelNames: ['status'],
    registers: [registry],
  });
  const runs = new client.Counter({
    name: 'tasks_daily_stats_runs_total',
    help: 'tasks_daily_stats aggregation runs, by outcome (ok or error).',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const status of TERMINAL_STATUSES) applied.inc({ status }, 0);
  for (const outcome of ['ok', 'error']) runs.inc({ outcome }, 0);
  return { lag, lastRun, applied, runs };
}

const CONFIG_CACHE_LAYERS = ['local', 'redis'];
const CONFIG_CACHE_RESULTS = ['hit', 'miss', 'null'];
// Origin (database) loads of one feature's config; the plan wants the average under 50 ms.
const CONFIG_CACHE_LOAD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The config cache's families, every layer and result present from the start. */
function createConfigCacheMetrics(registry) {
  const lookups = new client.Counter({
    name: 'config_cache_lookups_total',
    help: 'Feature config lookups by cache layer (local LRU, then Redis) and result (hit, miss, null: a cached absence).',
    labelNames: ['layer', 'result'],
    registers: [registry],
  });
  const originDuration = new client.Histogram({
    name: 'config_cache_origin_load_duration_seconds',
    help: 'Database loads of one feature config after a miss in both cache layers.',
    buckets: CONFIG_CACHE_LOAD_BUCKETS,
    registers: [registry],
  });
  const invalidations = new client.Counter({
    name: 'config_cache_invalidations_total',
    help: 'config.invalidate messages this process received and applied to its local LRU.',
    registers: [registry],
  });
  // sum across PM2 workers: the number of processes that hear invalidations.
  const subscribed = new client.Gauge({
    name: 'config_cache_invalidation_subscribed',
    help: '1 while this process is subscribed to the config.invalidate channel, else 0.',
    aggregator: 'sum',
    registers: [registry],
  });
  for (const layer of CONFIG_CACHE_LAYERS) {
    for (const result of CONFIG_CACHE_RESULTS) lookups.inc({ layer, result }, 0);
  }
  invalidations.inc(0);
  subscribed.set(0);
  return { lookups, originDuration, invalidations, subscribed };
}

const BREAKER_STATES = ['closed', 'open', 'half_open'];
const BREAKER_OUTCOMES = ['success', 'failure', 'timeout', 'rejected'];

/** The breaker families, every series of each provider present from the start (closed, 0). */
function createBreakerMetrics(registry, providers) {
  // max, not sum, across PM2 workers: one worker's open breaker is an open breaker.
  const state = new client.Gauge({
    name: 'circuit_breaker_state',
    help: 'Circuit breaker state per provider: 1 for the current one of closed, open, half_open.',
    labelNames: ['provider', 'state'],
    aggregator: 'max',
    registers: [registry],
  });
  const opens = new client.Counter({
    name: 'circuit_breaker_opens_total',
    help: 'Times the provider breaker opened.',
    labelNames: ['provider'],
    registers: [registry],
  });
  const calls = new client.Counter({
    name: 'circuit_breaker_calls_total',
    help: 'Provider calls through the breaker by outcome: success, failure, timeout, rejected (open).',
    labelNames: ['provider', 'outcome'],
    registers: [registry],
  });
  const fallbacks = new client.Counter({
    name: 'circuit_breaker_fallbacks_total',
    help: 'Tasks handed to another provider because this one failed or its breaker was open.',
    labelNames: ['provider'],
    registers: [registry],
  });
  for (const provider of providers) {
    for (const s of BREAKER_STATES) state.set({ provider, state: s }, s === 'closed' ? 1 : 0);
    opens.inc({ provider }, 0);
    fallbacks.inc({ provider }, 0);
    for (const outcome of BREAKER_OUTCOMES) calls.inc({ provider, outcome }, 0);
  }
  return { state, opens, calls, fallbacks, states: BREAKER_STATES };
}

/**
 * BE-ASYNC-001's retries and dead letters of the task jobs, zero-filled for every feature queue
 * and reason, so DeadLetterJobsGrowing's increase() sees the first one.
 */
function createJobMetrics(registry) {
  const retries = new client.Counter({
    name: 'bullmq_job_retries_total',
    help: 'Failed attempts of task jobs that BullMQ runs again after a back-off, by queue and reason.',
    labelNames: ['queue', 'reason'],
    registers: [registry],
  });
  const deadLettered = new client.Counter({
    name: 'bullmq_jobs_dead_lettered_total',
    help: 'Task jobs whose last attempt failed, moved to the dead-letter queue, by queue and reason.',
    labelNames: ['queue', 'reason'],
    registers: [registry],
  });
  for (const queue of FEATURE_KEYS) {
    for (const reason of FAILURE_REASONS) {
      retries.inc({ queue, reason }, 0);
      deadLettered.inc({ queue, reason }, 0);
    }
  }
  return { retries, deadLettered };
}

/** First handler of every instrumented route: records the route pattern, e.g. /api/tasks/:id. */
function tagRoute(req, res, next) {
  res.locals.route = req.baseUrl + req.route.path;
  next();
}

module.exports = { createMetrics, tagRoute, HTTP_BUCKETS };
