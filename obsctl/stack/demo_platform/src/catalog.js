'use strict';

const CACHE_TTL_MS = 5000;

/**
 * feature_definitions and provider_configs, cached for a few seconds like a real
 * service would, so an edit in the database takes effect without a restart.
 */
class Catalog {
  constructor(knex, providerUrls, { ttlMs = CACHE_TTL_MS } = {}) {
    this.knex = knex;
    this.providerUrls = providerUrls;
    this.ttlMs = ttlMs;
    this.snapshot = null;
    this.loadedAt = 0;
    this.loading = null;
  }

  /** The enabled feature definition for key, or undefined. */
  async feature(key) {
    const { features } = await this.current();
    return features.get(key);
  }

  /**
   * Weighted random choice among enabled provider_configs of the feature whose provider has a
   * URL, leaving out the providers in `exclude` and those `usable` refuses.
   */
  async pickProvider(featureKey, { exclude = [], usable = () => true, random = Math.random } = {}) {
    const { routes } = await this.current();
    const candidates = (routes.get(featureKey) || []).filter((c) => !exclude.includes(c.provider) && usable(c.provider));
    const total = candidates.reduce((sum, c) => sum + c.weight, 0);
    if (total <= 0) return null;
    let ticket = random() * total;
    for (const candidate of candidates) {
      ticket -= candidate.weight;
      if (ticket < 0) return candidate.provider;
    }
    return candidates[candidates.length - 1].provider;
  }

  async current() {
    if (this.snapshot && Date.now() - this.loadedAt < this.ttlMs) return this.snapshot;
    if (!this.loading) {
      this.loading = this.load()
        .then((snapshot) => {
          this.snapshot = snapshot;
          this.loadedAt = Date.now();
          return snapshot;
        })
        .finally(() => {
          this.loading = null;
        });
    }
    return this.loading;
  }

  async load() {
    const [featureRows, providerRows] = await Promise.all([
      this.knex('feature_definitions').where('enabled', true).select('feature_key', 'name', 'cost'),
      this.knex('provider_configs').where('enabled', true).where('weight', '>', 0).select('provider', 'feature_key', 'weight'),
    ]);
    const features = new Map(featureRows.map((r) => [r.feature_key, { key: r.feature_key, name: r.name, cost: r.cost }]));
    const routes = new Map();
    for (const row of providerRows) {
      if (!this.providerUrls.has(row.provider)) continue;
      if (!routes.has(row.feature_key)) routes.set(row.feature_key, []);
      routes.get(row.feature_key).push({ provider: row.provider, weight: row.weight });
    }
    return { features, routes };
  }
}

module.exports = { Catalog };
