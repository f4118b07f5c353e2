'use strict';

const { Queue } = require('bullmq');
const { FEATURE_KEYS } = require('./features');
const { log, describeError } = require('./log');

/**
 * Every task job (BE-ASYNC-001): three attempts, the retries 1 s then 2 s after a failure
 * (exponential), then the dead-letter queue (src/dead-letter.js); bounded completed/failed sets.
 */
const JOB_ATTEMPTS = 3;
const JOB_BACKOFF = Object.freeze({ type: 'exponential', delay: 1000 });
const JOB_OPTIONS = Object.freeze({
  attempts: JOB_ATTEMPTS,
  backoff: JOB_BACKOFF,
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 1000 },
});

/** BullMQ connection options from a redis:// URL (BullMQ hands them to ioredis). */
function redisConnection(redisUrl) {
  return { url: redisUrl, connectTimeout: 5000 };
}

/** One BullMQ Queue per feature, named exactly after the feature. */
function createQueues({ redisUrl, prefix }) {
  const queues = new Map();
  for (const name of FEATURE_KEYS) {
    const queue = new Queue(name, { connection: redisConnection(redisUrl), prefix });
    queue.on('error', (err) =>
      log.throttled(`queue-error-${name}`, 5000, 'warn', 'queue redis error', { queue: name, error: describeError(err) }),
    );
    queues.set(name, queue);
  }
  return queues;
}

async function closeQueues(queues) {
  await Promise.allSettled([...queues.values()].map((q) => q.close()));
}

module.exports = { JOB_OPTIONS, JOB_ATTEMPTS, JOB_BACKOFF, redisConnection, createQueues, closeQueues };
