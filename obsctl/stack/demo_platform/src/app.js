'use strict';

const express = require('express');
const { ApiError } = require('./errors');
const { apiRouter } = require('./routes/api');
const { adminRouter } = require('./routes/admin');
const { withTimeout } = require('./util');
const { log, describeError } = require('./log');

const HEALTH_CHECK_TIMEOUT_MS = 1000;

/** The express app: /healthz, /metrics, the instrumented /api and /admin routers. */
function createApp(ctx) {
  const app = express();
  app.disable('x-powered-by');
  // Behind a reverse proxy on the same host: req.ip is the client X-Forwarded-For names.
  app.set('trust proxy', 'loopback');

  app.get('/healthz', async (req, res) => {
    if (!ctx.ready) return res.status(503).json({ status: 'starting' });
    const [db, redis] = await Promise.all([
      answers(() => ctx.knex.raw('SELECT 1')),
      answers(() => ctx.redis.ping()),
    ]);
    if (db && redis) return res.json({ status: 'ok' });
    return res.status(503).json({ status: 'degraded', db, redis });
  });

  app.get('/metrics', async (req, res) => {
    res.set('Content-Type', ctx.metrics.registry.contentType);
    res.send(await ctx.metrics.registry.metrics());
  });

  app.use(['/api', '/admin'], ctx.metrics.httpMiddleware, (req, res, next) => {
    if (!ctx.ready) return res.status(503).json({ error: 'starting' });
    return next();
  });
  app.use('/api', apiRouter(ctx));
  app.use('/admin', adminRouter(ctx));
  app.use((req, res) => res.status(404).json({ error: 'not_found' }));
  app.use(errorHandler);
  return app;
}

async function answers(check) {
  try {
    await withTimeout(check(), HEALTH_CHECK_TIMEOUT_MS, 'health check timed out');
    return true;
  } catch {
    return false;
  }
}

// Express recognises an error handler by its four parameters, so `next` stays.
function errorHandler(err, req, res, next) {
  if (res.headersSent) return req.socket.destroy();
  if (err instanceof ApiError) return res.status(err.status).json(err.body);
  if (err.type === 'entity.parse.failed') {
    return res.status(400).json({ error: 'invalid_request', field: 'body', message: 'body: not valid JSON' });
  }
  if (err.type === 'entity.too.large') return res.status(413).json({ error: 'payload_too_large' });
  if (err.status >= 400 && err.status < 500) return res.status(err.status).json({ error: 'invalid_request', message: err.message });
  log.throttled(`http-500-${res.locals.route}`, 5000, 'error', 'request failed', {
    route: res.locals.route || 'unmatched',
    error: describeError(err),
  });
  return res.status(500).json({ error: 'internal' });
}

module.exports = { createApp };
