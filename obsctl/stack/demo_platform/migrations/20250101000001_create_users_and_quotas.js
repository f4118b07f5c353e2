'use strict';

exports.up = async (knex) => {
  await knex.schema.createTable('users', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.bigIncrements('id').unsigned().primary();
    t.string('nick', 64).notNullable();
    t.string('status', 16).notNullable().defaultTo('active');
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('updated_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
  });
  await knex.schema.createTable('quotas', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.bigInteger('user_id').unsigned().notNullable().primary();
    t.integer('remaining').notNullable();
    t.integer('used').notNullable().defaultTo(0);
    t.datetime('updated_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.index(['user_id', 'updated_at'], 'idx_quotas_user_updated');
  });
};

exports.down = async (knex) => {
  await knex.schema.dropTableIfExists('quotas');
  await knex.schema.dropTableIfExists('users');
};
