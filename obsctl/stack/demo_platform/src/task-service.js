'use strict';

const { ApiError } = require('./errors');
const { JOB_OPTIONS } = require('./queues');
const { FEATURE_KEYS, TASK_STATUS } = require('./features');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

const ENQUEUE_TIMEOUT_MS = 2000;

/** The create-task path shared by POST /api/tasks and the admin burst. */
class TaskService {
  constructor({ repo, catalog, queues }) {
    this.repo = repo;
    this.catalog = catalog;
    this.queues = queues;
  }

  /** Charges quota, inserts a queued task and enqueues {taskId}; throws ApiError on a refusal. */
  async create(userId, featureKey) {
    const feature = await this.catalog.feature(featureKey);
    if (!feature) {
      throw ApiError.invalid('feature', `unknown or disabled feature '${featureKey}'; expected one of ${FEATURE_KEYS.join(', ')}`);
    }
    const provider = await this.catalog.pickProvider(feature.key);
    if (!provider) throw new ApiError(503, { error: 'no_provider', message: `no enabled provider for ${feature.key}` });

    const outcome = await this.repo.createQueuedTask({ userId, feature: feature.key, provider, cost: feature.cost });
    if (outcome.rejected === 'quota_exhausted') throw new ApiError(402, { error: 'quota_exhausted' });
    if (outcome.rejected === 'user_not_found') throw new ApiError(404, { error: 'user_not_found' });

    const { taskId } = outcome;
    try {
      await withTimeout(
        this.queues.get(feature.key).add('task', { taskId }, JOB_OPTIONS),
        ENQUEUE_TIMEOUT_MS,
        `enqueue timed out after ${ENQUEUE_TIMEOUT_MS} ms`,
      );
    } catch (err) {
      // Without this the row would sit in 'queued' forever; the worker skips it if the add lands late.
      log.throttled('enqueue-failed', 5000, 'warn', 'enqueue failed', { task_id: taskId, error: describeError(err) });
      await this.repo.finishTask(taskId, TASK_STATUS.FAILED, 'enqueue_failed').catch(() => {});
      throw new ApiError(503, { error: 'queue_unavailable' });
    }
    return { id: taskId, status: TASK_STATUS.QUEUED, feature: feature.key, provider };
  }
}

module.exports = { TaskService };
