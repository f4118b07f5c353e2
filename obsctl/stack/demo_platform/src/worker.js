'use strict';

const { Worker } = require('bullmq');
const { FEATURE_KEYS, TASK_STATUS, TERMINAL_STATUSES } = require('./features');
const { ProviderError, submitTask, waitForResult } = require('./provider-client');
const { redisConnection } = require('./queues');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

const CONCURRENCY = 4;

/**
 * Processes a {taskId} job: processing -> provider call -> poll -> succeeded/failed.
 * A provider error fails the task and rethrows, so the job lands in BullMQ's failed set.
 */
function createTaskProcessor({ repo, providerUrls, providerKeys = new Map() }) {
  return async function processTask(job) {
    const { taskId } = job.data;
    const task = await repo.getTask(taskId);
    if (!task) throw new Error(`task ${taskId} does not exist`);
    if (TERMINAL_STATUSES.includes(task.status)) return { skipped: task.status };

    const baseUrl = providerUrls.get(task.provider);
    if (!baseUrl) {
      await repo.finishTask(taskId, TASK_STATUS.FAILED, 'provider_unknown');
      throw new Error(`task ${taskId}: provider '${task.provider}' has no URL`);
    }

    if (!(await repo.markProcessing(taskId))) return { skipped: 'terminal' };
    const apiKey = providerKeys.get(task.provider);
    try {
      // A job re-run after a restart keeps following the vendor task it already started.
      let vendorTaskId = task.vendor_task_id;
      if (!vendorTaskId) {
        vendorTaskId = await submitTask(baseUrl, { feature: task.feature, taskId, apiKey });
        await repo.setVendorTaskId(taskId, vendorTaskId);
      }
      const result = await waitForResult(baseUrl, vendorTaskId, { apiKey });
      if (result.status === TASK_STATUS.SUCCEEDED) {
        await repo.finishTask(taskId, TASK_STATUS.SUCCEEDED);
      } else {
        await repo.finishTask(taskId, TASK_STATUS.FAILED, 'provider_failed');
      }
      return { status: result.status, vendor_task_id: vendorTaskId };
    } catch (err) {
      if (err instanceof ProviderError) await repo.finishTask(taskId, TASK_STATUS.FAILED, err.code);
      throw err;
    }
  };
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

module.exports = { createTaskProcessor, WorkerPool, CONCURRENCY };
