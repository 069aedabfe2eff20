'use strict';

// Every StoreError variant crosses into JS with its code set by Rust and
// arrives as the right class, on a synchronous path (a throw from the
// binding) and an asynchronous one (a rejection through a RedisStore's
// completer). The samples come from the native side, one per variant (the
// Rust compiler refuses a new variant until it has one), so a variant added
// later cannot fall through to a generic error unnoticed.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const store = require('..');
const native = require('../loader.js').loadBinding();
const { startRedis } = require('../test-support');

const { MemoryStore, RedisStore } = store;
const CLASS_NAMES = ['RedisError', 'StoreInputError', 'StoreConfigError', 'StoreDataError', 'StoreConflictError'];
const samples = native._errorSamples();

/** The checks every shaped sample must pass. */
function checkShaped(sample, { syncCaller }) {
  return (err) => {
    const ExpectedClass = store[sample.className];
    assert.ok(err instanceof ExpectedClass, `${sample.code} arrived as ${err && err.name}, not ${sample.className}`);
    assert.equal(err.name, sample.className);
    assert.equal(err.code, sample.code);
    assert.equal(err.message, sample.message);
    assert.ok(err.stack.startsWith(`${sample.className}: ${sample.message}\n`), err.stack);
    // On a synchronous path the stack still leads to the caller (this file).
    if (syncCaller) assert.ok(err.stack.includes(path.basename(__filename)), err.stack);
    return true;
  };
}

describe('native error samples', () => {
  it('list one sample per code, each naming a class index.js exports', () => {
    assert.ok(samples.length > 0);
    const codes = samples.map((sample) => sample.code);
    assert.equal(new Set(codes).size, codes.length, `duplicate codes: ${codes}`);
    for (const sample of samples) {
      assert.match(sample.code, /^STORE_[A-Z_]+$/);
      assert.ok(CLASS_NAMES.includes(sample.className), `${sample.code}: ${sample.className}`);
      assert.equal(typeof store[sample.className], 'function', `index.js exports ${sample.className}`);
      assert.ok(sample.message.length > 0);
    }
  });

  it('are thrown by Rust with their code already set (no decoding in JS)', async () => {
    for (const [index, sample] of samples.entries()) {
      assert.throws(
        () => native._throwErrorSample(index),
        (err) => err instanceof Error && err.code === sample.code && err.message === sample.message,
      );
    }
    assert.throws(() => native._throwErrorSample(samples.length), { code: 'STORE_INVALID_ARGUMENT' });
  });
});

describe('every StoreError variant reaches the caller as its class', () => {
  let srv;
  let redisStore;

  before(async () => {
    srv = await startRedis();
    redisStore = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null });
    await redisStore.ping();
  });

  after(async () => {
    if (redisStore) await redisStore.close();
    if (srv) await srv.stop();
  });

  for (const [index, sample] of samples.entries()) {
    it(`${sample.code} (sync, MemoryStore): ${sample.className}`, async () => {
      const memory = new MemoryStore({ logger: null });
      // The store's own call path, with the native method replaced by one
      // that throws the sample: what index.js does with a thrown error.
      const inner = memory._native;
      inner.get = () => native._throwErrorSample(index);
      await assert.rejects(memory.get('c1'), checkShaped(sample, { syncCaller: true }));
    });

    it(`${sample.code} (async, RedisStore): ${sample.className}`, async () => {
      const inner = redisStore._native;
      inner.get = () => inner._rejectWithSample(index);
      try {
        await assert.rejects(redisStore.get('c1'), checkShaped(sample, { syncCaller: false }));
        // Straight from the binding too: the rejection itself carries the code.
        await assert.rejects(inner._rejectWithSample(index), (err) => err.code === sample.code);
      } finally {
        delete inner.get;
      }
    });
  }

  it('the store still works after the samples (the completer settled each one)', async () => {
    await redisStore.set('c1', { userId: 'u1', updatedAt: '2024-01-01T00:00:00.000Z' });
    assert.equal((await redisStore.get('c1')).userId, 'u1');
  });
});

describe('real errors on both paths keep their class and code', () => {
  it('a bad constructor option (sync, a conversion napi refuses)', () => {
    assert.throws(() => new MemoryStore({ ttlSeconds: 'soon' }), (err) => {
      assert.ok(err instanceof store.StoreConfigError);
      assert.equal(err.code, 'STORE_INVALID_CONFIG');
      assert.match(err.message, /ttlSeconds/);
      return true;
    });
  });

  it('a listByUser option of the wrong type (sync and async)', async () => {
    const memory = new MemoryStore({ logger: null });
    const check = (err) => err instanceof store.StoreInputError && err.code === 'STORE_INVALID_ARGUMENT' && /fields/.test(err.message);
    await assert.rejects(memory.listByUser('u1', { fields: 'title' }), check);
    const redis = new RedisStore({ url: 'redis://127.0.0.1:1', allowPlaintext: true, logger: null });
    try {
      await assert.rejects(redis.listByUser('u1', { fields: 'title' }), check);
    } finally {
      await redis.close();
    }
  });

  it('a closed store (sync ping of MemoryStore, async get of RedisStore)', async () => {
    const memory = new MemoryStore({ logger: null });
    await memory.close();
    await assert.rejects(memory.ping(), (err) => err instanceof store.RedisError && err.code === 'STORE_CLOSED');
    const redis = new RedisStore({ url: 'redis://127.0.0.1:1', allowPlaintext: true, logger: null });
    await redis.close();
    await assert.rejects(redis.get('c1'), (err) => err instanceof store.RedisError && err.code === 'STORE_CLOSED');
  });

  it('argument types are named once, the same way for both stores', async () => {
    const memory = new MemoryStore({ logger: null });
    const redis = new RedisStore({ url: 'redis://127.0.0.1:1', allowPlaintext: true, logger: null });
    try {
      const cases = [
        [(s) => s.get(() => 'c1'), 'STORE_INVALID_ID', 'id must be a non-empty string, got a function'],
        [(s) => s.delete(10n), 'STORE_INVALID_ID', 'id must be a non-empty string, got a bigint'],
        [(s) => s.set(null, {}), 'STORE_INVALID_ID', 'id must be a non-empty string, got null'],
        [(s) => s.listByUser(Symbol('u')), 'STORE_INVALID_USER_ID', 'userId must be a non-empty string, got a symbol'],
      ];
      for (const s of [memory, redis]) {
        for (const [act, code, message] of cases) {
          await assert.rejects(act(s), (err) => {
            assert.ok(err instanceof store.StoreInputError);
            assert.equal(err.code, code);
            assert.equal(err.message, message);
            return true;
          });
        }
      }
    } finally {
      await redis.close();
    }
  });
});
