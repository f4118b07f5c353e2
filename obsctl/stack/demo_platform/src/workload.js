'use strict';

const { FEATURE_KEYS } = require('./features');
const { ApiError } = require('./errors');
const { mapWithConcurrency } = require('./util');
const { log, describeError } = require('./log');

const TICK_MS = 100;
const TOP_UP_EVERY_MS = 60000;
const MAX_IN_FLIGHT = 256;
const REQUEST_TIMEOUT_MS = 65000; // above the 60 s maximum injected latency
const BURST_CONCURRENCY = 4;
const BURST_USER_SAMPLE = 1000;
const RECENT_TASKS = 200;
// Companion requests per created task, so the API sees a realistic mix (and a few 404s).
const MIX = { list: 0.5, quota: 0.3, getTask: 0.2, missingTask: 0.03, unknownRoute: 0.01 };

const pick = (items) => items[Math.floor(Math.random() * items.length)];

/** When the next noise burst starts: 0.5x..1.5x of everySeconds from now, never when off. */
function nextBurstAt(now, { everySeconds, seconds, factor }) {
  if (!(everySeconds > 0 && seconds > 0 && factor > 1)) return Infinity;
  return now + everySeconds * 1000 * (0.5 + Math.random());
}

/**
 * Synthetic users calling the platform's own HTTP API at a steady rate, plus a
 * periodic quota top-up so the traffic never dries up.
 */
class Workload {
  constructor({ baseUrl, repo, tasks, rate, bursts = {} }) {
    this.baseUrl = baseUrl;
    this.repo = repo;
    this.tasks = tasks;
    this.rate = rate;
    this.bursts = { everySeconds: 0, seconds: 0, factor: 1 };
    this.burstUntil = 0;
    this.nextBurstAt = Infinity;
    this.setBursts(bursts);
    this.userIds = [];
    this.recentTaskIds = [];
    this.credit = 0;
    this.inFlight = 0;
    this.counters = { sent: 0, dropped: 0, errors: 0, bursts_started: 0 };
    this.abort = new AbortController();
    this.timers = [];
  }

  async start() {
    await this.refreshUsers();
    this.timers.push(setInterval(() => this.tick(), TICK_MS));
    this.timers.push(setInterval(() => this.topUp(), TOP_UP_EVERY_MS));
  }

  stop() {
    this.timers.forEach(clearInterval);
    this.timers = [];
    this.abort.abort(new Error('workload stopped'));
  }

  setRate(tasksPerSecond) {
    this.rate = tasksPerSecond;
    this.credit = 0;
  }

  /** Changes the noise bursts (any of everySeconds, seconds, factor); everySeconds 0 stops them. */
  setBursts(change) {
    const defined = Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined));
    this.bursts = { ...this.bursts, ...defined };
    this.burstUntil = 0;
    this.nextBurstAt = nextBurstAt(Date.now(), this.bursts);
  }

  /** The steady rate times the burst factor while a burst is on. */
  currentRate(now = Date.now()) {
    if (now >= this.nextBurstAt) {
      this.burstUntil = now + this.bursts.seconds * 1000;
      this.nextBurstAt = nextBurstAt(now, this.bursts);
      this.counters.bursts_started += 1;
      log.info('workload burst', { factor: this.bursts.factor, seconds: this.bursts.seconds });
    }
    return now < this.burstUntil ? this.rate * this.bursts.factor : this.rate;
  }

  settings() {
    const { everySeconds, seconds, factor } = this.bursts;
    return { tasks_per_second: this.rate, bursts: { every_seconds: everySeconds, seconds, factor } };
  }

  state() {
    return {
      ...this.settings(),
      bursting: Date.now() < this.burstUntil,
      in_flight: this.inFlight,
      users: this.userIds.length,
      ...this.counters,
    };
  }

  async refreshUsers() {
    this.userIds = await this.repo.listUserIds();
  }

  tick() {
    this.credit += (this.currentRate() * TICK_MS) / 1000;
    const due = Math.floor(this.credit);
    this.credit -= due;
    if (this.userIds.length === 0) return;
    for (let i = 0; i < due; i += 1) this.oneUserVisit();
  }

  oneUserVisit() {
    const userId = pick(this.userIds);
    this.send('POST', '/api/tasks', { user_id: userId, feature: pick(FEATURE_KEYS) }).then((created) => {
      if (created?.id) {
        this.recentTaskIds.push(created.id);
        if (this.recentTaskIds.length > RECENT_TASKS) this.recentTaskIds.shift();
      }
    });
    if (Math.random() < MIX.list) this.send('GET', `/api/tasks?user_id=${userId}&limit=10`);
    if (Math.random() < MIX.quota) this.send('GET', `/api/users/${userId}/quota`);
    if (Math.random() < MIX.getTask && this.recentTaskIds.length) this.send('GET', `/api/tasks/${pick(this.recentTaskIds)}`);
    if (Math.random() < MIX.missingTask) this.send('GET', '/api/tasks/9007199254740991');
    if (Math.random() < MIX.unknownRoute) this.send('GET', '/api/does-not-exist');
  }

  /** Fire-and-forget request to our own API; resolves to the JSON body or null, never rejects. */
  async send(method, path, body) {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.counters.dropped += 1;
      return null;
    }
    this.inFlight += 1;
    this.counters.sent += 1;
    try {
      const response = await fetch(this.baseUrl + path, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
      if (!response.ok) {
        await response.arrayBuffer(); // drain, so the keep-alive socket is reused
        return null;
      }
      return await response.json();
    } catch (err) {
      this.counters.errors += 1;
      if (!this.abort.signal.aborted) {
        log.throttled('workload-request', 10000, 'warn', 'workload request failed', { path, error: describeError(err) });
      }
      return null;
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Refills exhausted users (a fixed few stay exhausted) and picks up any new users. */
  async topUp() {
    try {
      const refilled = await this.repo.topUpQuotas();
      await this.refreshUsers();
      if (refilled) log.info('quota top-up', { users_refilled: refilled });
    } catch (err) {
      log.throttled('top-up', 60000, 'warn', 'quota top-up failed', { error: describeError(err) });
    }
  }

  /** Creates `count` tasks at once through the create-task service, spread over users with quota. */
  async burst(count, feature) {
    const started = Date.now();
    const users = await this.repo.usersWithQuota(1, BURST_USER_SAMPLE);
    if (users.length === 0) throw new ApiError(409, { error: 'no_user_with_quota' });
    const jobs = Array.from({ length: count }, (_, i) => ({ userId: users[i % users.length], feature: feature || pick(FEATURE_KEYS) }));
    const results = await mapWithConcurrency(jobs, BURST_CONCURRENCY, (job) => this.tasks.create(job.userId, job.feature));
    const failed = {};
    for (const r of results.filter((x) => !x.ok)) {
      const reason = r.error instanceof ApiError ? r.error.body.error : 'internal';
      failed[reason] = (failed[reason] || 0) + 1;
    }
    return {
      requested: count,
      created: results.filter((r) => r.ok).length,
      failed,
      feature: feature || 'mixed',
      duration_ms: Date.now() - started,
    };
  }
}

module.exports = { Workload };
