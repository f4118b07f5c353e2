'use strict';

/** Reads and validates the demo platform's configuration from environment variables. */

class ConfigError extends Error {
  constructor(problems) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
// Rate limits as POINTS/SECONDS (requests per fixed window), far above the stack's workload
// (4 task creations/s, about 8 requests/s, bursts 3x, every user picked at random from 1000):
// the healthy stack never refuses a request. The workload calls its own API from 127.0.0.1,
// so the global and per-IP limits leave room for drills raising it to 500 tasks/s.
const RATE_LIMIT_DEFAULTS = {
  global: '5000/1',
  ip: '2000/1',
  user: '50/1',
  task_create: '60/60', // task creations per user (or per IP without one) and minute
};

function loadConfig(env = process.env) {
  const problems = [];
  const read = (name, parse, { required = false, fallback } = {}) => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') {
      if (required) problems.push(`${name} is required but not set`);
      return fallback;
    }
    try {
      return parse(raw.trim());
    } catch (err) {
      problems.push(`${name}: ${err.message}`);
      return fallback;
    }
  };

  const config = {
    host: read('DEMO_HOST', (v) => v, { fallback: '127.0.0.1' }),
    port: read('DEMO_PORT', (v) => parseInteger(v, 1, 65535), { required: true }),
    mysql: read('PLATFORM_MYSQL_DSN', parseMysqlDsn, { required: true }),
    redisUrl: read('REDIS_URL', parseRedisUrl, { required: true }),
    providers: read('PROVIDER_URLS', parseProviderUrls, { required: true }),
    adminToken: read('DEMO_ADMIN_TOKEN', (v) => v, { required: true }),
    tasksPerSecond: read('DEMO_TASKS_PER_SECOND', (v) => parseNumber(v, 0, 500), { fallback: 4 }),
    seedUsers: read('DEMO_SEED_USERS', (v) => parseInteger(v, 1, 1000000), { fallback: 1000 }),
    bullmqPrefix: read('BULLMQ_PREFIX', parsePrefix, { fallback: 'bull' }),
    rateLimits: Object.fromEntries(
      Object.entries(RATE_LIMIT_DEFAULTS).map(([name, fallback]) => [
        name,
        read(`DEMO_RATE_LIMIT_${name.toUpperCase()}`, parseRateLimit, { fallback: parseRateLimit(fallback) }),
      ]),
    ),
    // The healthy workload's noise (the stack sets these; off when unset).
    noise: {
      sporadicErrorsPerMinute: read('DEMO_NOISE_SPORADIC_ERRORS_PER_MINUTE', (v) => parseNumber(v, 0, 600), { fallback: 0 }),
      burstEverySeconds: read('DEMO_NOISE_BURST_EVERY_SECONDS', (v) => parseNumber(v, 0, 86400), { fallback: 0 }),
      burstSeconds: read('DEMO_NOISE_BURST_SECONDS', (v) => parseNumber(v, 0, 3600), { fallback: 0 }),
      burstFactor: read('DEMO_NOISE_BURST_FACTOR', (v) => parseNumber(v, 1, 50), { fallback: 1 }),
    },
  };
  config.providerKeys = readProviderKeys(env, config.providers, problems);
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** The variable of one provider's API key: alpha -> PROVIDER_ALPHA_KEY. */
function providerKeyVariable(name) {
  return `PROVIDER_${name.toUpperCase().replace(/-/g, '_')}_KEY`;
}

/** Map(name -> API key) for each provider whose PROVIDER_<NAME>_KEY is set; never echoes a key. */
function readProviderKeys(env, providers, problems) {
  const keys = new Map();
  for (const name of providers ? providers.keys() : []) {
    const variable = providerKeyVariable(name);
    const key = (env[variable] || '').trim();
    if (!key) continue;
    if (!/^[\x21-\x7e]+$/.test(key)) {
      problems.push(`${variable}: must be printable ASCII without spaces (the key is not shown)`);
      continue;
    }
    keys.set(name, key);
  }
  return keys;
}

function parseNumber(text, min, max) {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`expected a number between ${min} and ${max}, got '${text}'`);
  }
  return value;
}

function parseInteger(text, min, max) {
  if (!/^\d+$/.test(text)) throw new Error(`expected an integer between ${min} and ${max}, got '${text}'`);
  return parseNumber(text, min, max);
}

function parseUrl(text, protocols) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new Error('not a valid URL');
  }
  if (!protocols.includes(url.protocol)) {
    throw new Error(`expected a ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL, got '${url.protocol}//'`);
  }
  if (!url.hostname) throw new Error('URL has no host');
  return url;
}

/** mysql://user:password@host:port/database -> mysql2 connection options (password kept out of messages). */
function parseMysqlDsn(text) {
  const url = parseUrl(text, ['mysql:']);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) throw new Error('expected mysql://user:password@host:port/database with a database name');
  if (!url.username) throw new Error('expected a user name in mysql://user:password@host:port/database');
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database,
  };
}

function parseRedisUrl(text) {
  parseUrl(text, ['redis:', 'rediss:']);
  return text;
}

/** "alpha=http://127.0.0.1:18306,beta=http://..." -> Map(name -> base URL without trailing slash). */
function parseProviderUrls(text) {
  const providers = new Map();
  for (const entry of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = entry.indexOf('=');
    if (eq < 0) throw new Error(`entry '${entry}' is not NAME=URL`);
    const name = entry.slice(0, eq).trim();
    const rawUrl = entry.slice(eq + 1).trim();
    if (!PROVIDER_NAME.test(name)) throw new Error(`provider name '${name}' must match ${PROVIDER_NAME}`);
    if (providers.has(name)) throw new Error(`provider '${name}' is listed twice`);
    try {
      parseUrl(rawUrl, ['http:', 'https:']);
    } catch (err) {
      throw new Error(`provider '${name}': ${err.message}`);
    }
    providers.set(name, rawUrl.replace(/\/+$/, ''));
  }
  if (providers.size === 0) throw new Error('expected at least one NAME=URL entry');
  return providers;
}

/** "120/60" -> {points: 120, seconds: 60}: at most 120 requests per 60 s window. */
function parseRateLimit(text) {
  const match = /^(\d+)\s*\/\s*(\d+)$/.exec(text);
  const problem = `expected POINTS/SECONDS (requests per window, e.g. 60/60), got '${text}'`;
  if (!match) throw new Error(problem);
  const [points, seconds] = [Number(match[1]), Number(match[2])];
  if (points < 1 || points > 1e9 || seconds < 1 || seconds > 86400) {
    throw new Error(`${problem}: points 1..1000000000, seconds 1..86400`);
  }
  return { points, seconds };
}

function parsePrefix(text) {
  if (/\s|:/.test(text)) throw new Error(`must not contain whitespace or ':', got '${text}'`);
  return text;
}

module.exports = { loadConfig, ConfigError, RATE_LIMIT_DEFAULTS, parseMysqlDsn };
