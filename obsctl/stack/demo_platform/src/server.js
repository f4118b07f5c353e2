'use strict';

/** Entry point: config -> listen -> database -> migrations -> seed -> queues -> workers -> daily stats -> workload -> ready. */

const IORedis = require('ioredis');
const { loadConfig, ConfigError } = require('./config');
const { POOL, createKnex, waitForDatabase, migrate } = require('./db');
const { seed } = require('./seed');
const { Repository } = require('./repository');
const { Catalog } = require('./catalog');
const { ConfigCache } = require('./config-cache');
const { createQueues, closeQueues } = require('./queues');
const { TaskService } = require('./task-service');
const { createTaskProcessor, WorkerPool } = require('./worker');
const { ProviderBreakers } = require('./breakers');
const { DeadLetters } = require('./dead-letter');
const { DailyStatsAggregator } = require('./daily-stats');
const { Workload } = require('./workload');
const { Faults } = require('./faults');
const { createMetrics } = require('./metrics');
const { createRateLimits } = require('./rate-limit');
const { Flood } = require('./flood');
const { createApp } = require('./app');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

const DB_WAIT_MS = 20000;
const REDIS_WAIT_MS = 20000;
const SHUTDOWN_BUDGET_MS = 4500;
const WORKER_GRACE_MS = 2500;
const CLOSE_STEP_MS = 1000;

function readConfig() {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error('invalid configuration', { problems: err.problems });
    process.exit(2);
  }
}

function listen(app, host, port) {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

/** URL the workload uses to call this process's own API. */
function selfUrl(host, port) {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

async function main() {
  const startedAt = Date.now();
  const config = readConfig();
  const stop = new AbortController();
  const knex = createKnex(config.mysql);
  const redis = new IORedis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  redis.on('error', (err) => log.throttled('redis-error', 5000, 'warn', 'redis error', { error: describeError(err) }));

  const ctx = {
    ready: false,
    knex,
    redis,
    adminToken: config.adminToken,
    providerUrls: config.providers,
    faults: new Faults({ sporadicErrorsPerMinute: config.noise.sporadicErrorsPerMinute }),
    metrics: createMetrics({
      getPool: () => knex.client.pool,
      poolMax: POOL.max,
      providers: [...config.providers.keys()],
    }),
    flood: new Flood({ baseUrl: selfUrl(config.host, config.port) }),
  };
  ctx.rateLimits = createRateLimits({ redis, limits: config.rateLimits, metrics: ctx.metrics });

  let server;
  try {
    server = await listen(createApp(ctx), config.host, config.port);
  } catch (err) {
    log.error('cannot listen', { host: config.host, port: config.port, error: describeError(err) });
    process.exit(1);
  }
  log.info('listening', { host: config.host, port: config.port });

  let stopping = false;
  async function shutdown(reason, exitCode = 0) {
    if (stopping) return;
    stopping = true;
    ctx.ready = false;
    log.info('shutting down', { reason });
    setTimeout(() => {
      log.warn('shutdown budget exceeded, exiting now');
      process.exit(exitCode);
    }, SHUTDOWN_BUDGET_MS).unref();

    stop.abort(new Error(`stopping: ${reason}`));
    ctx.workload?.stop();
    ctx.flood.stop();
    server.close();
    server.closeIdleConnections();
    const workers = ctx.workers ? await ctx.workers.close(WORKER_GRACE_MS) : { timedOut: false };
    ctx.breakers?.shutdown();
    ctx.configCache?.close();
    const settle = (promise) => withTimeout(promise, CLOSE_STEP_MS, 'close timed out').catch(() => {});
    if (ctx.dailyStats) await settle(ctx.dailyStats.stop());
    if (ctx.queues) await settle(closeQueues(ctx.queues));
    if (ctx.deadLetters) await settle(ctx.deadLetters.close());
    redis.disconnect();
    await settle(knex.destroy());
    server.closeAllConnections();
    log.info('stopped', { workers_timed_out: workers.timedOut, exit_code: exitCode });
    process.exit(exitCode);
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) =>
    log.throttled('unhandled-rejection', 5000, 'error', 'unhandled rejection', { error: describeError(err) }),
  );

  try {
    const attempts = await waitForDatabase(knex, { timeoutMs: DB_WAIT_MS, signal: stop.signal });
    log.info('database reachable', { host: config.mysql.host, port: config.mysql.port, database: config.mysql.database, attempts });

    const migration = await migrate(knex);
    log.info('migrations done', migration);

    const seedStarted = Date.now();
    const seeded = await seed(knex, { userCount: config.seedUsers, providers: config.providers });
    log.info('seed done', { ...seeded, duration_ms: Date.now() - seedStarted });

    ctx.repo = new Repository(knex);
    ctx.configCache = new ConfigCache({ redis, load: (key) => ctx.catalog.load(key), metrics: ctx.metrics.configCache });
    ctx.catalog = new Catalog(knex, config.providers, { cache: ctx.configCache });
    // A connection of its own: one in subscriber mode can run no other command.
    const subscriber = new IORedis(config.redisUrl, { connectTimeout: 5000 });
    await withTimeout(ctx.configCache.subscribe(subscriber), REDIS_WAIT_MS, `redis not reachable after ${REDIS_WAIT_MS} ms`);
    ctx.queues = createQueues({ redisUrl: config.redisUrl, prefix: config.bullmqPrefix });
    await withTimeout(
      Promise.all([...ctx.queues.values()].map((q) => q.waitUntilReady())),
      REDIS_WAIT_MS,
      `redis not reachable after ${REDIS_WAIT_MS} ms`,
    );
    ctx.breakers = new ProviderBreakers(config.providers.keys(), ctx.metrics.breakers);
    ctx.deadLetters = new DeadLetters({
      redisUrl: config.redisUrl,
      prefix: config.bullmqPrefix,
      counter: ctx.metrics.jobs.deadLettered,
    });
    await withTimeout(ctx.deadLetters.start(), REDIS_WAIT_MS, `redis not reachable after ${REDIS_WAIT_MS} ms`);
    ctx.tasks = new TaskService({ repo: ctx.repo, catalog: ctx.catalog, queues: ctx.queues });
    ctx.workers = new WorkerPool({
      redisUrl: config.redisUrl,
      prefix: config.bullmqPrefix,
      processor: createTaskProcessor({
        repo: ctx.repo,
        catalog: ctx.catalog,
        breakers: ctx.breakers,
        providerUrls: config.providers,
        providerKeys: config.providerKeys,
        retries: ctx.metrics.jobs.retries,
        deadLetters: ctx.deadLetters,
      }),
    });
    await withTimeout(ctx.workers.waitUntilReady(), REDIS_WAIT_MS, `redis not reachable after ${REDIS_WAIT_MS} ms`);
    ctx.dailyStats = new DailyStatsAggregator({ knex, metrics: ctx.metrics.dailyStats }).start();

    ctx.workload = new Workload({
      baseUrl: selfUrl(config.host, config.port),
      repo: ctx.repo,
      tasks: ctx.tasks,
      rate: config.tasksPerSecond,
      bursts: {
        everySeconds: config.noise.burstEverySeconds,
        seconds: config.noise.burstSeconds,
        factor: config.noise.burstFactor,
      },
    });
    await ctx.workload.start();
    if (stopping) return;

    ctx.ready = true;
    log.info('ready', {
      startup_ms: Date.now() - startedAt,
      queues: [...ctx.queues.keys()],
      dead_letter_queue: ctx.deadLetters.queue.name,
      prefix: config.bullmqPrefix,
      providers: [...config.providers.keys()],
      tasks_per_second: config.tasksPerSecond,
      noise: config.noise,
      rate_limits: config.rateLimits,
    });
  } catch (err) {
    if (stopping) return;
    log.error('startup failed', { error: describeError(err) });
    await shutdown('startup failed', 1);
  }
}

main();
