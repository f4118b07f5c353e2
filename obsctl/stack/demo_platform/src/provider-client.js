'use strict';

const { sleep } = require('./util');

const CALL_TIMEOUT_MS = 2000;
const POLL_INTERVAL_MS = 200;
const GIVE_UP_AFTER_MS = 60000;

/** A provider call that failed; `code` becomes tasks.error_code. */
class ProviderError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ProviderError';
    this.code = code;
  }
}

/**
 * JSON over HTTP with a per-call timeout, sending `apiKey` as `Authorization: Bearer`.
 * Maps transport failures to ProviderError: timeout -> provider_timeout,
 * refused/reset -> provider_unavailable, non-2xx -> provider_error,
 * unusable 2xx body -> provider_bad_response (see expectOk). Messages never hold the key.
 */
async function requestJson(url, { method = 'GET', body, apiKey, timeoutMs = CALL_TIMEOUT_MS } = {}) {
  const timeout = AbortSignal.timeout(timeoutMs);
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  let response;
  let text;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: timeout,
    });
    text = await response.text();
  } catch (err) {
    if (timeout.aborted) throw new ProviderError('provider_timeout', `${method} ${url} timed out after ${timeoutMs} ms`);
    const cause = err.cause?.code || err.cause?.message || err.message;
    throw new ProviderError('provider_unavailable', `${method} ${url} failed: ${cause}`);
  }
  let json = null;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    // left null: callers decide whether a non-JSON body matters for this status
  }
  return { status: response.status, json };
}

function expectOk({ status, json }, what) {
  if (status < 200 || status > 299) throw new ProviderError('provider_error', `${what} answered HTTP ${status}`);
  if (json === null || typeof json !== 'object') throw new ProviderError('provider_bad_response', `${what} answered a non-JSON body`);
  return json;
}

/** POST /v1/tasks; returns the provider's task id. */
async function submitTask(baseUrl, { feature, taskId, apiKey }) {
  const json = expectOk(
    await requestJson(`${baseUrl}/v1/tasks`, {
      method: 'POST',
      body: { feature, input_url: `cos://demo/${taskId}.png`, client_task_id: String(taskId) },
      apiKey,
    }),
    'POST /v1/tasks',
  );
  if (typeof json.task_id !== 'string' || !json.task_id || json.task_id.length > 64) {
    throw new ProviderError('provider_bad_response', 'POST /v1/tasks answered without a usable task_id');
  }
  return json.task_id;
}

/** Polls GET /v1/tasks/{id} until succeeded or failed; returns {status, error}. */
async function waitForResult(baseUrl, vendorTaskId, { apiKey, pollMs = POLL_INTERVAL_MS, giveUpMs = GIVE_UP_AFTER_MS } = {}) {
  const deadline = Date.now() + giveUpMs;
  const url = `${baseUrl}/v1/tasks/${encodeURIComponent(vendorTaskId)}`;
  for (;;) {
    const json = expectOk(await requestJson(url, { apiKey }), 'GET /v1/tasks/{id}');
    if (json.status === 'succeeded' || json.status === 'failed') {
      return { status: json.status, error: typeof json.error === 'string' ? json.error : null };
    }
    if (json.status !== 'processing') {
      throw new ProviderError('provider_bad_response', `GET /v1/tasks/{id} answered unknown status '${json.status}'`);
    }
    if (Date.now() + pollMs > deadline) {
      throw new ProviderError('provider_timeout', `task ${vendorTaskId} still processing after ${giveUpMs} ms`);
    }
    await sleep(pollMs);
  }
}

/** GET or PUT the provider's /_control; returns {status, json} untouched (json null if not JSON). */
function control(baseUrl, body, { timeoutMs = CALL_TIMEOUT_MS } = {}) {
  return requestJson(`${baseUrl}/_control`, { method: body === undefined ? 'GET' : 'PUT', body, timeoutMs });
}

module.exports = { ProviderError, submitTask, waitForResult, control, CALL_TIMEOUT_MS };
