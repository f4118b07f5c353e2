'use strict';

const { FEATURES } = require('./features');

/** Users whose id is a multiple of this start (and stay) at zero quota, so a few requests get 402. */
const EXHAUSTED_EVERY = 30;
const INITIAL_QUOTA = { min: 50, max: 500 };
const INSERT_BATCH = 1000;
const SEED_LOCK = 'obsctl_demo_platform_seed';

/**
 * Brings the reference data up to the wanted size without duplicating anything:
 * users + quotas, feature_definitions and one provider_configs row per provider x feature.
 * Runs under a named lock so two processes starting together do not both insert.
 */
async function seed(knex, { userCount, providers }) {
  return knex.transaction(async (trx) => {
    await trx.raw('SELECT GET_LOCK(?, 30)', [SEED_LOCK]);
    try {
      return {
        users_created: await seedUsers(trx, userCount),
        quotas_created: await seedQuotas(trx),
        features_created: await seedFeatures(trx),
        provider_configs_created: await seedProviderConfigs(trx, providers),
      };
    } finally {
      await trx.raw('SELECT RELEASE_LOCK(?)', [SEED_LOCK]);
    }
  });
}

async function seedUsers(trx, userCount) {
  const { existing } = await trx('users').count({ existing: '*' }).first();
  const missing = userCount - Number(existing);
  for (let offset = 0; offset < missing; offset += INSERT_BATCH) {
    const size = Math.min(INSERT_BATCH, missing - offset);
    const rows = Array.from({ length: size }, (_, i) => ({
      nick: `user_${String(Number(existing) + offset + i + 1).padStart(6, '0')}`,
      status: 'active',
    }));
    await trx('users').insert(rows);
  }
  return Math.max(missing, 0);
}

async function seedQuotas(trx) {
  const [result] = await trx.raw(
    `INSERT INTO quotas (user_id, remaining, used, updated_at)
     SELECT u.id, IF(MOD(u.id, ?) = 0, 0, ? + FLOOR(RAND() * ?)), 0, NOW(3)
     FROM users u LEFT JOIN quotas q ON q.user_id = u.id
     WHERE q.user_id IS NULL`,
    [EXHAUSTED_EVERY, INITIAL_QUOTA.min, INITIAL_QUOTA.max - INITIAL_QUOTA.min + 1],
  );
  return result.affectedRows;
}

async function seedFeatures(trx) {
  const existing = new Set(await trx('feature_definitions').pluck('feature_key'));
  const rows = FEATURES.filter((f) => !existing.has(f.key)).map((f) => ({
    feature_key: f.key,
    name: f.name,
    cost: f.cost,
    enabled: true,
  }));
  if (rows.length) await trx('feature_definitions').insert(rows);
  return rows.length;
}

async function seedProviderConfigs(trx, providers) {
  const existing = await trx('provider_configs').select('id', 'provider', 'feature_key', 'endpoint');
  const byPair = new Map(existing.map((row) => [`${row.provider}/${row.feature_key}`, row]));
  const rows = [];
  for (const [provider, endpoint] of providers) {
    for (const feature of FEATURES) {
      const row = byPair.get(`${provider}/${feature.key}`);
      if (!row) {
        rows.push({ provider, feature_key: feature.key, endpoint, weight: 1, enabled: true });
      } else if (row.endpoint !== endpoint) {
        // The local stack may move a provider to another port between runs.
        await trx('provider_configs').where('id', row.id).update({ endpoint });
      }
    }
  }
  if (rows.length) await trx('provider_configs').insert(rows);
  return rows.length;
}

module.exports = { seed, EXHAUSTED_EVERY, INITIAL_QUOTA };
