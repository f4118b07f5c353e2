'use strict';

const { sleep } = require('./util');

/** Injected API faults (admin-controlled): extra latency, then a 500 with probability errorRate. */
class Faults {
  constructor() {
    this.errorRate = 0;
    this.latencyMs = 0;
    this.middleware = this.middleware.bind(this);
  }

  set({ error_rate: errorRate, latency_ms: latencyMs }) {
    if (errorRate !== undefined) this.errorRate = errorRate;
    if (latencyMs !== undefined) this.latencyMs = latencyMs;
  }

  toJSON() {
    return { error_rate: this.errorRate, latency_ms: this.latencyMs };
  }

  async middleware(req, res, next) {
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    if (this.errorRate > 0 && Math.random() < this.errorRate) {
      res.status(500).json({ error: 'injected' });
      return;
    }
    next();
  }
}

module.exports = { Faults };
