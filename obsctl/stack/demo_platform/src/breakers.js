'use strict';

const CircuitBreaker = require('opossum');
const { CALL_TIMEOUT_MS } = require('./provider-client');
const { log } = require('./log');

/**
 * BE-ASYNC-003: a call gives up after 2 s; more than half of the calls failing within 10 s
 * (5 calls at least, so two unlucky calls in a quiet minute do not count) opens the breaker
 * for 30 s, then one trial call decides between closing and opening again.
 */
const BREAKER_OPTIONS = Object.freeze({
  timeout: CALL_TIMEOUT_MS,
  errorThresholdPercentage: 50,
  resetTimeout: 30000,
  rollingCountTimeout: 10000,
  rollingCountBuckets: 10,
  volumeThreshold: 5,
});

/** The error opossum rejects with while a breaker is open. */
function isOpenBreakerError(err) {
  return err?.code === 'EOPENBREAKER';
}

function isTimeout(err) {
  return err?.code === 'ETIMEDOUT' || err?.code === 'provider_timeout';
}

/** One opossum breaker per provider, counting its state, opens, calls and fallbacks. */
class ProviderBreakers {
  /** `metrics` are the breaker families of createMetrics (src/metrics.js). */
  constructor(providers, metrics, options = BREAKER_OPTIONS) {
    const { state, opens, calls, states } = metrics;
    this.fallbacks = metrics.fallbacks;
    this.breakers = new Map();
    for (const provider of providers) {
      const breaker = new CircuitBreaker((call) => call(), { ...options, name: provider });
      const setState = (current) => {
        for (const s of states) state.set({ provider, state: s }, s === current ? 1 : 0);
      };

      breaker.on('open', () => {
        opens.inc({ provider });
        setState('open');
        log.warn('circuit breaker open', { provider, reset_ms: options.resetTimeout });
      });
      breaker.on('halfOpen', () => setState('half_open'));
      breaker.on('close', () => {
        setState('closed');
        log.info('circuit breaker closed', { provider });
      });
      breaker.on('success', () => calls.inc({ provider, outcome: 'success' }));
      breaker.on('reject', () => calls.inc({ provider, outcome: 'rejected' }));
      // opossum reports a timeout as a failure too: counted once, as a timeout.
      breaker.on('failure', (err) => calls.inc({ provider, outcome: isTimeout(err) ? 'timeout' : 'failure' }));
      this.breakers.set(provider, breaker);
    }
  }

  /** Runs call() through the provider's breaker; rejects at once while it is open. */
  fire(provider, call) {
    const breaker = this.breakers.get(provider);
    if (!breaker) return Promise.reject(new Error(`provider '${provider}' has no circuit breaker`));
    return breaker.fire(call);
  }

  /** True while the provider's breaker refuses calls without trying. */
  isOpen(provider) {
    return this.breakers.get(provider)?.opened ?? false;
  }

  /** Closes the provider's breaker by hand; false for an unknown provider. */
  reset(provider) {
    const breaker = this.breakers.get(provider);
    if (!breaker) return false;
    breaker.close();
    return true;
  }

  /** Stops the breakers' timers so the process can exit. */
  shutdown() {
    for (const breaker of this.breakers.values()) breaker.shutdown();
  }
}

module.exports = { ProviderBreakers, BREAKER_OPTIONS, isOpenBreakerError, isTimeout };
