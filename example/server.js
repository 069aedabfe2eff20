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
// Ctrl-C (SIGINT) or SIGTERM: stops the HTTP server, closes the store, stops
// the redis-server it started, exits 0.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// In your own app: require('redis-conversation-store').
const { createConversationStore, RedisStore, MemoryStore } = require('..');
const { createApp } = require('./app');

const HOST = '127.0.0.1';
/** Somebody's real Redis usually lives here: never start a throwaway one on it. */
const DEFAULT_REDIS_PORT = 6379;
const REDIS_READY_TIMEOUT_MS = 5_000;
const REDIS_STOP_GRACE_MS = 3_000;
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

// ---------------------------------------------------------------------------
// The throwaway redis-server
// ---------------------------------------------------------------------------

/** A loopback port that was free a moment ago. */
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, HOST, () => {
        const chosen = srv.address().port;
        srv.close(() => resolve(chosen));
      });
    });
    if (port !== DEFAULT_REDIS_PORT) return port;
  }
}

/**
 * Asks the server on `port` for its process id (INFO server). Resolves the
 * pid, or null on any failure. Matching the pid proves that the server that
 * answers is the child we started, not something else on that port.
 */
function redisPidOnPort(port, timeoutMs) {
  return new Promise((resolve) => {
    let buffer = '';
    let settled = false;
    const sock = net.connect({ host: HOST, port });
    const timer = setTimeout(() => finish(null), timeoutMs);
    function finish(value) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(value);
    }
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write('*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n'));
    sock.on('data', (chunk) => {
      buffer += chunk;
      if (buffer.startsWith('-')) return finish(null);
      const match = /process_id:(\d+)\r\n/.exec(buffer);
      if (match) finish(Number(match[1]));
    });
    sock.on('error', () => finish(null));
    sock.on('close', () => finish(null));
  });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every redis-server child this process spawned → its exit promise (shutdown stops them all). */
const launched = new Map();
/** Temporary directories to remove at exit. */
const tmpDirs = new Set();

/**
 * One attempt at starting redis-server on `port`. Resolves
 * `{ ok: true, child, exited }`, or `{ ok: false, missing?, portBusy?, reason }`.
 */
async function launchRedis(port, dir) {
  let output = '';
  let spawnError = null;
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Keep the last few KB of its log for error messages; always drain the
  // pipes so the server never blocks on a full one.
  const keep = (chunk) => {
    output = (output + chunk).slice(-8192);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  const exited = new Promise((resolve) => {
    child.once('exit', resolve);
    child.once('error', (err) => {
      spawnError = err; // e.g. ENOENT: no 'exit' follows
      resolve();
    });
  });
  if (child.pid !== undefined) launched.set(child, exited);
  let gone = false;
  exited.then(() => {
    gone = true;
  });

  const deadline = Date.now() + REDIS_READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError) {
      return spawnError.code === 'ENOENT'
        ? { ok: false, missing: true, reason: 'redis-server is not installed (not found on PATH)' }
        : { ok: false, reason: `could not start redis-server: ${spawnError.message}` };
    }
    if (gone) {
      const portBusy = /Address already in use/i.test(output);
      return { ok: false, portBusy, reason: `redis-server exited during startup:\n${output.trim()}` };
    }
    if (Date.now() >= deadline) {
      await stopChild(child, exited);
      return { ok: false, reason: `redis-server did not answer within ${REDIS_READY_TIMEOUT_MS} ms:\n${output.trim()}` };
    }
    const pid = await redisPidOnPort(port, 500);
    if (pid === child.pid) return { ok: true, child, exited };
    if (pid !== null) {
      // Someone else answers on the port we picked: try another one.
      await stopChild(child, exited);
      return { ok: false, portBusy: true, reason: `port ${port} is taken by pid ${pid}` };
    }
    await Promise.race([delay(50), exited]);
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the child has exited (and been reaped). */
async function stopChild(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const signal = (name) => {
    try {
      process.kill(child.pid, name);
    } catch (err) {
      if (err.code !== 'ESRCH') throw err;
    }
  };
  signal('SIGTERM');
  let timer;
  const graceOver = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), REDIS_STOP_GRACE_MS);
  });
  const done = await Promise.race([exited.then(() => true), graceOver]);
  clearTimeout(timer);
  if (!done) {
    signal('SIGKILL');
    await exited;
  }
}

function removeTmpDirs() {
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
  tmpDirs.clear();
}

/** Starts a throwaway redis-server on a free loopback port, or explains why it could not. */
async function startLocalRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcs-example-redis-'));
  tmpDirs.add(dir);
  let result;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    result = await launchRedis(port, dir);
    if (result.ok) {
      return { ...result, port, url: `redis://${HOST}:${port}`, pid: result.child.pid };
    }
    if (!result.portBusy) break; // a free port was grabbed in between: only then try again
  }
  removeTmpDirs();
  return result;
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/** What shutdown has to undo; filled in as startup goes. */
const state = { server: null, store: null, localRedis: null };
let shuttingDown = false;

// A last resort if the process ends some other way (an uncaught error, a
// second Ctrl-C): never leave a redis-server we started running.
process.on('exit', () => {
  for (const child of launched.keys()) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  removeTmpDirs();
});

async function shutdown(signal) {
  if (shuttingDown) {
    say(`${signal} again: exiting now`);
    process.exit(1); // the 'exit' hook still kills the redis-server
  }
  shuttingDown = true;
  say(`${signal}: shutting down`);
  try {
    const { server, store, localRedis } = state;
    if (server && server.listening) {
      await new Promise((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), HTTP_CLOSE_GRACE_MS);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    }
    if (store) await store.close();
    // The demo's redis-server, and any still starting when the signal came.
    await Promise.all([...launched].map(([child, exited]) => stopChild(child, exited)));
    removeTmpDirs();
    if (localRedis) say(`stopped the local redis-server (pid ${localRedis.pid})`);
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
      state.localRedis = started;
      say('REDIS_URL is not set: started a local throwaway redis-server for this demo');
      say(`  local redis-server pid ${started.pid} on ${started.url} (no persistence; stopped when this server exits)`);
      say('  this is for the demo only: production needs TLS, REDIS_URL=rediss://... (plain redis:// is refused unless allowed)');
      state.store = new RedisStore({ url: started.url, allowPlaintext: true });
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
    await Promise.all([...launched].map(([child, exited]) => stopChild(child, exited)));
    process.exit(1);
  }
  if (shuttingDown) return;

  const base = `http://${HOST}:${server.address().port}`;
  say(`listening on ${base} (store: ${state.store.constructor.name}; health: ${base}/health)`);
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
