'use strict';

/** One JSON object per line on stdout: {"level","msg","ts",...fields}. */

function write(level, msg, fields) {
  const line = { level, msg, ts: new Date().toISOString(), ...fields };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const lastLogged = new Map();

const log = {
  info: (msg, fields = {}) => write('info', msg, fields),
  warn: (msg, fields = {}) => write('warn', msg, fields),
  error: (msg, fields = {}) => write('error', msg, fields),
  /** Logs at most once per intervalMs for the given key, so an outage does not flood stdout. */
  throttled(key, intervalMs, level, msg, fields = {}) {
    const now = Date.now();
    const entry = lastLogged.get(key);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed += 1;
      return;
    }
    const suppressed = entry ? entry.suppressed : 0;
    lastLogged.set(key, { at: now, suppressed: 0 });
    write(level, msg, suppressed ? { ...fields, suppressed } : fields);
  },
};

/** A short, secret-free description of an error for log lines. */
function describeError(err) {
  if (!err) return 'unknown error';
  return err.code ? `${err.code}: ${err.message}` : err.message || String(err);
}

module.exports = { log, describeError };
