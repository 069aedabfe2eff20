'use strict';
// Running the store in production (issue 10): lifecycle events and ready(),
// tracing on diagnostics_channel, stats(), graceful close() and destroy(),
// and the REDIS_REQUIRED guard. Each against a redis-server this file starts.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const diagnosticsChannel = require('node:diagnostics_channel');
const path = require('node:path');

const { startRedis, startProxy, freePort, pollUntil, sendCommands, conversation, conversationKey } = require('../test-support');
const { RedisStore, MemoryStore, createConversationStore, RedisError, StoreConfigError } = require('..');

const ROOT = path.resolve(__dirname, '..');
const TIMEOUT_MS = 400;
// Scheduling slack on a loaded 2-core CI machine.
const SLACK_MS = 700;
const fastOptions = {
  allowPlaintext: true,
  logger: null,
  commandTimeoutMs: 2000,
  connectTimeoutMs: TIMEOUT_MS,
  reconnectMinDelayMs: 20,
  reconnectMaxDelayMs: 200,
};

const stores = [];
function track(store) {
  stores.push(store);
  return store;
}
after(async () => {
  for (const store of stores) store.destroy();
});

/** Every event of `store`, in order, as short strings; error objects kept aside. */
function recordEvents(store) {
  const events = [];
  store.on('ready', () => events.push({ kind: 'ready' }));
  store.on('error', (error) => events.push({ kind: 'error', error }));
  store.on('reconnecting', (info) => events.push({ kind: 'reconnecting', ...info }));
  store.on('end', () => events.push({ kind: 'end' }));
  return events;
}

/** Runs `script` in a child Node; resolves { code, stdout } (or code 'hung'). */
function runChild(script, timeoutMs = 10_000, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: 'hung', stdout });
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

describe('events and ready()', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  it('emits ready, then error + reconnecting per failure, then ready, in that exact order, across a kill and restart', async () => {
    const store = track(new RedisStore({ url: server.url, ...fastOptions }));
    const events = recordEvents(store);
    await store.ready();
    assert.deepEqual(events, [{ kind: 'ready' }]);
    await server.kill();
    // Several failed attempts while the server is down.
    await pollUntil(() => events.filter((e) => e.kind === 'reconnecting').length >= 4, { what: 'four reconnecting events' });
    await server.restart();
    await pollUntil(() => events.at(-1).kind === 'ready', { what: 'ready after the restart' });

    const kinds = events.map((e) => e.kind);
    assert.equal(kinds[0], 'ready');
    assert.equal(kinds.at(-1), 'ready');
    const outage = events.slice(1, -1);
    assert.ok(outage.length >= 8, kinds.join(' '));
    for (let i = 0; i < outage.length; i += 2) {
      const [error, reconnecting] = [outage[i], outage[i + 1]];
      assert.equal(error.kind, 'error', kinds.join(' '));
      assert.equal(reconnecting?.kind, 'reconnecting', kinds.join(' '));
      assert.ok(error.error instanceof RedisError, String(error.error));
      assert.equal(error.error.code, 'STORE_UNAVAILABLE', error.error.message);
      assert.equal(reconnecting.error, error.error, 'reconnecting carries the failure just reported');
      // Attempts count from 1 after the loss; the first goes at once.
      assert.equal(reconnecting.attempt, i / 2 + 1);
      if (i === 0) {
        assert.match(error.error.message, /lost the connection/);
        assert.equal(reconnecting.delayMs, 0);
      } else {
        // Refused, or reset while the restarting server's port was half open.
        assert.match(error.error.message, /ECONNREFUSED|ECONNRESET/);
        assert.ok(reconnecting.delayMs > 0 && reconnecting.delayMs <= 200, `delay ${reconnecting.delayMs}`);
      }
    }
    const stats = store.stats();
    assert.equal(stats.reconnections, 1);
    assert.equal(stats.msSinceReady, 0);

    await store.close();
    await store.close();
    store.destroy();
    assert.equal(events.filter((e) => e.kind === 'end').length, 1);
    assert.equal(events.at(-1).kind, 'end');
    assert.equal(store.status, 'closed');
  });

  it('ready() resolves at once when ready; rejects within connectTimeoutMs when not, while the store keeps trying', async () => {
    const up = track(new RedisStore({ url: server.url, ...fastOptions }));
    let emitted = false;
    up.on('ready', () => (emitted = true));
    await up.ready();
    assert.equal(emitted, true, "once ready() resolves, 'ready' was emitted");
    let resolved = false;
    const ready = up.ready().then(() => (resolved = true));
    await Promise.resolve();
    assert.equal(resolved, true, 'resolved without waiting for an event');
    await ready;

    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const down = track(new RedisStore({ url, ...fastOptions }));
    const started = Date.now();
    const err = await down.ready().then(
      () => assert.fail('ready() resolved with nothing listening'),
      (e) => e,
    );
    const elapsed = Date.now() - started;
    assert.ok(err instanceof RedisError, String(err));
    assert.equal(err.code, 'STORE_UNAVAILABLE');
    assert.match(err.message, /within 400 ms \(connectTimeoutMs\).*ECONNREFUSED.*still trying/);
    assert.ok(elapsed >= TIMEOUT_MS - 20 && elapsed < TIMEOUT_MS + SLACK_MS, `rejected after ${elapsed} ms`);
    assert.equal(down.status, 'connecting');
    assert.equal(down.stats().msSinceReady, null, 'never ready yet');

    // A server appears on that port: the same store becomes ready by itself.
    const late = await startRedis({ port });
    try {
      await down.ready().catch(() => down.ready());
      assert.equal(down.status, 'ready');
    } finally {
      down.destroy();
      await late.stop();
    }
    await assert.rejects(down.ready(), { code: 'STORE_CLOSED' });
  });

  it("close() rejects a pending ready() with STORE_CLOSED and emits 'end' once", async () => {
    const port = await freePort();
    const store = track(new RedisStore({ url: `redis://127.0.0.1:${port}`, ...fastOptions, connectTimeoutMs: 5000 }));
    const events = recordEvents(store);
    const pending = store.ready();
    await store.close();
    await assert.rejects(pending, { code: 'STORE_CLOSED' });
    assert.deepEqual(
      events.filter((e) => e.kind === 'end'),
      [{ kind: 'end' }],
    );
    assert.equal(events.at(-1).kind, 'end', 'nothing after end');
  });

  it("'error' carries the failure's code: STORE_AUTH for a wrong password, and ready() rejects with it", async () => {
    const guarded = await startRedis({ password: 'right-pw' });
    try {
      const store = track(new RedisStore({ url: `redis://:wrong-pw@127.0.0.1:${guarded.port}`, ...fastOptions }));
      const events = recordEvents(store);
      const err = await store.ready().then(
        () => assert.fail('ready() resolved with a wrong password'),
        (e) => e,
      );
      assert.equal(err.code, 'STORE_AUTH', err.message);
      assert.ok(!err.message.includes('wrong-pw'), 'the password is never shown');
      const errors = events.filter((e) => e.kind === 'error');
      assert.ok(errors.length >= 1);
      for (const { error } of errors) assert.equal(error.code, 'STORE_AUTH', error.message);
      assert.equal(events[0].kind, 'error');
      assert.equal(events[1].kind, 'reconnecting');
      assert.equal(events[1].attempt, 2, 'the first connection was attempt 1');
      store.destroy();
    } finally {
      await guarded.stop();
    }
  });

  it("an 'error' with no listener neither throws nor crashes the process", async () => {
    const port = await freePort();
    const script = `
      const { RedisStore } = require(${JSON.stringify(ROOT)});
      const store = new RedisStore({ url: 'redis://127.0.0.1:${port}', allowPlaintext: true, logger: null,
        connectTimeoutMs: 300, reconnectMinDelayMs: 10, reconnectMaxDelayMs: 50 });
      let retries = 0;
      store.on('reconnecting', () => {
        if (++retries === 5) {
          console.log('errors without a listener: ' + retries + ', listeners: ' + store.listenerCount('error'));
          store.destroy();
        }
      });
      setTimeout(() => {}, 8000); // kept alive until destroy(), unless something crashed it first
      store.on('end', () => process.exit(0));`;
    const { code, stdout } = await runChild(script);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /errors without a listener: 5, listeners: 0/);
  });
});

describe('tracing on diagnostics_channel', () => {
  let server;
  let store;
  before(async () => {
    server = await startRedis();
    store = track(new RedisStore({ url: server.url, ...fastOptions }));
    await store.ready();
  });
  after(() => server.stop());

  it('publishes every operation with the tracePromise lifecycle and a context naming it', async () => {
    const channel = diagnosticsChannel.tracingChannel('redis-conversation-store:operation');
    const seen = [];
    const contexts = new Set();
    const record = (phase) => (context) => {
      contexts.add(context);
      seen.push(`${phase}:${context.operation}`);
    };
    const handlers = {
      start: record('start'),
      end: record('end'),
      asyncStart: record('asyncStart'),
      asyncEnd: record('asyncEnd'),
      error: record('error'),
    };
    channel.subscribe(handlers);
    try {
      await store.set('trace-1', conversation('trace-1', 'trace-user'));
      assert.equal((await store.get('trace-1')).userId, 'trace-user');
      await store.update('trace-1', (current) => ({ ...current, status: 'completed' }));
      assert.equal((await store.listByUser('trace-user')).length, 1);
      await store.ping();
      await store.delete('trace-1');
      const failed = await store.get('').catch((err) => err);
      assert.equal(failed.code, 'STORE_INVALID_ID');
    } finally {
      channel.unsubscribe(handlers);
    }
    const ok = (op) => [`start:${op}`, `end:${op}`, `asyncStart:${op}`, `asyncEnd:${op}`];
    assert.deepEqual(seen, [
      ...ok('set'),
      ...ok('get'),
      ...ok('update'),
      ...ok('listByUser'),
      ...ok('ping'),
      ...ok('delete'),
      'start:get',
      'end:get',
      'error:get',
      'asyncStart:get',
      'asyncEnd:get',
    ]);
    const list = [...contexts];
    assert.equal(list.length, 7, 'one context per call, shared by its lifecycle');
    for (const context of list) assert.equal(context.redactedUrl, store.redactedUrl);
    assert.deepEqual(
      list.map((c) => [c.operation, c.id ?? c.userId ?? null]),
      [
        ['set', 'trace-1'],
        ['get', 'trace-1'],
        ['update', 'trace-1'],
        ['listByUser', 'trace-user'],
        ['ping', null],
        ['delete', 'trace-1'],
        ['get', ''],
      ],
    );
    assert.equal(list[1].result.userId, 'trace-user');
    assert.equal(list[6].error.code, 'STORE_INVALID_ID');
    assert.equal(list[6].result, undefined);
  });
});

describe('stats()', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  it('counts calls started, failed, per error code, and in flight', async () => {
    const store = track(new RedisStore({ url: server.url, ...fastOptions }));
    await store.ready();
    await store.set('stats-1', conversation('stats-1', 'u1'));
    await store.get('stats-1');
    await store.get('stats-missing');
    await store.get('').catch(() => {});
    await store.set('stats-2', conversation('stats-2', 'u1'), { ifUpdatedAt: 'not-it' }).catch(() => {});
    const aborted = new AbortController();
    aborted.abort();
    await store.delete('stats-1', { signal: aborted.signal }).catch(() => {});
    await store.listByUser('u1');

    server.pause();
    let hung;
    try {
      hung = Array.from({ length: 5 }, () => store.get('stats-1', { timeoutMs: 300 }).catch((err) => err));
      assert.equal(store.stats().inFlight, 5);
      const errors = await Promise.all(hung);
      for (const err of errors) assert.equal(err.code, 'STORE_TIMEOUT');
    } finally {
      server.resume();
    }

    const stats = store.stats();
    assert.deepEqual(stats.operations, {
      get: { started: 8, failed: 6 },
      set: { started: 2, failed: 1 },
      update: { started: 0, failed: 0 },
      delete: { started: 1, failed: 1 },
      listByUser: { started: 1, failed: 0 },
      ping: { started: 0, failed: 0 },
    });
    assert.deepEqual(stats.failuresByCode, {
      STORE_INVALID_ID: 1,
      STORE_CONFLICT: 1,
      AbortError: 1,
      STORE_TIMEOUT: 5,
    });
    assert.equal(stats.inFlight, 0);
    assert.equal(stats.reconnections, 0);
    assert.equal(typeof stats.msSinceReady, 'number');
  });
});

describe('close() and destroy()', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  it('close() lets 200 writes in flight finish, refuses new calls at once, then ends', async () => {
    const store = track(new RedisStore({ url: server.url, ...fastOptions }));
    await store.ready();
    const events = recordEvents(store);
    const writes = Array.from({ length: 200 }, (_, i) => store.set(`drain-${i}`, conversation(`drain-${i}`, 'drainer')));
    const closing = store.close();
    const started = Date.now();
    const late = await store.get('drain-0').catch((err) => err);
    assert.equal(late.code, 'STORE_CLOSED');
    assert.ok(Date.now() - started < 100, 'a call after close() is refused at once');
    assert.equal(events.length, 0, "no 'end' while writes are in flight");
    await closing;
    assert.deepEqual(events, [{ kind: 'end' }], "'end' once close() has settled");
    const outcomes = await Promise.allSettled(writes);
    assert.deepEqual(
      outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason.message),
      [],
    );
    const replies = await sendCommands({ port: server.port }, Array.from({ length: 200 }, (_, i) => ['EXISTS', conversationKey(`drain-${i}`)]));
    assert.deepEqual(replies, Array(200).fill(1));
    assert.equal(store.status, 'closed');
    assert.equal(store.stats().inFlight, 0);
  });

  it('close() waits for a call in flight up to its own timeout', async () => {
    const store = track(new RedisStore({ url: server.url, ...fastOptions }));
    await store.ready();
    server.pause();
    try {
      const slow = store.get('x', { timeoutMs: TIMEOUT_MS }).catch((err) => err);
      const started = Date.now();
      await store.close();
      const elapsed = Date.now() - started;
      assert.equal((await slow).code, 'STORE_TIMEOUT', 'the call ran to its own timeout');
      assert.ok(elapsed >= TIMEOUT_MS - 50 && elapsed < TIMEOUT_MS + SLACK_MS, `closed after ${elapsed} ms`);
    } finally {
      server.resume();
    }
  });

  it('destroy() settles calls in flight with STORE_CLOSED at once, then emits end', async () => {
    const store = track(new RedisStore({ url: server.url, ...fastOptions, commandTimeoutMs: 5000 }));
    const events = recordEvents(store);
    await pollUntil(() => events.length === 1, { what: "'ready'" });
    server.pause();
    try {
      const inFlight = Array.from({ length: 10 }, () => store.get('x').catch((err) => err));
      const started = Date.now();
      store.destroy();
      const outcomes = await Promise.all(inFlight);
      assert.ok(Date.now() - started < 1000, 'settled at destroy(), not at the 5 s timeout');
      for (const outcome of outcomes) assert.equal(outcome.code, 'STORE_CLOSED');
      await pollUntil(() => events.length > 1, { what: "'end'" });
      assert.deepEqual(events, [{ kind: 'ready' }, { kind: 'end' }]);
    } finally {
      server.resume();
    }
  });

  for (const how of ['close', 'destroy']) {
    it(`the process exits by itself after ${how}() with calls in flight`, async () => {
      const script = `
        const { RedisStore } = require(${JSON.stringify(ROOT)});
        const store = new RedisStore({ url: ${JSON.stringify(server.url)}, allowPlaintext: true, logger: null });
        store.ready().then(() => {
          for (let i = 0; i < 50; i++) store.set('exit-' + i, { userId: 'u', updatedAt: new Date().toISOString() }).catch(() => {});
          const done = store.${how}();
          store.on('end', () => console.log('end'));
        });`;
      const started = Date.now();
      const { code, stdout } = await runChild(script, 5000);
      assert.equal(code, 0);
      assert.equal(stdout.trim(), 'end');
      assert.ok(Date.now() - started < 2000 + SLACK_MS, `exited after ${Date.now() - started} ms`);
    });
  }

  // Busy polling (src/busy_poll.rs) keeps the worker awake at low
  // concurrency: calls must settle the same with it on, off or long, and an
  // idle process must still exit by itself.
  for (const busyPollUs of ['0', '50', '10000']) {
    it(`REDIS_STORE_BUSY_POLL_US=${busyPollUs}: sequential and concurrent calls settle, then the process exits`, async () => {
      const script = `
        const { RedisStore } = require(${JSON.stringify(ROOT)});
        const store = new RedisStore({ url: ${JSON.stringify(server.url)}, allowPlaintext: true, logger: null });
        (async () => {
          const record = (i) => ({ userId: 'poll-user', updatedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(), n: i });
          for (let i = 0; i < 20; i++) await store.set('poll-' + i, record(i));
          const read = [];
          for (let i = 0; i < 20; i++) read.push((await store.get('poll-' + i)).n);
          const together = await Promise.all(Array.from({ length: 20 }, (_, i) => store.get('poll-' + i)));
          const listed = await store.listByUser('poll-user', { limit: 100 });
          await store.close();
          console.log(JSON.stringify({ read, together: together.map((r) => r.n), listed: listed.length }));
        })();`;
      const started = Date.now();
      const { code, stdout } = await runChild(script, 10_000, { REDIS_STORE_BUSY_POLL_US: busyPollUs });
      assert.equal(code, 0);
      const expected = Array.from({ length: 20 }, (_, i) => i);
      assert.deepEqual(JSON.parse(stdout), { read: expected, together: expected, listed: 20 });
      assert.ok(Date.now() - started < 3000 + SLACK_MS, `exited after ${Date.now() - started} ms`);
    });
  }

  // A write wakes the worker before it encodes its record (so the wake-up
  // overlaps JSON.stringify); one refused while encoding must not leave the
  // worker polling for longer than the millisecond a call is expected for.
  it('a write wakes the worker ahead, and one refused while encoding lets it sleep again', async () => {
    const script = `
      const { RedisStore } = require(${JSON.stringify(ROOT)});
      const native = require(${JSON.stringify(path.join(ROOT, 'loader.js'))}).loadBinding();
      const store = new RedisStore({ url: ${JSON.stringify(server.url)}, allowPlaintext: true, logger: null });
      const asleep = async () => {
        const deadline = Date.now() + 2000;
        while (native._liveCounts().polling) {
          if (Date.now() > deadline) throw new Error('the worker still polls after 2 s');
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      };
      (async () => {
        await store.set('wake-0', { userId: 'wake-user' });
        const circular = { userId: 'wake-user' };
        circular.self = circular;
        // The worker polls for 1 ms after the refusal, so only a look within
        // half of that settles whether it was woken (a loaded machine can
        // stall this thread longer): up to 20 attempts.
        let wokeAhead = 'never looked in time';
        let code;
        for (let attempt = 0; attempt < 20 && typeof wokeAhead !== 'boolean'; attempt++) {
          await asleep();
          const started = process.hrtime.bigint();
          const refused = store.set('wake-1', circular);
          const polling = native._liveCounts().polling;
          if (process.hrtime.bigint() - started < 500_000n) wokeAhead = polling;
          code = await refused.then(() => 'resolved', (err) => err.code);
        }
        const started = Date.now();
        await asleep();
        const sleptAfterMs = Date.now() - started;
        await store.close();
        console.log(JSON.stringify({ wokeAhead, code, sleptAfterMs }));
      })();`;
    const { code, stdout } = await runChild(script, 10_000);
    assert.equal(code, 0);
    const outcome = JSON.parse(stdout);
    assert.equal(outcome.wokeAhead, true, 'polling while the record was encoded');
    assert.equal(outcome.code, 'STORE_INVALID_RECORD');
    assert.ok(outcome.sleptAfterMs < 200 + SLACK_MS, `still polling ${outcome.sleptAfterMs} ms after the refusal`);
  });

  // A far server's reply is waited for asleep, and polled for from shortly
  // before it is due (the alarm in busy_poll.rs), so that the worker's
  // wake-up does not follow the reply. Through a proxy adding 5 ms each way:
  // no polling through the first half of a call (past the 150 µs after its
  // start), and polling seen late in it, before the JS thread had the reply.
  it('a far server: the worker sleeps through the wait and polls from shortly before the reply', async () => {
    const proxy = await startProxy({ target: server, delayMs: 5 });
    try {
      const script = `
        const { RedisStore } = require(${JSON.stringify(ROOT)});
        const native = require(${JSON.stringify(path.join(ROOT, 'loader.js'))}).loadBinding();
        const store = new RedisStore({ url: ${JSON.stringify(proxy.url())}, allowPlaintext: true, logger: null });
        const pause = new Int32Array(new SharedArrayBuffer(4));
        // Sleeps 0.1 ms between looks (a spinning JS thread would hold the
        // core the worker polls on), then lets the loop settle the call.
        const turn = () => { Atomics.wait(pause, 0, 0, 0.1); return new Promise((resolve) => setImmediate(resolve)); };
        (async () => {
          await store.set('far-0', { userId: 'far-user' });
          for (let i = 0; i < 3; i++) await store.get('far-0'); // learns the reply time
          const calls = [];
          for (let i = 0; i < 8; i++) {
            const samples = [];
            let done = false;
            const started = process.hrtime.bigint();
            const call = store.get('far-0').then(() => { done = true; });
            while (!done) {
              samples.push([Number(process.hrtime.bigint() - started) / 1e6, native._liveCounts().polling]);
              await turn();
            }
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            await call;
            const early = samples.filter(([at]) => at >= 1 && at <= ms / 2);
            calls.push({
              ms,
              pollingEarly: early.some(([, polling]) => polling),
              lookedEarly: early.length > 0,
              pollingLate: samples.some(([at, polling]) => polling && at > ms / 2),
            });
          }
          await store.close();
          console.log(JSON.stringify(calls));
        })();`;
      const { code, stdout } = await runChild(script, 20_000);
      assert.equal(code, 0);
      const calls = JSON.parse(stdout);
      for (const call of calls) {
        assert.ok(call.ms >= 5, `a call through the proxy took ${call.ms} ms`);
        assert.ok(call.lookedEarly, 'sampled the first half of the call');
      }
      // The flag says the polling task holds the worker, so on a loaded
      // machine it can stay up while that task waits for a core (a CI run
      // saw it in 1 of 8 calls); polling through the wait shows in all.
      const pollingEarly = calls.filter((call) => call.pollingEarly).length;
      assert.ok(pollingEarly <= 2, `polling in the first half of ${pollingEarly} of 8 far calls: ${stdout}`);
      assert.ok(calls.some((call) => call.pollingLate), `never polling before a far reply: ${stdout}`);
    } finally {
      await proxy.close();
    }
  });
});

describe('MemoryStore: the same surface', () => {
  it("ready(), stats(), close() and destroy() with 'end'", async () => {
    const store = new MemoryStore();
    const events = recordEvents(store);
    await store.ready();
    await store.set('m-1', conversation('m-1', 'u1'));
    await assert.rejects(store.get(''), { code: 'STORE_INVALID_ID' });
    assert.deepEqual(events, []);
    const stats = store.stats();
    assert.deepEqual(stats.operations.set, { started: 1, failed: 0 });
    assert.deepEqual(stats.operations.get, { started: 1, failed: 1 });
    assert.deepEqual(stats.failuresByCode, { STORE_INVALID_ID: 1 });
    assert.equal(stats.msSinceReady, 0);
    await store.close();
    assert.deepEqual(events, [{ kind: 'end' }]);
    await assert.rejects(store.get('m-1'), { code: 'STORE_CLOSED' });
    await assert.rejects(store.ready(), { code: 'STORE_CLOSED' });

    const destroyed = new MemoryStore();
    const destroyedEvents = recordEvents(destroyed);
    destroyed.destroy();
    await pollUntil(() => destroyedEvents.length === 1, { what: "'end'" });
    assert.equal(destroyed.status, 'closed');
  });
});

describe('REDIS_REQUIRED / required', () => {
  const refused = (build, pattern) =>
    assert.throws(build, (err) => {
      assert.ok(err instanceof StoreConfigError, String(err));
      assert.equal(err.code, 'STORE_INVALID_CONFIG');
      assert.match(err.message, pattern);
      return true;
    });

  it('refuses to fall back to MemoryStore without REDIS_URL', () => {
    refused(() => createConversationStore({ REDIS_REQUIRED: 'true' }, { logger: null }), /REDIS_REQUIRED/);
    refused(() => createConversationStore({}, { required: true, logger: null }), /required/);
    refused(() => createConversationStore({ REDIS_REQUIRED: 'sure' }, { logger: null }), /REDIS_REQUIRED must be true or false/);
    refused(() => createConversationStore({}, { required: 'yes', logger: null }), /required must be true or false/);
    assert.ok(createConversationStore({ REDIS_REQUIRED: 'false' }, { logger: null }) instanceof MemoryStore);
    assert.ok(createConversationStore({}, { required: false, logger: null }) instanceof MemoryStore);
  });

  it('is satisfied by REDIS_URL', () => {
    const store = createConversationStore(
      { REDIS_URL: 'redis://127.0.0.1:1', REDIS_ALLOW_PLAINTEXT: 'true', REDIS_REQUIRED: 'true' },
      { required: true, logger: null },
    );
    try {
      assert.ok(store instanceof RedisStore);
    } finally {
      store.destroy();
    }
  });
});
