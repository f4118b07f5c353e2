'use strict';

const { LRUCache } = require('lru-cache');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

/**
 * The feature config cache of BE-CACHE-001..003: cache-aside in Redis under cfg:{feature}:{ver}
 * (TTL 300 s +- 60 s of jitter, so keys written together do not expire together), in front of it
 * a per-process LRU for 30 s, a null cache (30 s) for a feature that has no config, single-flight
 * (one origin load per key and process however many requests miss at once) and invalidation over
 * the Redis channel config.invalidate, on which every process drops its local entries.
 */
const CONFIG_VERSION = 'v1'; // bumped when the cached value's shape changes: a deploy writes new keys
const CHANNEL = 'config.invalidate';
const DEFAULTS = Object.freeze({
  ttlSeconds: 300,
  jitterSeconds: 60,
  nullTtlSeconds: 30,
  localTtlMs: 30000,
  maxEntries: 1000,
  redisTimeoutMs: 200,
});

class ConfigCache {
  /**
   * load(feature) reads one feature's config from the database and returns it, or null when the
   * feature has none; metrics are createMetrics' configCache families.
   */
  constructor({ redis, load, metrics, version = CONFIG_VERSION, random = Math.random, ...options }) {
    this.redis = redis;
    this.loader = load;
    this.metrics = metrics;
    this.version = version;
    this.random = random;
    this.options = { ...DEFAULTS, ...options };
    this.local = new LRUCache({ max: this.options.maxEntries, ttl: this.options.localTtlMs });
    this.inFlight = new Map();
    this.generation = 0; // bumped by every invalidation: a load that spans one is not stored
    this.storm = false;
    this.subscriber = null;
  }

  /** The Redis key of a feature's config. */
  key(feature) {
    return `cfg:${feature}:${this.version}`;
  }

  /** The feature's config ({version, ...}) or null, from the local LRU, Redis or the database. */
  async get(feature) {
    const key = this.key(feature);
    const entry = this.local.get(key);
    if (entry !== undefined) {
      this.count('local', entry.value === null ? 'null' : 'hit');
      return entry.value;
    }
    this.count('local', 'miss');
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetch(feature, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  async fetch(feature, key) {
    const generation = this.generation;
    const cached = await this.readRedis(key);
    if (cached !== undefined) {
      this.count('redis', cached === null ? 'null' : 'hit');
      this.keepLocal(key, cached, generation);
      return cached;
    }
    this.count('redis', 'miss');
    const end = this.metrics.originDuration.startTimer();
    let value;
    try {
      value = await this.loader(feature);
    } finally {
      end();
    }
    value = value === null || value === undefined ? null : { ...value, version: this.version };
    if (!this.storm && generation === this.generation) {
      this.keepLocal(key, value, generation);
      await this.writeRedis(key, value);
    }
    return value;
  }

  /** The parsed Redis value (null for a null-cache entry), or undefined on a miss or a failure. */
  async readRedis(key) {
    try {
      const raw = await withTimeout(this.redis.get(key), this.options.redisTimeoutMs, 'redis get timed out');
      return raw === null ? undefined : JSON.parse(raw);
    } catch (err) {
      // Counted as a Redis miss: the value comes from the database, as it must.
      log.throttled('config-cache-read', 10000, 'warn', 'config cache read failed', { key, error: describeError(err) });
      return undefined;
    }
  }

  async writeRedis(key, value) {
    const { ttlSeconds, jitterSeconds, nullTtlSeconds } = this.options;
    const ttl = value === null ? nullTtlSeconds : Math.round(ttlSeconds + (this.random() * 2 - 1) * jitterSeconds);
    try {
      await withTimeout(this.redis.set(key, JSON.stringify(value), 'EX', ttl), this.options.redisTimeoutMs, 'redis set timed out');
    } catch (err) {
      log.throttled('config-cache-write', 10000, 'warn', 'config cache write failed', { key, error: describeError(err) });
    }
  }

  keepLocal(key, value, generation) {
    if (!this.storm && generation === this.generation) this.local.set(key, { value });
  }

  count(layer, result) {
    this.metrics.lookups.inc({ layer, result });
  }

  /** Subscribes a dedicated connection to config.invalidate; resubscribes after a reconnect. */
  async subscribe(subscriber) {
    this.subscriber = subscriber;
    const { subscribed } = this.metrics;
    let connectedBefore = false;
    subscriber.on('message', (channel, message) => {
      if (channel === CHANNEL) this.onInvalidate(message);
    });
    subscriber.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      // Messages published while the connection was down are lost: start from Redis again.
      this.dropLocal();
      // ioredis resubscribes by itself (autoResubscribe); this one confirms it for the gauge.
      subscriber.subscribe(CHANNEL).then(() => subscribed.set(1), () => {});
    });
    subscriber.on('close', () => subscribed.set(0));
    subscriber.on('error', (err) =>
      log.throttled('config-cache-subscriber', 10000, 'warn', 'config.invalidate subscriber error', { error: describeError(err) }),
    );
    await subscriber.subscribe(CHANNEL);
    subscribed.set(1);
  }

  /** Handles {pattern: 'cfg:*'} or {keys: ['cfg:matting:v1']}: drops those local entries. */
  onInvalidate(message) {
    let body;
    try {
      body = JSON.parse(message);
    } catch {
      log.throttled('config-cache-bad-message', 10000, 'warn', 'config.invalidate message is not JSON', {});
      return;
    }
    this.metrics.invalidations.inc();
    this.apply(body);
  }

  /** Drops the local entries a message names and spoils the loads in flight. */
  apply(body) {
    this.generation += 1;
    if (typeof body?.pattern === 'string' && body.pattern.endsWith('*')) {
      const prefix = body.pattern.slice(0, -1);
      for (const key of [...this.local.keys()]) if (key.startsWith(prefix)) this.local.delete(key);
    }
    for (const key of Array.isArray(body?.keys) ? body.keys : []) this.local.delete(String(key));
  }

  /**
   * After a config write: deletes the features' Redis keys (all cfg:* keys without features) and
   * publishes config.invalidate, so every process drops its local copy within milliseconds.
   */
  async invalidate(features) {
    const message = features ? { keys: features.map((f) => this.key(f)) } : { pattern: 'cfg:*' };
    const keys = features ? message.keys : await this.scanKeys('cfg:*');
    if (keys.length) await this.redis.del(...keys);
    this.apply(message); // this process at once; its subscriber counts the echo
    await this.redis.publish(CHANNEL, JSON.stringify(message));
    return keys;
  }

  async scanKeys(match) {
    const keys = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  }

  dropLocal() {
    this.generation += 1;
    this.local.clear();
  }

  /**
   * A miss storm for drills: every cfg:* key flushed and, until it is turned off, nothing cached,
   * so every lookup misses both layers and loads from the database.
   */
  async setStorm(on) {
    this.storm = Boolean(on);
    if (this.storm) await this.invalidate();
    return this.state();
  }

  state() {
    return { version: this.version, storm: this.storm, local_entries: this.local.size, subscribed: this.subscriber?.status === 'ready' };
  }

  close() {
    this.subscriber?.disconnect();
  }
}

module.exports = { ConfigCache, CONFIG_VERSION, CHANNEL };
