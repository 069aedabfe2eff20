'use strict';

// Things a test hands to the code under test or uses beside it: fail-fast
// ioredis and node-redis clients (for raw checks and for the peer stores) and
// a logger that keeps its lines.

const Redis = require('ioredis');

/**
 * An ioredis client that fails fast: no reconnects, no retries of queued
 * commands, lazy connect (call `connect()` or just send a command). Its
 * 'error' events are kept in `client.errors` (ioredis rejects a failed
 * connect() with a bare "Connection is closed." and reports the cause only as
 * an event). The caller disconnects it.
 * @param {string} url
 * @param {import('ioredis').RedisOptions} [options] on top of the fail-fast ones
 * @returns {import('ioredis').Redis & { errors: Error[] }}
 */
function ioredisClient(url, options = {}) {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000,
    // disconnect() otherwise keeps a 2 s timer alive for streams that never emit 'close'.
    disconnectTimeout: 100,
    ...options,
  });
  client.errors = [];
  client.on('error', (err) => client.errors.push(err));
  return client;
}

/**
 * A logger for the store's `logger` option that keeps every line:
 * `lines` is [{ level, line }] in order; `linesAt(level)` the lines of one level.
 */
function captureLogger() {
  const lines = [];
  const push = (level) => (line) => lines.push({ level, line: String(line), at: Date.now() });
  return {
    lines,
    linesAt: (level) => lines.filter((entry) => entry.level === level).map((entry) => entry.line),
    logger: { info: push('info'), warn: push('warn'), error: push('error') },
  };
}

/**
 * A connected node-redis client that fails fast (no reconnects); the caller
 * calls `destroy()`. Its 'error' events are kept in `client.errors`.
 * @param {string} url
 * @returns {Promise<import('redis').RedisClientType & { errors: Error[] }>}
 */
async function nodeRedisClient(url) {
  const { createClient } = require('redis');
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.errors = [];
  client.on('error', (err) => client.errors.push(err));
  await client.connect();
  return client;
}

module.exports = { ioredisClient, nodeRedisClient, captureLogger };
