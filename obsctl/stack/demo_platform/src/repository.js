'use strict';

const { TASK_STATUS, TERMINAL_STATUSES } = require('./features');
const { EXHAUSTED_EVERY, INITIAL_QUOTA } = require('./seed');

const TASK_COLUMNS = [
  'id', 'user_id', 'feature', 'provider', 'status', 'vendor_task_id',
  'error_code', 'created_at', 'updated_at', 'finished_at',
];

/** SQL for tasks, quotas and users. Every status change stamps updated_at = NOW(3). */
class Repository {
  constructor(knex) {
    this.knex = knex;
  }

  /**
   * Charges `cost` quota and inserts a queued task in one transaction.
   * Returns {taskId} or {rejected: 'quota_exhausted' | 'user_not_found'}.
   */
  async createQueuedTask({ userId, feature, provider, cost }) {
    return this.knex.transaction(async (trx) => {
      const charged = await trx('quotas')
        .where('user_id', userId)
        .where('remaining', '>=', cost)
        .update({
          remaining: trx.raw('remaining - ?', [cost]),
          used: trx.raw('used + ?', [cost]),
          updated_at: trx.fn.now(3),
        });
      if (charged === 0) {
        const quota = await trx('quotas').where('user_id', userId).first('user_id');
        return { rejected: quota ? 'quota_exhausted' : 'user_not_found' };
      }
      const [taskId] = await trx('tasks').insert({
        user_id: userId,
        feature,
        provider,
        status: TASK_STATUS.QUEUED,
        created_at: trx.fn.now(3),
        updated_at: trx.fn.now(3),
      });
      return { taskId };
    });
  }

  async getTask(id) {
    return this.knex('tasks').where('id', id).first(TASK_COLUMNS);
  }

  /** Seek pagination on (created_at, id) descending (BE-DB-003): no OFFSET. */
  async listTasks({ userId, status, limit, after }) {
    const query = this.knex('tasks').select(TASK_COLUMNS).where('user_id', userId);
    if (status) query.where('status', status);
    if (after) {
      query.where((q) =>
        q.where('created_at', '<', after.createdAt).orWhere((q2) =>
          q2.where('created_at', '=', after.createdAt).where('id', '<', after.id),
        ),
      );
    }
    return query.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(limit);
  }

  async getQuota(userId) {
    return this.knex('quotas').where('user_id', userId).first('user_id', 'remaining', 'used', 'updated_at');
  }

  /** queued -> processing; false if the task is gone or already terminal. */
  async markProcessing(id) {
    const changed = await this.knex('tasks')
      .where('id', id)
      .whereNotIn('status', TERMINAL_STATUSES)
      .update({ status: TASK_STATUS.PROCESSING, updated_at: this.knex.fn.now(3) });
    return changed === 1;
  }

  /** Records the vendor task and the provider that holds it (another one after a fallback). */
  async setVendorTask(id, { provider, vendorTaskId }) {
    await this.knex('tasks')
      .where('id', id)
      .update({ provider, vendor_task_id: vendorTaskId, updated_at: this.knex.fn.now(3) });
  }

  /** Forgets a failed attempt's vendor task, so the job's next attempt submits a new one. */
  async clearVendorTask(id) {
    await this.knex('tasks')
      .where('id', id)
      .whereNotIn('status', TERMINAL_STATUSES)
      .update({ vendor_task_id: null, updated_at: this.knex.fn.now(3) });
  }

  /**
   * failed -> queued for a replayed dead letter, as if new but for its id, created_at and
   * quota (charged once); false unless the task is failed.
   */
  async requeueFailedTask(id) {
    const changed = await this.knex('tasks')
      .where({ id, status: TASK_STATUS.FAILED })
      .update({
        status: TASK_STATUS.QUEUED,
        error_code: null,
        vendor_task_id: null,
        finished_at: null,
        updated_at: this.knex.fn.now(3),
      });
    return changed === 1;
  }

  /** Moves a task to succeeded/failed once; src/daily-stats.js counts it in tasks_daily_stats. */
  async finishTask(id, status, errorCode = null) {
    if (!TERMINAL_STATUSES.includes(status)) throw new Error(`not a terminal status: ${status}`);
    const changed = await this.knex('tasks')
      .where('id', id)
      .whereNotIn('status', TERMINAL_STATUSES)
      .update({ status, error_code: errorCode, updated_at: this.knex.fn.now(3), finished_at: this.knex.fn.now(3) });
    return changed === 1;
  }

  async listUserIds() {
    return this.knex('users').where('status', 'active').orderBy('id').pluck('id');
  }

  /** Up to `limit` random users that can pay for at least one task of `cost`. */
  async usersWithQuota(cost, limit) {
    return this.knex('quotas').where('remaining', '>=', cost).orderByRaw('RAND()').limit(limit).pluck('user_id');
  }

  /** Refills exhausted users, except the fixed few that are meant to stay exhausted. */
  async topUpQuotas() {
    const [result] = await this.knex.raw(
      `UPDATE quotas SET remaining = ? + FLOOR(RAND() * ?), updated_at = NOW(3)
       WHERE remaining <= 0 AND MOD(user_id, ?) <> 0`,
      [INITIAL_QUOTA.min, INITIAL_QUOTA.max - INITIAL_QUOTA.min + 1, EXHAUSTED_EVERY],
    );
    return result.affectedRows;
  }
}

module.exports = { Repository };
