'use strict';

exports.up = async (knex) => {
  await knex.schema.createTable('tasks_daily_stats', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.date('date').notNullable();
    t.string('status', 16).notNullable();
    t.bigInteger('count').unsigned().notNullable().defaultTo(0);
    t.primary(['date', 'status']);
  });
};

exports.down = async (knex) => {
  await knex.schema.dropTableIfExists('tasks_daily_stats');
};
