'use strict';

const { ApiError } = require('./errors');

/** Small validators for JSON bodies and query strings; each throws ApiError 400 naming the field. */

function requireObject(body, { allowed } = {}) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw ApiError.invalid('body', 'expected a JSON object (Content-Type: application/json)');
  }
  if (allowed) {
    const unknown = Object.keys(body).find((key) => !allowed.includes(key));
    if (unknown !== undefined) throw ApiError.invalid(unknown, `unknown field; allowed: ${allowed.join(', ')}`);
  }
  return body;
}

function number(value, field, { min, max, integer = false, required = true } = {}) {
  if (value === undefined) {
    if (required) throw ApiError.invalid(field, 'is required');
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw ApiError.invalid(field, 'must be a number');
  if (integer && !Number.isInteger(value)) throw ApiError.invalid(field, 'must be an integer');
  if (value < min || value > max) throw ApiError.invalid(field, `must be between ${min} and ${max}`);
  return value;
}

function oneOf(value, field, choices, { required = true } = {}) {
  if (value === undefined) {
    if (required) throw ApiError.invalid(field, 'is required');
    return undefined;
  }
  if (typeof value !== 'string' || !choices.includes(value)) {
    throw ApiError.invalid(field, `must be one of ${choices.join(', ')}`);
  }
  return value;
}

/** A positive integer id from a path or query string ("42"). */
function idParam(text, field, { required = true } = {}) {
  if (text === undefined || text === '') {
    if (required) throw ApiError.invalid(field, 'is required');
    return undefined;
  }
  if (typeof text !== 'string' || !/^[1-9]\d*$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw ApiError.invalid(field, 'must be a positive integer');
  }
  return Number(text);
}

module.exports = { requireObject, number, oneOf, idParam };
