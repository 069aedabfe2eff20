'use strict';

// Waiting for something to become true, with a deadline: the one way tests,
// harnesses and scripts wait (never a bare sleep used as synchronisation).

const assert = require('node:assert/strict');

/** A promise that resolves after `ms`: a poll interval, never synchronisation. */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeLast(last) {
  if (last instanceof Error) return last.message;
  if (last === undefined) return 'undefined';
  return JSON.stringify(last);
}

/**
 * Calls `check()` (may be async) until it returns a truthy value, and
 * resolves that value. After `timeoutMs` it rejects with
 * "timed out after <ms> ms waiting for <what>; last: <last result>".
 *
 * An error thrown by `check` ends the wait at once, unless `retryErrors` is
 * set: then it counts as "not yet" (e.g. a server still starting refuses
 * connections), except an AssertionError, which always ends the wait.
 *
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {object} [opts]
 * @param {number} [opts.timeoutMs] default 10000
 * @param {number} [opts.intervalMs] pause between attempts, default 25
 * @param {string | (() => string)} [opts.what] what is awaited (a function is
 *   called only on timeout, to describe the state at that moment)
 * @param {boolean} [opts.retryErrors] default false
 * @returns {Promise<T>}
 */
async function pollUntil(check, { timeoutMs = 10_000, intervalMs = 25, what = 'condition', retryErrors = false } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      if (!retryErrors || err instanceof assert.AssertionError) throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      const description = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; last: ${describeLast(last)}`);
    }
    await delay(intervalMs);
  }
}

module.exports = { delay, pollUntil };
