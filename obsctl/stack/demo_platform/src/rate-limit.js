'use strict';

const { RateLimiterRedis, RateLimiterMemory, RateLimiterRes, RLWrapperTimeouts } = require('rate-limiter-flexible');
const { LIMITERS } = require('./limiters');
const { log, describeError } = require('./log');

// A Redis that hangs (SIGSTOP, a full network) must not hold every request: past this the
// limiter answers from its in-process insurance instead.
const REDIS_TIMEOUT_MS = 200;
const USER_ID = /^[1-9]\d{0,15}$/;

/**
 * A memory limiter that counts each call: rate-limiter-flexible consults the insurance only
 * when the Redis store failed or timed out, so each call is one store error.
 */
class CountingInsurance extends RateLimiterMemory {
  constructor(opts, onUse) {
    super(opts);
    this.onUse = onUse;
  }

  consume(...args) {
    this.onUse();
    return super.consume(...args);
  }
}

/**
 * Redis-backed fixed-window limiters (global, per IP, per user, task creation per user),
 * counted in createMetrics' rateLimitRequests and rateLimitErrors. When Redis fails, each
 * process limits alone from memory with the same limits: N processes then let up to N times
 * the limit through, and never refuse everything.
 */
function createRateLimits({ redis, limits, metrics }) {
  const { rateLimitRequests: requests, rateLimitErrors: errors } = metrics;
  const limiters = new Map();
  for (const name of LIMITERS) {
    const { points, seconds } = limits[name];
    const opts = { keyPrefix: `rl:${name}`, points, duration: seconds };
    const insuranceLimiter = new CountingInsurance(opts, () => {
      errors.inc({ limiter: name });
      log.throttled(`rate-limit-store-${name}`, 10000, 'warn', 'rate limiter store failed, limiting from memory', { limiter: name });
    });
    const store = new RateLimiterRedis({ ...opts, storeClient: redis, rejectIfRedisNotReady: true });
    limiters.set(name, new RLWrapperTimeouts({ limiter: store, timeoutMs: REDIS_TIMEOUT_MS, insuranceLimiter }));
  }

  /** Consumes one point of `name` for `key`; a refusal becomes HTTP 429 naming the limiter. */
  async function check(name, key, res) {
    try {
      await limiters.get(name).consume(key);
      requests.inc({ limiter: name, outcome: 'allowed' });
      return true;
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        // Both the store and its insurance failed: let the request through rather than 500.
        log.throttled(`rate-limit-error-${name}`, 10000, 'error', 'rate limiter failed', { limiter: name, error: describeError(err) });
        requests.inc({ limiter: name, outcome: 'allowed' });
        return true;
      }
      requests.inc({ limiter: name, outcome: 'rejected' });
      const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      res.set('Retry-After', String(retryAfter));
      res.status(429).json({ error: 'rate_limited', limiter: name, retry_after_seconds: retryAfter });
      return false;
    }
  }

  /** Middleware for every /api route: global, then the client's IP, then its user when known. */
  async function api(req, res, next) {
    if (!(await check('global', 'all', res))) return;
    if (!(await check('ip', req.ip, res))) return;
    const user = userOf(req);
    if (user && !(await check('user', user, res))) return;
    next();
  }

  /** The stricter limit of a sensitive route (task creation), per user or else per IP. */
  async function taskCreate(req, res, next) {
    const user = userOf(req);
    if (!(await check('task_create', user ? `user:${user}` : `ip:${req.ip}`, res))) return;
    next();
  }

  return { api, taskCreate };
}

/** The caller's user id: the x-user-id header, else user_id of the query or JSON body. */
function userOf(req) {
  const raw = req.get('x-user-id') ?? req.query?.user_id ?? req.body?.user_id;
  const text = raw === undefined || raw === null ? '' : String(raw);
  return USER_ID.test(text) ? text : null;
}

module.exports = { createRateLimits };
