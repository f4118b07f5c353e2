'use strict';

const { log, describeError } = require('./log');

const TICK_MS = 100;
const MAX_IN_FLIGHT = 64;
const REQUEST_TIMEOUT_MS = 10000;
// One client, as a proxy in front of the platform would pass it on (TEST-NET-3, never routed).
const FLOOD_IP = '203.0.113.7';
const FLOOD_FEATURE = 'matting';

/** One misbehaving client posting tasks to the platform's own API at a steady rate (drills). */
class Flood {
  constructor({ baseUrl }) {
    this.baseUrl = baseUrl;
    this.rate = 0;
    this.userId = 1;
    this.credit = 0;
    this.inFlight = 0;
    this.counters = { sent: 0, rejected: 0, errors: 0 };
    this.timer = null;
  }

  /** Floods POST /api/tasks at `rate` requests/s as `userId` from FLOOD_IP; rate 0 stops it. */
  set(rate, userId) {
    this.rate = rate;
    if (userId !== undefined) this.userId = userId;
    this.credit = 0;
    if (rate > 0 && !this.timer) this.timer = setInterval(() => this.tick(), TICK_MS);
    if (rate === 0) this.stop();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.rate = 0;
  }

  state() {
    return { requests_per_second: this.rate, user_id: this.userId, ip: FLOOD_IP, in_flight: this.inFlight, ...this.counters };
  }

  toJSON() {
    return this.state();
  }

  tick() {
    this.credit += (this.rate * TICK_MS) / 1000;
    const due = Math.floor(this.credit);
    this.credit -= due;
    for (let i = 0; i < due && this.inFlight < MAX_IN_FLIGHT; i += 1) this.send();
  }

  async send() {
    this.inFlight += 1;
    this.counters.sent += 1;
    try {
      const response = await fetch(`${this.baseUrl}/api/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': FLOOD_IP, 'x-user-id': String(this.userId) },
        body: JSON.stringify({ user_id: this.userId, feature: FLOOD_FEATURE }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      await response.arrayBuffer();
      if (response.status === 429) this.counters.rejected += 1;
    } catch (err) {
      this.counters.errors += 1;
      log.throttled('flood-request', 10000, 'warn', 'flood request failed', { error: describeError(err) });
    } finally {
      this.inFlight -= 1;
    }
  }
}

module.exports = { Flood, FLOOD_IP };
