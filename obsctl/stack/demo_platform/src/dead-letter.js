'use strict';

const { Queue } = require('bullmq');
const { redisConnection } = require('./queues');
const { log, describeError } = require('./log');

/**
 * The dead-letter queue (BE-ASYNC-001): where a task job goes once every attempt failed. It has
 * no worker and is kept paused, so its jobs wait for a person: inspected under
 * GET /admin/dead-letters, moved back to work by POST /admin/dead-letters/replay. The exporter sees its jobs as `paused` (its depth), never as a
 * backlog a worker should be taking; the queue rules leave it out by name.
 */
const DEAD_LETTER_QUEUE = 'dead-letter';

// The bounded `reason` label of the retry and dead-letter counters: the ProviderError codes
// (tasks.error_code), provider_unknown (the task names a provider without a URL) and internal
// (anything else: the database, Redis, a bug).
const FAILURE_REASONS = Object.freeze([
  'provider_error',
  'provider_timeout',
  'provider_unavailable',
  'provider_bad_response',
  'provider_circuit_open',
  'provider_failed',
  'provider_unknown',
  'internal',
]);

/** The reason label of an error: its code when it is a known one, else internal. */
function failureReason(err) {
  return FAILURE_REASONS.includes(err?.code) ? err.code : 'internal';
}

/** The paused dead-letter queue and the counter of what lands in it. */
class DeadLetters {
  constructor({ redisUrl, prefix, counter, queue }) {
    this.queue = queue || new Queue(DEAD_LETTER_QUEUE, { connection: redisConnection(redisUrl), prefix });
    this.counter = counter;
    this.queue.on?.('error', (err) =>
      log.throttled('dead-letter-error', 5000, 'warn', 'dead-letter queue redis error', { error: describeError(err) }),
    );
  }

  /** Waits for Redis and pauses the queue: nothing consumes it, a person replays it. */
  async start() {
    await this.queue.waitUntilReady();
    await this.queue.pause();
  }

  /**
   * Records a job whose last attempt failed: its queue, job and task ids, the reason and the
   * error. The job id is derived from the original job, so a re-run adds it only once.
   */
  async add(job, err) {
    const reason = failureReason(err);
    const entry = {
      queue: job.queueName,
      job_id: String(job.id),
      task_id: job.data?.taskId ?? null,
      reason,
      error: String(err?.message ?? err).slice(0, 500),
      attempts: job.attemptsMade + 1,
      failed_at: new Date().toISOString(),
    };
    await this.queue.add('dead-letter', entry, {
      jobId: `${job.queueName}-${job.id}`,
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
    });
    this.counter.inc({ queue: job.queueName, reason });
    log.throttled(`dead-letter-${job.queueName}`, 10000, 'warn', 'job dead-lettered', entry);
    return entry;
  }

  /** Up to `limit` dead letters, oldest first, with the queue's job counts. */
  async list(limit = 100) {
    const [counts, jobs] = await Promise.all([
      this.queue.getJobCounts(),
      this.queue.getJobs(['paused', 'wait', 'waiting', 'delayed'], 0, limit - 1, true),
    ]);
    const depth = Object.values(counts).reduce((sum, n) => sum + n, 0);
    return { queue: DEAD_LETTER_QUEUE, depth, jobs: jobs.map((j) => ({ id: j.id, ...j.data })) };
  }

  /**
   * Moves up to `limit` dead letters back to work, oldest first: `requeue(queue, taskId)` puts
   * the task back in its queue and answers whether it did; a letter it refuses (its task is no
   * longer failed, its queue unknown) stays, so nothing is dropped unseen.
   */
  async replay(limit, requeue) {
    const jobs = await this.queue.getJobs(['paused', 'wait', 'waiting'], 0, limit - 1, true);
    const replayed = [];
    const kept = [];
    for (const job of jobs) {
      const { queue, task_id: taskId } = job.data;
      if (await requeue(queue, taskId)) {
        await job.remove();
        replayed.push({ id: job.id, queue, task_id: taskId });
      } else {
        kept.push({ id: job.id, queue, task_id: taskId });
      }
    }
    log.info('dead letters replayed', { replayed: replayed.length, kept: kept.length });
    return { replayed, kept };
  }

  close() {
    return this.queue.close();
  }
}

module.exports = { DEAD_LETTER_QUEUE, FAILURE_REASONS, DeadLetters, failureReason };
