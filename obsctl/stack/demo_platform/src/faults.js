'use strict';

const { sleep } = require('./util');

/** The gap before the next sporadic error: 0.5x..1.5x of the mean, so errors never clump. */
function nextGap(perMinute) {
  return perMinute > 0 ? (60000 / perMinute) * (0.5 + Math.random()) : Infinity;
}

/**
 * API faults (admin-controlled): injected latency, then a 500 with probability errorRate;
 * besides, the sporadic single 500s a healthy platform shows (about sporadicPerMinute a minute).
 */
class Faults {
  constructor({ sporadicErrorsPerMinute = 0 } = {}) {
    this.errorRate = 0;
    this.latencyMs = 0;
    this.sporadicPerMinute = 0;
    this.nextSporadicAt = Infinity;
    this.setSporadic(sporadicErrorsPerMinute);
    this.middleware = this.middleware.bind(this);
  }

  set({ error_rate: errorRate, latency_ms: latencyMs, sporadic_errors_per_minute: sporadic }) {
    if (errorRate !== undefined) this.errorRate = errorRate;
    if (latencyMs !== undefined) this.latencyMs = latencyMs;
    if (sporadic !== undefined) this.setSporadic(sporadic);
  }

  setSporadic(perMinute) {
    this.sporadicPerMinute = perMinute;
    this.nextSporadicAt = Date.now() + nextGap(perMinute);
  }

  toJSON() {
    return { error_rate: this.errorRate, latency_ms: this.latencyMs, sporadic_errors_per_minute: this.sporadicPerMinute };
  }

  /** True once per gap: the request that takes the next sporadic error. */
  takeSporadic() {
    const now = Date.now();
    if (now < this.nextSporadicAt) return false;
    this.nextSporadicAt = now + nextGap(this.sporadicPerMinute);
    return true;
  }

  async middleware(req, res, next) {
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    if (this.errorRate > 0 && Math.random() < this.errorRate) {
      res.status(500).json({ error: 'injected' });
      return;
    }
    if (this.takeSporadic()) {
      res.status(500).json({ error: 'internal' });
      return;
    }
    next();
  }
}

module.exports = { Faults };
