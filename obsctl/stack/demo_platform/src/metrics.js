'use strict';

const v8 = require('node:v8');
const client = require('prom-client');

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5];
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const UNMATCHED_ROUTE = 'unmatched';

/**
 * The platform's Prometheus registry: default process metrics, the V8 heap limit, the HTTP
 * latency histogram and the BE-DB-005 pool gauges, read from tarn at scrape time.
 */
function createMetrics({ getPool, poolName = 'platform', poolMax }) {
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

  return { registry, httpMiddleware };
}

/** First handler of every instrumented route: records the route pattern, e.g. /api/tasks/:id. */
function tagRoute(req, res, next) {
  res.locals.route = req.baseUrl + req.route.path;
  next();
}

module.exports = { createMetrics, tagRoute, HTTP_BUCKETS };
