'use strict';

// Per-call `{ signal, timeoutMs }`. A signal already aborted rejects with its
// reason and sends nothing (the server's command counts do not move); one
// that aborts while Redis is held by CLIENT PAUSE rejects at once, and the
// connection stays in sync: the late replies are dropped, and the calls
// after the pause get their own values. `timeoutMs` replaces
// commandTimeoutMs for the one call, in both directions.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const v8 = require('node:v8');
const vm = require('node:vm');

const { RedisStore, MemoryStore, RedisError, StoreInputError } = require('..');
const { startRedis, startCluster, sendCommands, conversation, pollUntil } = require('../test-support');

let srv;
let cluster;
let prefixCounter = 0;
const opened = [];

before(async () => {
  [srv, cluster] = await Promise.all([startRedis(), startCluster()]);
});

after(async () => {
  await Promise.all(opened.map((store) => store.close()));
  await Promise.all([srv?.stop(), cluster?.stop()]);
});

async function openStore(options = {}) {
  const store = new RedisStore({
    url: srv.url,
    allowPlaintext: true,
    keyPrefix: `cx${++prefixCounter}:`,
    logger: null,
    ...options,
  });
  opened.push(store);
  await store.ping();
  return store;
}

/** Calls per command since the server started, without INFO itself and the link's PING probes. */
async function commandCalls() {
  const [info] = await sendCommands({ port: srv.port }, [['INFO', 'commandstats']]);
  const counts = {};
  for (const match of String(info).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info' && match[1] !== 'ping') counts[match[1]] = Number(match[2]);
  }
  return counts;
}

/** Holds every client's commands for `ms` (the test's own connection gets the OK first). */
function pauseRedis(ms) {
  return sendCommands({ port: srv.port }, [['CLIENT', 'PAUSE', String(ms), 'ALL']]);
}

function abortedSignal(reason) {
  const controller = new AbortController();
  controller.abort(reason);
  return controller.signal;
}

/** Every method of a store, as (store, signal) => promise. */
const CALLS = {
  get: (store, options) => store.get('c1', options),
  set: (store, options) => store.set('c1', conversation('c1', 'u1'), options),
  'set ifUpdatedAt': (store, options) => store.set('c1', conversation('c1', 'u1'), { ...options, ifUpdatedAt: null }),
  delete: (store, options) => store.delete('c1', options),
  listByUser: (store, options) => store.listByUser('u1', { limit: 5, ...options }),
  update: (store, options) => store.update('c1', (current) => current, options),
  ping: (store, options) => store.ping(options),
};

describe('a signal already aborted', () => {
  it('rejects every method with its reason and sends nothing to Redis', async () => {
    const store = await openStore();
    const before = await commandCalls();
    for (const [name, call] of Object.entries(CALLS)) {
      const reason = new Error(`stop ${name}`);
      await assert.rejects(call(store, { signal: abortedSignal(reason) }), (err) => err === reason, name);
    }
    // The default reason is a DOMException AbortError, as fetch rejects with.
    await assert.rejects(store.get('c1', { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.deepEqual(await commandCalls(), before);
  });

  it('rejects MemoryStore calls with its reason too, writing nothing', async () => {
    const store = new MemoryStore({ logger: null });
    for (const [name, call] of Object.entries(CALLS)) {
      const reason = new Error(`stop ${name}`);
      await assert.rejects(call(store, { signal: abortedSignal(reason) }), (err) => err === reason, name);
    }
    assert.equal(await store.get('c1'), undefined);
  });

  it('rejects on the cluster before anything is sent', async () => {
    const store = new RedisStore({ url: cluster.seedUrl, cluster: true, allowPlaintext: true, keyPrefix: `cx${++prefixCounter}:`, logger: null });
    opened.push(store);
    const reason = new Error('stop');
    await assert.rejects(store.set('c1', conversation('c1', 'u1'), { signal: abortedSignal(reason) }), (err) => err === reason);
    assert.equal(await store.get('c1'), undefined);
  });
});

describe('a call in flight', () => {
  it('rejects within 50 ms + slack of AbortSignal.timeout(50) while Redis is paused, and the connection stays in sync', async () => {
    const store = await openStore({ commandTimeoutMs: 5000 });
    const count = 100;
    await Promise.all(Array.from({ length: count }, (_, n) => store.set(`r${n}`, conversation(`r${n}`, 'u1', { title: `t${n}` }))));

    await pauseRedis(700);
    const started = performance.now();
    const pending = Array.from({ length: 20 }, (_, n) =>
      store.get(`r${n}`, { signal: AbortSignal.timeout(50) }).then(
        () => assert.fail('resolved while Redis was paused'),
        (err) => ({ err, elapsed: performance.now() - started }),
      ),
    );
    // A write aborted in flight may still be applied once Redis answers.
    const writeAborted = store
      .set('late', conversation('late', 'u1'), { signal: AbortSignal.timeout(50) })
      .catch((err) => err);
    for (const { err, elapsed } of await Promise.all(pending)) {
      assert.equal(err.name, 'TimeoutError');
      assert.ok(elapsed < 50 + 250, `rejected after ${elapsed.toFixed(0)} ms`);
    }
    assert.equal((await writeAborted).name, 'TimeoutError');

    // After the pause, the late replies are dropped, not handed to these calls.
    const results = await Promise.all(Array.from({ length: 1000 }, (_, n) => store.get(`r${n % count}`)));
    results.forEach((record, n) => assert.equal(record.title, `t${n % count}`));
    await pollUntil(async () => (await store.get('late')) !== undefined, { timeoutMs: 5000 });
  });

  it('rejects at once when its controller aborts, with the given reason', async () => {
    const store = await openStore({ commandTimeoutMs: 5000 });
    await store.set('c1', conversation('c1', 'u1'));
    await pauseRedis(500);
    const controller = new AbortController();
    const pending = store.listByUser('u1', { signal: controller.signal });
    const reason = new Error('client went away');
    setTimeout(() => controller.abort(reason), 20);
    const started = performance.now();
    await assert.rejects(pending, (err) => err === reason);
    assert.ok(performance.now() - started < 250);
    assert.equal((await store.get('c1')).userId, 'u1');
  });
});

describe('a call in flight on the cluster', () => {
  it('rejects when its signal aborts while every node is paused, and the connection stays in sync', async () => {
    const store = new RedisStore({
      url: cluster.seedUrl,
      cluster: true,
      allowPlaintext: true,
      keyPrefix: `cx${++prefixCounter}:`,
      commandTimeoutMs: 5000,
      logger: null,
    });
    opened.push(store);
    const count = 50;
    await Promise.all(Array.from({ length: count }, (_, n) => store.set(`r${n}`, conversation(`r${n}`, 'u1', { title: `t${n}` }))));
    await Promise.all(cluster.nodes.map((node) => cluster.commands(node, ['CLIENT', 'PAUSE', '600', 'ALL'])));
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, n) => store.get(`r${n}`, { signal: AbortSignal.timeout(50) }).catch((err) => err)),
    );
    const elapsed = performance.now() - started;
    for (const err of outcomes) assert.equal(err.name, 'TimeoutError');
    assert.ok(elapsed < 50 + 250, `rejected after ${elapsed.toFixed(0)} ms`);
    const results = await Promise.all(Array.from({ length: 500 }, (_, n) => store.get(`r${n % count}`)));
    results.forEach((record, n) => assert.equal(record.title, `t${n % count}`));
  });
});

describe('timeoutMs', () => {
  it('replaces commandTimeoutMs for the call: shorter rejects with STORE_TIMEOUT, longer waits out a pause', async () => {
    const patient = await openStore({ commandTimeoutMs: 5000 });
    await patient.set('c1', conversation('c1', 'u1'));
    await pauseRedis(600);
    const started = performance.now();
    await assert.rejects(patient.get('c1', { timeoutMs: 100 }), (err) => {
      assert.ok(err instanceof RedisError);
      assert.equal(err.code, 'STORE_TIMEOUT');
      assert.match(err.message, /within 100 ms \(timeoutMs/);
      return true;
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 90 && elapsed < 100 + 250, `timed out after ${elapsed.toFixed(0)} ms`);
    // Let the pause end before the next part.
    assert.equal((await patient.get('c1')).userId, 'u1');

    const hasty = await openStore({ commandTimeoutMs: 100 });
    await hasty.set('c2', conversation('c2', 'u1'));
    await pauseRedis(400);
    await assert.rejects(hasty.get('c2'), { code: 'STORE_TIMEOUT' });
    await pauseRedis(400);
    assert.equal((await hasty.get('c2', { timeoutMs: 3000 })).userId, 'u1');
  });

  // A call with timeoutMs and no signal keeps no reference to its native
  // limits: V8 may collect them while the call waits. The call must still
  // settle with its own outcome (it once resolved at once, empty: a write
  // with waitReplicas "confirmed" before Redis answered).
  it('settles with its own outcome when its limits are garbage-collected in flight', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    const store = await openStore({ commandTimeoutMs: 5000 });
    await store.set('c1', conversation('c1', 'u1'));
    await pauseRedis(400);
    let settledDuringPause = false;
    const read = store.get('c1', { timeoutMs: 3000 });
    const write = store.set('c2', conversation('c2', 'u1'), { timeoutMs: 3000 });
    const missing = store.get('c3', { timeoutMs: 150 });
    Promise.race([read, write]).then(() => (settledDuringPause = true), () => {});
    for (let i = 0; i < 5; i += 1) {
      gc();
      // Node runs native finalizers on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(settledDuringPause, false, 'settled while Redis was paused');
    await assert.rejects(missing, { code: 'STORE_TIMEOUT' });
    assert.equal((await read).userId, 'u1');
    await write;
    assert.equal((await store.get('c2')).externalId, 'c2');
  });

  it('refuses bad options with an input error', async () => {
    const store = await openStore();
    const bad = [{ timeoutMs: 0 }, { timeoutMs: 1.5 }, { timeoutMs: '100' }, { signal: {} }, { signal: 'stop' }, { signl: AbortSignal.abort() }];
    for (const options of bad) {
      await assert.rejects(store.get('c1', options), (err) => {
        assert.ok(err instanceof StoreInputError, `${JSON.stringify(options)}: ${err}`);
        assert.equal(err.code, 'STORE_INVALID_ARGUMENT');
        return true;
      });
    }
    await assert.rejects(store.get('c1', 'fast'), { code: 'STORE_INVALID_ARGUMENT' });
  });
});
