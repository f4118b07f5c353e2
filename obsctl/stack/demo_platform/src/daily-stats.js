'use strict';

const { TERMINAL_STATUSES } = require('./features');
const { sleep } = require('./util');
const { log, describeError } = require('./log');

/** BE-DB-004's figures: runs every 5 s, so a healthy summary is at most about 10 s behind. */
const DAILY_STATS = Object.freeze({
  intervalMs: 5000,
  batchSize: 5000,
  // Only tasks finished at least this long ago are folded in: a finishing transaction stamps
  // finished_at before it commits, and a row committed behind the cursor would be skipped.
  settleMs: 2000,
});
const CURSOR = 'daily';

/**
 * The incremental writer of tasks_daily_stats: folds tasks finished since its cursor into
 * (date, status) counts and moves the cursor, in one transaction. The cursor row is locked
 * (FOR UPDATE), so the aggregators of several PM2 workers take turns and never count twice;
 * a stopped or paused aggregator resumes from the cursor and loses nothing.
 */
class DailyStatsAggregator {
  constructor({ knex, metrics, options = DAILY_STATS }) {
    this.knex = knex;
    this.metrics = metrics;
    this.options = { ...DAILY_STATS, ...options };
    this.stopped = false;
    this.wake = null;
    this.loop = null;
  }

  start() {
    this.loop = this.run();
    return this;
  }

  async stop() {
    this.stopped = true;
    this.wake?.abort();
    await this.loop;
  }

  /** Pauses or resumes every aggregator: the flag is on the shared cursor row. */
  async setPaused(paused) {
    await this.knex('tasks_daily_stats_cursor').where('name', CURSOR).update({ paused });
    this.wake?.abort();
  }

  async isPaused() {
    const cursor = await this.knex('tasks_daily_stats_cursor').where('name', CURSOR).first('paused');
    return Boolean(cursor?.paused);
  }

  async run() {
    while (!this.stopped) {
      let full = false;
      try {
        full = (await this.runOnce()) === this.options.batchSize;
        this.metrics.runs.inc({ outcome: 'ok' });
      } catch (err) {
        this.metrics.runs.inc({ outcome: 'error' });
        log.throttled('daily-stats', 10000, 'warn', 'daily stats run failed', { error: describeError(err) });
      }
      if (!full && !this.stopped) await this.nap();
    }
  }

  async nap() {
    this.wake = new AbortController();
    await sleep(this.options.intervalMs, this.wake.signal).catch(() => {});
  }

  /** One batch: returns how many tasks it folded in. */
  async runOnce() {
    const { batchSize, settleMs } = this.options;
    const applied = await this.knex.transaction(async (trx) => {
      const cursor = await trx('tasks_daily_stats_cursor').where('name', CURSOR).forUpdate().first();
      if (!cursor) throw new Error(`tasks_daily_stats_cursor has no '${CURSOR}' row`);
      if (cursor.paused) return [];
      const [rows] = await trx.raw(
        `SELECT id, status, finished_at, DATE_FORMAT(finished_at, '%Y-%m-%d') AS day
         FROM tasks FORCE INDEX (idx_tasks_finished_id)
         WHERE ((finished_at = ? AND id > ?) OR finished_at > ?)
           AND finished_at <= NOW(3) - INTERVAL ? MICROSECOND
         ORDER BY finished_at, id LIMIT ?`,
        [cursor.finished_at, cursor.task_id, cursor.finished_at, settleMs * 1000, batchSize],
      );
      if (rows.length === 0) return [];
      const counts = new Map();
      for (const row of rows) {
        if (!TERMINAL_STATUSES.includes(row.status)) continue; // finished_at is set with a terminal status only
        const key = `${row.day}|${row.status}`;
        counts.set(key, (counts.get(key) || 0) + 1);
      }
      for (const [key, count] of counts) {
        const [day, status] = key.split('|');
        await trx.raw(
          'INSERT INTO tasks_daily_stats (`date`, `status`, `count`) VALUES (?, ?, ?) ' +
            'ON DUPLICATE KEY UPDATE `count` = `count` + VALUES(`count`)',
          [day, status, count],
        );
      }
      const last = rows[rows.length - 1];
      await trx('tasks_daily_stats_cursor')
        .where('name', CURSOR)
        .update({ finished_at: last.finished_at, task_id: last.id, updated_at: trx.fn.now(3) });
      return rows;
    });
    for (const row of applied) this.metrics.applied.inc({ status: row.status });
    await this.measureLag();
    return applied.length;
  }

  /** Seconds since the oldest finished task the summary does not hold yet; 0 when caught up. */
  async measureLag() {
    const cursor = await this.knex('tasks_daily_stats_cursor').where('name', CURSOR).first();
    const [[oldest]] = await this.knex.raw(
      `SELECT TIMESTAMPDIFF(MICROSECOND, finished_at, NOW(3)) / 1e6 AS lag
       FROM tasks FORCE INDEX (idx_tasks_finished_id)
       WHERE (finished_at = ? AND id > ?) OR finished_at > ?
       ORDER BY finished_at, id LIMIT 1`,
      [cursor.finished_at, cursor.task_id, cursor.finished_at],
    );
    this.metrics.lag.set(oldest ? Math.max(0, Number(oldest.lag)) : 0);
    this.metrics.lastRun.set(Date.now() / 1000);
  }
}

module.exports = { DailyStatsAggregator, DAILY_STATS };
