'use strict';

const path = require('node:path');
const knexFactory = require('knex');
const { sleep } = require('./util');
const { log, describeError } = require('./log');

/** Per-process pool from BE-DB-005. */
const POOL = Object.freeze({ min: 2, max: 8, acquireTimeoutMillis: 10000, idleTimeoutMillis: 30000 });

const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');

function createKnex(mysql) {
  return knexFactory({
    client: 'mysql2',
    connection: { ...mysql, charset: 'utf8mb4', supportBigNumbers: true, connectTimeout: 5000 },
    pool: { ...POOL },
    acquireConnectionTimeout: POOL.acquireTimeoutMillis,
    log: {
      // Knex would print multi-line text to stderr; keep stdout one JSON line per event, and quiet in an outage.
      warn: (message) => log.throttled('knex-warn', 10000, 'warn', 'knex', { detail: firstLine(message) }),
      error: (message) => log.throttled('knex-error', 10000, 'error', 'knex', { detail: firstLine(message) }),
      deprecate: (method, alternative) => log.warn('knex deprecation', { method, alternative }),
      debug: () => {},
    },
  });
}

function firstLine(message) {
  return String(message instanceof Error ? message.message : message).split('\n')[0];
}

/** Retries SELECT 1 until the database answers (it may have just started) or timeoutMs passes. */
async function waitForDatabase(knex, { timeoutMs = 20000, signal } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await knex.raw('SELECT 1');
      return attempt;
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new Error(`database not reachable after ${timeoutMs} ms: ${describeError(err)}`);
      }
      log.throttled('db-wait', 5000, 'warn', 'waiting for database', { attempt, error: describeError(err) });
      await sleep(500, signal);
    }
  }
}

async function migrate(knex) {
  const [batch, applied] = await knex.migrate.latest({ directory: MIGRATIONS_DIR, loadExtensions: ['.js'] });
  return { batch, applied: applied.map((file) => path.basename(file)) };
}

module.exports = { POOL, MIGRATIONS_DIR, createKnex, waitForDatabase, migrate };
