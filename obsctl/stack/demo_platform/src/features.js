'use strict';

/** The platform's image features; each has a BullMQ queue of the same name. */
const FEATURES = Object.freeze([
  { key: 'matting', name: '抠图', cost: 1 },
  { key: 'outfit', name: '换装', cost: 1 },
  { key: 'faceswap', name: '换脸', cost: 1 },
  { key: 'outpaint', name: '扩图', cost: 1 },
]);

const FEATURE_KEYS = Object.freeze(FEATURES.map((f) => f.key));

const TASK_STATUS = Object.freeze({
  PENDING: 'pending',
  QUEUED: 'queued',
  PROCESSING: 'processing',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
});

const TERMINAL_STATUSES = Object.freeze([TASK_STATUS.SUCCEEDED, TASK_STATUS.FAILED]);

module.exports = { FEATURES, FEATURE_KEYS, TASK_STATUS, TERMINAL_STATUSES };
