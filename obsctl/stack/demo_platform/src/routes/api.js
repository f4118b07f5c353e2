'use strict';

const express = require('express');
const { ApiError } = require('../errors');
const { FEATURE_KEYS, TASK_STATUS } = require('../features');
const { tagRoute } = require('../metrics');
const { requireObject, oneOf, idParam, number } = require('../validate');

const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;

/** Public API under /api; every route goes through the injected faults and the rate limits. */
function apiRouter(ctx) {
  const router = express.Router();
  const pre = [tagRoute, ctx.faults.middleware, express.json({ limit: '64kb' }), ctx.rateLimits.api];

  router.post('/tasks', ...pre, ctx.rateLimits.taskCreate, async (req, res) => {
    const body = requireObject(req.body);
    const userId = number(body.user_id, 'user_id', { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true });
    const feature = oneOf(body.feature, 'feature', FEATURE_KEYS);
    res.status(201).json(await ctx.tasks.create(userId, feature));
  });

  router.get('/tasks/:id', ...pre, async (req, res) => {
    const task = await ctx.repo.getTask(idParam(req.params.id, 'id'));
    if (!task) throw ApiError.notFound();
    res.json(task);
  });

  router.get('/tasks', ...pre, async (req, res) => {
    const userId = idParam(req.query.user_id, 'user_id');
    const limit = req.query.limit === undefined ? DEFAULT_PAGE : idParam(req.query.limit, 'limit');
    if (limit > MAX_PAGE) throw ApiError.invalid('limit', `must be at most ${MAX_PAGE}`);
    const status = oneOf(req.query.status, 'status', Object.values(TASK_STATUS), { required: false });
    const after = req.query.cursor === undefined ? undefined : decodeCursor(req.query.cursor);

    const rows = await ctx.repo.listTasks({ userId, status, limit: limit + 1, after });
    const items = rows.slice(0, limit);
    const more = rows.length > limit;
    res.json({ items, next_cursor: more ? encodeCursor(items[items.length - 1]) : null });
  });

  router.get('/users/:id/quota', ...pre, async (req, res) => {
    const quota = await ctx.repo.getQuota(idParam(req.params.id, 'id'));
    if (!quota) throw ApiError.notFound('user_not_found');
    res.json(quota);
  });

  return router;
}

/** Opaque page cursor: base64url of {"c": created_at ISO, "i": id} of the last item shown. */
function encodeCursor(task) {
  return Buffer.from(JSON.stringify({ c: new Date(task.created_at).toISOString(), i: task.id })).toString('base64url');
}

function decodeCursor(text) {
  try {
    const { c, i } = JSON.parse(Buffer.from(String(text), 'base64url').toString('utf8'));
    const createdAt = new Date(c);
    if (typeof c !== 'string' || Number.isNaN(createdAt.getTime()) || !Number.isSafeInteger(i) || i < 1) throw new Error();
    return { createdAt, id: i };
  } catch {
    throw ApiError.invalid('cursor', 'is not a cursor returned by this API');
  }
}

module.exports = { apiRouter, encodeCursor, decodeCursor };
