'use strict';

// BE-DB-004: tasks_daily_stats is written by an incremental aggregator (src/daily-stats.js)
// instead of inside each task's transaction. It walks finished tasks by (finished_at, id) and
// keeps its position in tasks_daily_stats_cursor, committed with the counts it adds, so a
// restart or a pause of any length resumes where it stopped and never counts a task twice.
exports.up = async (knex) => {
  await knex.schema.alterTable('tasks', (t) => {
    t.index(['finished_at', 'id'], 'idx_tasks_finished_id');
  });
  await knex.schema.createTable('tasks_daily_stats_cursor', (t) => {
    t.engine('InnoDB');
    t.string('name', 32).primary();
    t.datetime('finished_at', { precision: 3 }).notNullable();
    t.bigInteger('task_id').unsigned().notNullable();
    // Set by an operator (POST /admin/daily-stats/pause) for a recount, and by the stats-lag
    // drill; every aggregator of every process honours it until resume.
    t.boolean('paused').notNullable().defaultTo(false);
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
  // Tasks finished before this migration were counted in their own transaction: start after them.
  const last = await knex('tasks')
    .whereNotNull('finished_at')
    .orderBy([{ column: 'finished_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .first('finished_at', 'id');
  await knex('tasks_daily_stats_cursor').insert({
    name: 'daily',
    finished_at: last ? last.finished_at : '1970-01-02 00:00:00.000',
    task_id: last ? last.id : 0,
    updated_at: knex.fn.now(3),
  });
};

exports.down = async (knex) => {
  await knex.schema.dropTableIfExists('tasks_daily_stats_cursor');
  await knex.schema.alterTable('tasks', (t) => {
    t.dropIndex(['finished_at', 'id'], 'idx_tasks_finished_id');
  });
};
