#!/usr/bin/env node
'use strict';
// The demo server (`npm run example`): the example chat-server app on a real
// store.
//
//   REDIS_URL set      → createConversationStore(process.env), as in production
//                        (REDIS_URL=rediss://..., REDIS_TTL, REDIS_TIMEOUT, ...)
//   REDIS_URL not set  → a throwaway redis-server on a free loopback port, if
//                        redis-server is installed (stopped again on exit);
//                        otherwise an in-process MemoryStore.
//
// PORT (default 3000) picks the HTTP port; it listens on 127.0.0.1 only.
// Ctrl-C (SIGINT) or SIGTERM, as an orchestrator stops a pod: stops taking
// HTTP connections and waits for the requests under way (each bounded by the
// store's timeouts), then closes the store (which waits for its own calls in
// flight), stops the redis-server it started, exits 0.

const http = require('node:http');

// In your own app: require('redis-conversation-store').
const { createConversationStore, RedisStore, MemoryStore } = require('..');
// The repo's test-support starts the throwaway redis-server (127.0.0.1 only,
// never 6379, no persistence, killed by pid when this process exits).
const { startRedis } = require('../test-support');
const { createApp } = require('./app');

const HOST = '127.0.0.1';
const HTTP_CLOSE_GRACE_MS = 2_000;
const INSTALL_HINT = 'sudo apt-get install -y redis-server   (macOS: brew install redis)';

function say(line = '') {
  console.log(line === '' ? '' : `[example] ${line}`);
}

function httpPort() {
  const raw = process.env.PORT;
  if (raw === undefined || raw === '') return 3000;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`[example] PORT must be a whole number from 0 to 65535, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return port;
}

/**
 * Starts a throwaway redis-server on a free loopback port. Resolves
 * `{ ok: true, server }` (a handle with url, pid and stop()), or
 * `{ ok: false, reason }` saying why it could not.
 */
async function startLocalRedis() {
  try {
    return { ok: true, server: await startRedis() };
  } catch (err) {
    const reason = err.code === 'ENOENT' ? 'redis-server is not installed (not found on PATH)' : err.message;
    return { ok: false, reason };
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/** What shutdown has to undo; filled in as startup goes. */
const state = { server: null, store: null, localRedis: null };
let shuttingDown = false;

async function shutdown(signal) {
  if (shuttingDown) {
    say(`${signal} again: exiting now`);
    process.exit(1); // test-support's 'exit' hook still kills the redis-server
  }
  shuttingDown = true;
  say(`${signal}: shutting down`);
  try {
    const { server, store, localRedis } = state;
    if (server && server.listening) {
      say('stopped accepting HTTP connections; waiting for the requests under way');
      await new Promise((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), HTTP_CLOSE_GRACE_MS);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    }
    if (store) {
      await store.close();
      say(`closed the store (${JSON.stringify(store.stats().operations.set)} sets)`);
    }
    // One still starting when the signal came is killed by test-support's 'exit' hook.
    if (localRedis) {
      const { pid } = localRedis;
      await localRedis.stop();
      say(`stopped the local redis-server (pid ${pid})`);
    }
  } catch (err) {
    console.error('[example] error during shutdown:', err);
    process.exit(1);
  }
  process.exit(0);
}

async function main() {
  // Installed first, so a signal during startup still cleans up.
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  const port = httpPort();

  if (process.env.REDIS_URL) {
    try {
      state.store = createConversationStore(process.env);
    } catch (err) {
      console.error(`[example] the store configuration was refused: ${err.message}`);
      process.exit(1);
    }
  } else {
    const started = await startLocalRedis();
    if (shuttingDown) return;
    if (started.ok) {
      const redis = started.server;
      state.localRedis = redis;
      say('REDIS_URL is not set: started a local throwaway redis-server for this demo');
      say(`  local redis-server pid ${redis.pid} on ${redis.url} (no persistence; stopped when this server exits)`);
      say('  this is for the demo only: production needs TLS, REDIS_URL=rediss://... (plain redis:// is refused unless allowed)');
      state.store = new RedisStore({ url: redis.url, allowPlaintext: true });
    } else {
      say(`REDIS_URL is not set and no local redis-server could be started: ${started.reason}`);
      say(`  to demo against a real Redis, install redis-server: ${INSTALL_HINT}`);
      say('  (or point REDIS_URL at a Redis you have: REDIS_URL=rediss://host:6380)');
      say('  falling back to MemoryStore: conversations live in this process only');
      state.store = new MemoryStore();
    }
  }

  const server = http.createServer(createApp(state.store));
  state.server = server;
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const hint = err.code === 'EADDRINUSE' ? ' (set PORT to another port)' : '';
    console.error(`[example] cannot listen on ${HOST}:${port}: ${err.message}${hint}`);
    await state.store.close();
    if (state.localRedis) await state.localRedis.stop();
    process.exit(1);
  }
  if (shuttingDown) return;

  const base = `http://${HOST}:${server.address().port}`;
  say(`listening on ${base} (store: ${state.store.constructor.name}; health: ${base}/health, counters: ${base}/metrics)`);
  say('try:');
  console.log(
    `  curl -i -X PUT ${base}/conversations/demo-1 -H 'Content-Type: application/json' ` +
      `-d '{"userId":"alice","tenantId":"acme","status":"active","history":[]}'`,
  );
  console.log(`  curl -s ${base}/conversations/demo-1`);
  console.log(`  curl -s '${base}/users/alice/conversations?limit=10&fields=externalId,updatedAt'`);
}

main().catch((err) => {
  console.error('[example] failed to start:', err);
  process.exit(1);
});
