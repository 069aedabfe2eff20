'use strict';

// The example app (example/app.js) and demo server (example/server.js),
// driven over real HTTP: the chat server's routes, its 503 mapping while
// Redis is down, /health, and recovery when Redis comes back, with no restart
// of the app or the store in between.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');

const { RedisStore, MemoryStore } = require('..');
const native = require('../loader.js').loadBinding();
const { createApp } = require('../example/app');
const { startRedis, freePort, pollUntil, delay } = require('../test-support');

const SERVER_JS = path.join(__dirname, '..', 'example', 'server.js');
const COMMAND_TIMEOUT_MS = 500;

/** Listens on an ephemeral loopback port; resolves { server, base }. */
function listen(app) {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1', (err) => {
      if (err) return reject(err);
      resolve({ server, base: `http://127.0.0.1:${server.address().port}` });
    });
  });
}

function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** fetch + JSON body (when there is one). */
async function request(base, method, urlPath, body) {
  const init = { method, signal: AbortSignal.timeout(5000) };
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' };
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(base + urlPath, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

function health(base) {
  return request(base, 'GET', '/health');
}

/** A PUT/POST body: the app fills in externalId, createdAt and updatedAt itself. */
function requestBody(userId, extra = {}) {
  return { userId, tenantId: 'acme', status: 'active', history: [{ role: 'user', content: 'hi' }], ...extra };
}

/** The CRUD roundtrip both stores must pass through the app. */
async function roundtrip(base, userId) {
  const put = await request(base, 'PUT', '/conversations/c-1', requestBody(userId, { sdkConversationRef: { live: true } }));
  assert.equal(put.status, 204);

  const got = await request(base, 'GET', '/conversations/c-1');
  assert.equal(got.status, 200);
  assert.equal(got.body.userId, userId);
  assert.equal(got.body.externalId, 'c-1');
  assert.deepEqual(got.body.history, [{ role: 'user', content: 'hi' }]);
  assert.ok(!Number.isNaN(Date.parse(got.body.createdAt)), 'createdAt is set');
  assert.ok(!Number.isNaN(Date.parse(got.body.updatedAt)), 'updatedAt is set');
  assert.equal(got.body.sdkConversationRef, undefined, 'the live SDK object is never persisted');

  // Updating keeps the createdAt the client sends back and moves updatedAt.
  await delay(5);
  const put2 = await request(base, 'PUT', '/conversations/c-1', { ...got.body, status: 'closed' });
  assert.equal(put2.status, 204);
  const got2 = await request(base, 'GET', '/conversations/c-1');
  assert.equal(got2.body.status, 'closed');
  assert.equal(got2.body.createdAt, got.body.createdAt);
  assert.ok(Date.parse(got2.body.updatedAt) > Date.parse(got.body.updatedAt));

  await delay(5);
  const created = await request(base, 'POST', '/conversations', requestBody(userId));
  assert.equal(created.status, 201);
  assert.match(created.body.externalId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const newId = created.body.externalId;
  assert.equal((await request(base, 'GET', `/conversations/${newId}`)).body.userId, userId);

  const list = await request(base, 'GET', `/users/${userId}/conversations`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((c) => c.externalId), [newId, 'c-1'], 'newest first');

  const page = await request(base, 'GET', `/users/${userId}/conversations?limit=1&offset=1&fields=externalId,status`);
  assert.equal(page.status, 200);
  assert.deepEqual(page.body, [{ externalId: 'c-1', status: 'closed' }]);

  const other = await request(base, 'GET', `/users/${userId}-other/conversations`);
  assert.deepEqual(other.body, []);

  const badLimit = await request(base, 'GET', `/users/${userId}/conversations?limit=abc`);
  assert.equal(badLimit.status, 400);
  assert.equal(badLimit.body.code, 'STORE_INVALID_ARGUMENT');

  assert.equal((await request(base, 'DELETE', '/conversations/c-1')).status, 204);
  assert.equal((await request(base, 'DELETE', '/conversations/c-1')).status, 204, 'delete is idempotent');
  const gone = await request(base, 'GET', '/conversations/c-1');
  assert.equal(gone.status, 404);
  const after = await request(base, 'GET', `/users/${userId}/conversations`);
  assert.deepEqual(after.body.map((c) => c.externalId), [newId]);
}

async function badInput(base) {
  const noUser = await request(base, 'PUT', '/conversations/bad-1', { tenantId: 'acme', history: [] });
  assert.equal(noUser.status, 400);
  assert.equal(noUser.body.code, 'STORE_INVALID_USER_ID');
  assert.match(noUser.body.error, /userId/);
  assert.equal((await request(base, 'GET', '/conversations/bad-1')).status, 404, 'nothing was written');

  const notJson = await request(base, 'PUT', '/conversations/bad-2', '{"userId":');
  assert.equal(notJson.status, 400);
  const notObject = await request(base, 'PUT', '/conversations/bad-3', [1, 2]);
  assert.equal(notObject.status, 400);
}

describe('example app on a RedisStore', () => {
  let srv;
  let store;
  let server;
  let base;

  before(async () => {
    srv = await startRedis();
    store = new RedisStore({
      url: srv.url,
      allowPlaintext: true,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      connectTimeoutMs: 500,
      reconnectMaxDelayMs: 200,
      logger: null,
    });
    ({ server, base } = await listen(createApp(store)));
  });

  after(async () => {
    if (server) await closeServer(server);
    if (store) await store.close();
    if (srv) await srv.stop();
  });

  it('reports connected on /health', async () => {
    const res = await pollUntil(async () => {
      const h = await health(base);
      return h.status === 200 && h;
    }, { timeoutMs: 5000, what: '/health to say connected', retryErrors: true });
    assert.deepEqual(res.body, { status: 'ok', redis: 'connected', store: 'RedisStore' });
  });

  it('creates, reads, lists and deletes conversations', async () => {
    await roundtrip(base, 'alice');
  });

  it('answers 400 for bad input, never 503', async () => {
    await badInput(base);
  });

  it('appends messages sent at once: every acknowledged one lands, none twice; 404 and 400 as expected', async () => {
    assert.equal((await request(base, 'PUT', '/conversations/c-msg', requestBody('alice', { history: [] }))).status, 204);
    const count = 30;
    const answers = await Promise.all(
      Array.from({ length: count }, (_, n) => request(base, 'POST', '/conversations/c-msg/messages', { role: 'user', content: `m${n}` })),
    );
    // update retries 5 times by default, so under 30 appends at once one may
    // keep losing and answer 409 (it wrote nothing then). Each of its six
    // conflicts was another append landing, so if any answered 409, at least
    // six answered 201.
    const statuses = answers.map((a) => a.status);
    assert.ok(statuses.every((status) => status === 201 || status === 409), `statuses: ${statuses}`);
    const landed = Array.from({ length: count }, (_, n) => `m${n}`).filter((_, n) => statuses[n] === 201);
    assert.ok(landed.length === count || landed.length >= 6, `only ${landed.length} of ${count} appends landed`);
    const contents = (await request(base, 'GET', '/conversations/c-msg')).body.history.map((m) => m.content);
    assert.deepEqual([...contents].sort(), landed.sort(), 'every acknowledged append is stored, once; no refused one is');
    assert.equal((await request(base, 'POST', '/conversations/nobody/messages', { role: 'user', content: 'hi' })).status, 404);
    assert.equal((await request(base, 'POST', '/conversations/c-msg/messages', { role: 'user' })).status, 400);
  });

  it('answers 409 when another writer keeps getting in first', async () => {
    const rival = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null });
    let bump = 0;
    // The app's store, except that before each of update's writes a rival
    // store really changes the record (a fresh updatedAt), in Redis.
    const contested = {
      get: (...args) => store.get(...args),
      set: (...args) => store.set(...args),
      delete: (...args) => store.delete(...args),
      listByUser: (...args) => store.listByUser(...args),
      update: (id, fn, options) =>
        store.update(
          id,
          async (current) => {
            await rival.set(id, { ...current, updatedAt: new Date(Date.now() + 1000 * ++bump).toISOString() });
            return fn(current);
          },
          options,
        ),
    };
    const { server: contestedServer, base: contestedBase } = await listen(createApp(contested));
    try {
      await request(contestedBase, 'PUT', '/conversations/c-409', requestBody('alice'));
      const res = await request(contestedBase, 'POST', '/conversations/c-409/messages', { role: 'user', content: 'lost' });
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.code, 'STORE_CONFLICT');
      assert.equal(bump, 6, 'one try and five retries');
      const stored = (await request(contestedBase, 'GET', '/conversations/c-409')).body;
      assert.ok(!stored.history.some((m) => m.content === 'lost'));
    } finally {
      await closeServer(contestedServer);
      await rival.close();
    }
  });

  it('a client that leaves aborts its store call at once, not at the command timeout', async () => {
    srv.pause();
    try {
      const controller = new AbortController();
      const pending = fetch(`${base}/conversations/any`, { signal: controller.signal }).catch((err) => err);
      await pollUntil(() => native._liveCounts().calls > 0, { timeoutMs: 2000, what: 'the GET to reach the store' });
      const left = performance.now();
      controller.abort();
      assert.equal((await pending).name, 'AbortError');
      await pollUntil(() => native._liveCounts().calls === 0, { timeoutMs: 2000, intervalMs: 5, what: 'the store call to end' });
      const elapsed = performance.now() - left;
      assert.ok(elapsed < COMMAND_TIMEOUT_MS - 150, `the store call ended ${elapsed.toFixed(0)} ms after the client left`);
    } finally {
      srv.resume();
    }
    await pollUntil(async () => (await request(base, 'GET', '/conversations/any')).status === 404, {
      timeoutMs: 10_000,
      what: 'a GET to answer again after the pause',
      retryErrors: true,
    });
  });

  it('answers 503 within the command timeout while Redis hangs', async () => {
    srv.pause();
    try {
      const started = Date.now();
      const res = await request(base, 'GET', '/conversations/any');
      const elapsed = Date.now() - started;
      assert.equal(res.status, 503, `GET while Redis hangs: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'store unavailable');
      assert.ok(elapsed < 1500, `503 took ${elapsed} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`);
    } finally {
      srv.resume();
    }
    await pollUntil(async () => {
      const r = await health(base);
      return r.body.redis === 'connected' && r;
    }, { timeoutMs: 10_000, what: '/health to say connected after the hang', retryErrors: true });
    const got = await pollUntil(async () => {
      const r = await request(base, 'GET', '/conversations/any');
      return r.status === 404 && r;
    }, { timeoutMs: 10_000, what: 'a GET to answer again after the hang', retryErrors: true });
    assert.equal(got.status, 404);
  });

  it('answers 503 within the command timeout while Redis is down, and /health says disconnected', async () => {
    await srv.kill();

    const started = Date.now();
    const res = await request(base, 'GET', '/conversations/any');
    const elapsed = Date.now() - started;
    assert.equal(res.status, 503, `GET while Redis is down: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error, 'store unavailable');
    assert.match(res.body.code, /^STORE_[A-Z_]+$/);
    assert.ok(elapsed < 1500, `503 took ${elapsed} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`);

    const put = await request(base, 'PUT', '/conversations/during-outage', requestBody('alice'));
    assert.equal(put.status, 503);
    const list = await request(base, 'GET', '/users/alice/conversations');
    assert.equal(list.status, 503);
    // Bad input is still bad input, outage or not.
    const noUser = await request(base, 'PUT', '/conversations/bad', { history: [] });
    assert.equal(noUser.status, 400);

    const h = await pollUntil(async () => {
      const r = await health(base);
      return r.body.redis === 'disconnected' && r;
    }, { timeoutMs: 3000, what: '/health to say disconnected', retryErrors: true });
    assert.equal(h.status, 503);
    assert.deepEqual(h.body, { status: 'degraded', redis: 'disconnected', store: 'RedisStore' });
  });

  it('serves again once Redis is back, with the same app and store', async () => {
    await srv.restart();
    const h = await pollUntil(async () => {
      const r = await health(base);
      return r.body.redis === 'connected' && r;
    }, { timeoutMs: 10_000, what: '/health to say connected again', retryErrors: true });
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');

    const put = await request(base, 'PUT', '/conversations/after-restart', requestBody('bob'));
    assert.equal(put.status, 204);
    const got = await request(base, 'GET', '/conversations/after-restart');
    assert.equal(got.status, 200);
    assert.equal(got.body.userId, 'bob');
    const list = await request(base, 'GET', '/users/bob/conversations');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.map((c) => c.externalId), ['after-restart']);
  });
});

describe('example app on a MemoryStore', () => {
  let store;
  let server;
  let base;

  before(async () => {
    store = new MemoryStore();
    ({ server, base } = await listen(createApp(store)));
  });

  after(async () => {
    if (server) await closeServer(server);
    if (store) await store.close();
  });

  it('reports not_configured on /health', async () => {
    const h = await health(base);
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: 'ok', redis: 'not_configured', store: 'MemoryStore' });
  });

  it('creates, reads, lists and deletes conversations', async () => {
    await roundtrip(base, 'carol');
  });

  it('answers 400 for bad input', async () => {
    await badInput(base);
  });
});

describe('example/server.js', () => {
  let child;
  let redisPid;
  let output = '';

  after(async () => {
    // Only if the test failed half-way: stop what it started, by pid. A
    // SIGTERM first lets server.js stop its own redis-server.
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      let timer;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 3000)))]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    if (redisPid !== undefined) {
      try {
        process.kill(redisPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('starts a local redis-server without REDIS_URL, serves, and cleans up on SIGTERM', async () => {
    const port = await freePort();
    const env = { ...process.env, PORT: String(port) };
    for (const name of Object.keys(env)) if (name.startsWith('REDIS_')) delete env[name];
    child = spawn(process.execPath, [SERVER_JS], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

    const base = `http://127.0.0.1:${port}`;
    const h = await pollUntil(async () => {
      if (child.exitCode !== null) assert.fail(`server.js exited early (${child.exitCode}):\n${output}`);
      const r = await health(base);
      return r.status === 200 && r;
    }, { timeoutMs: 10_000, what: () => `server.js /health to answer 200\n--- output ---\n${output}`, retryErrors: true });
    assert.deepEqual(h.body, { status: 'ok', redis: 'connected', store: 'RedisStore' }, output);

    const pidMatch = /local redis-server pid (\d+)/.exec(output);
    assert.ok(pidMatch, `server.js prints the redis-server pid:\n${output}`);
    redisPid = Number(pidMatch[1]);
    assert.doesNotThrow(() => process.kill(redisPid, 0), 'the local redis-server runs');
    assert.match(output, /rediss:\/\//, 'it says production needs TLS');
    assert.match(output, /curl /);

    // It really works end to end.
    assert.equal((await request(base, 'PUT', '/conversations/demo', requestBody('dave'))).status, 204);
    assert.equal((await request(base, 'GET', '/conversations/demo')).body.userId, 'dave');
    const metrics = await request(base, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.equal(metrics.body.status, 'ready');
    assert.deepEqual(metrics.body.stats.operations.set, { started: 1, failed: 0 });
    assert.equal(metrics.body.stats.msSinceReady, 0);

    const signalledAt = Date.now();
    child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 5000);
    });
    const result = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    assert.notEqual(result, 'timeout', `server.js did not exit within 5 s of SIGTERM:\n${output}`);
    assert.deepEqual(result, { code: 0, signal: null }, output);
    assert.ok(Date.now() - signalledAt < 5000);
    assert.throws(() => process.kill(redisPid, 0), { code: 'ESRCH' }, 'its redis-server is gone');
    // The order of a graceful stop: HTTP first, then the store, then its Redis.
    const order = ['stopped accepting HTTP', 'closed the store', 'stopped the local redis-server'].map((line) => output.indexOf(line));
    assert.ok(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1])), output);
    redisPid = undefined; // nothing left for the after hook (and the pid may be reused)
  });
});
