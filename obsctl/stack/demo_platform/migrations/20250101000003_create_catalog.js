'use strict';

exports.up = async (knex) => {
  await knex.schema.createTable('feature_definitions', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.increments('id').primary();
    t.string('feature_key', 32).notNullable();
    t.string('name', 64).notNullable();
    t.integer('cost').notNullable().defaultTo(1);
    t.boolean('enabled').notNullable().defaultTo(true);
    t.unique(['feature_key'], { indexName: 'uniq_feature_definitions_feature_key' });
  });
  await knex.schema.createTable('provider_configs', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.increments('id').primary();
    t.string('provider', 32).notNullable();
    t.string('feature_key', 32).notNullable();
    t.string('endpoint', 255).notNullable();
    t.integer('weight').notNullable().defaultTo(1);
    t.boolean('enabled').notNullable().defaultTo(true);
    t.index(['provider', 'feature_key'], 'idx_provider_configs_provider_feature');
  });
};

exports.down = async (knex) => {
  await knex.schema.dropTableIfExists('provider_configs');
  await knex.schema.dropTableIfExists('feature_definitions');
};
