'use strict';

/**
 * feature_definitions and provider_configs, one feature at a time, read through the feature
 * config cache (src/config-cache.js) when one is given, else straight from the database.
 */
class Catalog {
  constructor(knex, providerUrls, { cache = null } = {}) {
    this.knex = knex;
    this.providerUrls = providerUrls;
    this.cache = cache;
  }

  /** The enabled feature definition for key, or undefined. */
  async feature(key) {
    const config = await this.config(key);
    return config ? config.feature : undefined;
  }

  /**
   * Weighted random choice among enabled provider_configs of the feature whose provider has a
   * URL, leaving out the providers in `exclude` and those `usable` refuses.
   */
  async pickProvider(featureKey, { exclude = [], usable = () => true, random = Math.random } = {}) {
    const config = await this.config(featureKey);
    const candidates = (config ? config.routes : []).filter(
      (c) => this.providerUrls.has(c.provider) && !exclude.includes(c.provider) && usable(c.provider),
    );
    const total = candidates.reduce((sum, c) => sum + c.weight, 0);
    if (total <= 0) return null;
    let ticket = random() * total;
    for (const candidate of candidates) {
      ticket -= candidate.weight;
      if (ticket < 0) return candidate.provider;
    }
    return candidates[candidates.length - 1].provider;
  }

  /** {feature, routes, version} of an enabled feature, or null. */
  async config(key) {
    return this.cache ? this.cache.get(key) : this.load(key);
  }

  /** The origin read of one feature: its definition and its enabled provider routes. */
  async load(key) {
    const [feature, routes] = await Promise.all([
      this.knex('feature_definitions').where({ feature_key: key, enabled: true }).first('feature_key', 'name', 'cost'),
      this.knex('provider_configs')
        .where({ feature_key: key, enabled: true })
        .where('weight', '>', 0)
        .orderBy('id')
        .select('provider', 'weight'),
    ]);
    if (!feature) return null;
    return {
      feature: { key: feature.feature_key, name: feature.name, cost: feature.cost },
      routes: routes.map((r) => ({ provider: r.provider, weight: r.weight })),
    };
  }

  /** Changes a feature's definition, then invalidates its cached config in every process. */
  async updateFeature(key, changes) {
    const updated = await this.knex('feature_definitions').where('feature_key', key).update(changes);
    if (updated === 0) return null;
    const invalidated = this.cache ? await this.cache.invalidate([key]) : [];
    const row = await this.knex('feature_definitions').where('feature_key', key).first('feature_key', 'name', 'cost', 'enabled');
    return { feature: key, name: row.name, cost: row.cost, enabled: Boolean(row.enabled), invalidated };
  }
}

module.exports = { Catalog };
