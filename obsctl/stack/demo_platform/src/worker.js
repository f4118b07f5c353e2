'use strict';

const { Worker, UnrecoverableError } = require('bullmq');
const { FEATURE_KEYS, TASK_STATUS, TERMINAL_STATUSES } = require('./features');
const { ProviderError, submitTask, waitForResult } = require('./provider-client');
const { isOpenBreakerError, isTimeout } = require('./breakers');
const { redisConnection } = require('./queues');
const { failureReason } = require('./dead-letter');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

const CONCURRENCY = 4;
// The provider's failures that are about the input, which no retry cures: the task fails at once.
const PERMANENT_VENDOR_ERRORS = Object.freeze(['content_rejected', 'input_unreadable']);

/** A breaker's own refusal or timeout as the ProviderError that names it in tasks.error_code. */
function asProviderError(err, provider) {
  if (err instanceof ProviderError) return err;
  if (isOpenBreakerError(err)) return new ProviderError('provider_circuit_open', `provider '${provider}': circuit breaker open`);
  if (isTimeout(err)) return new ProviderError('provider_timeout', `provider '${provider}': call timed out`);
  return err;
}

/**
 * The task processor. The submit goes through the provider's circuit breaker; when it fails or
 * the breaker is open, the task moves to another enabled provider of its feature whose breaker
 * is not open.
 * `retries` counts the attempts BullMQ runs again, by queue and reason; `deadLetters`
 * (src/dead-letter.js) takes the jobs whose last attempt failed.
 */
function createTaskProcessor({ repo, catalog, breakers, providerUrls, providerKeys = new Map(), retries, deadLetters }) {
  /** Submits to the task's provider or, failing that, to the others in turn; returns both. */
  async function submitWithFallback(task) {
    const tried = [];
    let provider = task.provider;
    for (;;) {
      tried.push(provider);
      try {
        const baseUrl = providerUrls.get(provider);
        const apiKey = providerKeys.get(provider);
        const vendorTaskId = await breakers.fire(provider, () => submitTask(baseUrl, { feature: task.feature, taskId: task.id, apiKey }));
        return { provider, vendorTaskId };
      } catch (err) {
        const failure = asProviderError(err, provider);
        if (!(failure instanceof ProviderError)) throw failure;
        const next = await catalog.pickProvider(task.feature, { exclude: tried, usable: (p) => !breakers.isOpen(p) });
        if (!next) throw failure;
        breakers.fallbacks.inc({ provider });
        log.throttled(`fallback-${provider}`, 10000, 'warn', 'provider fallback', {
          task_id: task.id,
          from: provider,
          to: next,
          error: failure.code,
        });
        provider = next;
      }
    }
  }

  /** One attempt at a job; every failure throws, for processTask to retry or dead-letter. */
  async function attempt(job) {
    const { taskId } = job.data;
    const task = await repo.getTask(taskId);
    if (!task) throw new Error(`task ${taskId} does not exist`);
    if (TERMINAL_STATUSES.includes(task.status)) return { skipped: task.status };

    if (!providerUrls.has(task.provider)) {
      throw unrecoverable('provider_unknown', `task ${taskId}: provider '${task.provider}' has no URL`);
    }

    if (!(await repo.markProcessing(taskId))) return { skipped: 'terminal' };
    // A job re-run after a restart keeps following the vendor task it already started.
    let { provider, vendor_task_id: vendorTaskId } = task;
    if (!vendorTaskId) {
      ({ provider, vendorTaskId } = await submitWithFallback(task));
      await repo.setVendorTask(taskId, { provider, vendorTaskId });
    }
    const result = await waitForResult(providerUrls.get(provider), vendorTaskId, { apiKey: providerKeys.get(provider) });
    if (result.status !== TASK_STATUS.SUCCEEDED) {
      const message = `provider '${provider}' failed task ${vendorTaskId}: ${result.error || 'no reason given'}`;
      if (PERMANENT_VENDOR_ERRORS.includes(result.error)) throw unrecoverable('provider_rejected', message);
      throw new ProviderError('provider_failed', message);
    }
    await repo.finishTask(taskId, TASK_STATUS.SUCCEEDED);
    return { status: result.status, vendor_task_id: vendorTaskId };
  }

  /**
   * After a failed attempt: count the retry and forget the vendor task (the next attempt submits
   * a new one), or, on the last attempt, fail the task and dead-letter the job.
   */
  async function afterFailure(job, err) {
    const queue = job.queueName;
    const reason = failureReason(err);
    const { taskId } = job.data;
    if (err.code === 'provider_rejected') {
      // The input is what the provider refuses: no retry, and nothing worth replaying.
      await repo.finishTask(taskId, TASK_STATUS.FAILED, err.code).catch((e) => log.warn('task not failed', { task_id: taskId, error: describeError(e) }));
      return;
    }
    if (!isLastAttempt(job, err)) {
      retries.inc({ queue, reason });
      await repo.clearVendorTask(taskId).catch((e) => log.warn('vendor task not cleared', { task_id: taskId, error: describeError(e) }));
      return;
    }
    await repo.finishTask(taskId, TASK_STATUS.FAILED, reason).catch((e) => log.warn('task not failed', { task_id: taskId, error: describeError(e) }));
    await deadLetters.add(job, err).catch((e) => log.error('dead letter lost', { queue, task_id: taskId, reason, error: describeError(e) }));
  }

  /**
   * Processes a {taskId} job: processing -> provider call -> poll -> succeeded; a failed
   * attempt rethrows, so BullMQ retries it with back-off (queues.js JOB_OPTIONS) and, after the
   * last one, keeps it in its failed set while its dead letter waits in the dead-letter queue.
   */
  return async function processTask(job) {
    try {
      return await attempt(job);
    } catch (err) {
      await afterFailure(job, err);
      throw err;
    }
  };
}

/** An error BullMQ does not retry, with the code that names it in tasks.error_code. */
function unrecoverable(code, message) {
  const err = new UnrecoverableError(message);
  err.code = code;
  return err;
}

/** Whether BullMQ will not run this job again after this attempt failed with err. */
function isLastAttempt(job, err) {
  return err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts?.attempts ?? 1);
}

/** One BullMQ Worker per feature queue, paused and resumed together. */
class WorkerPool {
  constructor({ redisUrl, prefix, processor, concurrency = CONCURRENCY }) {
    this.paused = false;
    this.workers = FEATURE_KEYS.map((name) => {
      const worker = new Worker(name, processor, { connection: redisConnection(redisUrl), prefix, concurrency });
      worker.on('failed', (job, err) =>
        log.throttled(`job-failed-${name}`, 10000, 'warn', 'job failed', {
          queue: name,
          task_id: job?.data?.taskId,
          error: describeError(err),
        }),
      );
      worker.on('error', (err) =>
        log.throttled(`worker-error-${name}`, 5000, 'warn', 'worker error', { queue: name, error: describeError(err) }),
      );
      return worker;
    });
  }

  waitUntilReady() {
    return Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /** Stops taking new jobs; jobs already running finish on their own. */
  async pause() {
    await Promise.all(this.workers.map((w) => w.pause(true)));
    this.paused = true;
  }

  async resume() {
    await Promise.all(this.workers.map((w) => w.resume()));
    this.paused = false;
  }

  /**
   * Lets running jobs finish for up to graceMs. A job still running after that is left
   * active in Redis when the process exits; once its lock expires BullMQ's stalled check
   * re-queues it and the next run resumes it (see vendor_task_id above).
   */
  async close(graceMs) {
    const closing = Promise.all(this.workers.map((w) => w.close()));
    try {
      await withTimeout(closing, graceMs, 'grace period over');
      return { timedOut: false };
    } catch {
      return { timedOut: true };
    }
  }
}

module.exports = { createTaskProcessor, WorkerPool, CONCURRENCY, PERMANENT_VENDOR_ERRORS, isLastAttempt };
