'use strict';

exports.up = async (knex) => {
  await knex.schema.createTable('tasks', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.bigIncrements('id').unsigned().primary();
    t.bigInteger('user_id').unsigned().notNullable();
    t.string('feature', 32).notNullable();
    t.string('provider', 32).notNullable();
    // pending | queued | processing | succeeded | failed
    t.string('status', 16).notNullable();
    t.string('vendor_task_id', 64).nullable();
    t.string('error_code', 64).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.datetime('finished_at', { precision: 3 }).nullable();
    // BE-DB-001 index set; idx_tasks_updated_id is the change feed the exporter reads incrementally.
    t.index(['user_id', 'status', 'created_at', 'id'], 'idx_tasks_user_status_created_id');
    t.index(['status', 'created_at', 'id'], 'idx_tasks_status_created_id');
    t.unique(['vendor_task_id'], { indexName: 'uniq_tasks_vendor_task_id' });
    t.index(['updated_at', 'id'], 'idx_tasks_updated_id');
  });
};

exports.down = async (knex) => {
  await knex.schema.dropTableIfExists('tasks');
};
