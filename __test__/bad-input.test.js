'use strict';

// Bad input gets a clear error and writes nothing (docs/contract.md: "Bad
// input is refused and writes nothing"; "Bad input and bad configuration are
// never RedisErrors"). Every case runs against both stores; for RedisStore the
// whole server (which already holds data) is compared before and after.
// Then: bad configuration is refused at construction, synchronously.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { RedisStore, MemoryStore, createConversationStore, isRedisError } = require('..');
const {
  startRedis,
  ioredisClient,
  captureLogger,
  conversation,
  conversationKey,
  userIndexKey,
} = require('../test-support');

const PREFIX = 'bad:';

let srv;
let redis;
const stores = [];

before(async () => {
  srv = await startRedis();
  redis = ioredisClient(srv.url);
  await redis.connect();
  // Data that is already there: the store's own records (one prefixed key
  // space and one without a prefix) and keys of some other application.
  await redis.set('other-app:config', '{"a":1}');
  await redis.hset('other-app:hash', 'field', 'value');
  await redis.set(conversationKey('unprefixed'), JSON.stringify(conversation('unprefixed', 'u1')));
  await redis.zadd(userIndexKey('u1'), 1, 'unprefixed');
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  if (redis) redis.disconnect();
  if (srv) await srv.stop();
});

function open(store) {
  stores.push(store);
  return store;
}

/** Everything on the server: every key with its type, content and remaining TTL. */
async function snapshot() {
  const dbsize = await srv.cli('DBSIZE');
  const keys = (await srv.cli('KEYS', '*')).split('\n').filter(Boolean).sort();
  const content = {};
  const pttls = {};
  for (const key of keys) {
    const type = await redis.type(key);
    const pttl = await redis.pttl(key);
    let value;
    if (type === 'string') value = await redis.get(key);
    else if (type === 'zset') value = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'hash') value = await redis.hgetall(key);
    else value = `<${type}>`;
    content[key] = { type, hasTtl: pttl >= 0, value };
    pttls[key] = pttl;
  }
  return { dbsize, keys, content, pttls };
}

/** The records present before each case (for MemoryStore: checked through its API). */
const SEEDED = [
  conversation('existing', 'u1'),
  conversation('other', 'u2', { updatedAt: '2024-03-01T13:00:00.000Z' }),
];

const circular = conversation('c', 'u1');
circular.history.push({ role: 'user', parent: circular });

const big = conversation('c', 'u1', { history: [{ role: 'user', content: 'x'.repeat(2048) }] });

/**
 * Each case: what it does (a function of the store), the `code` expected,
 * and a regex the message must match (it must say what is wrong).
 */
const CASES = [
  // ids
  ['set with an empty id', (s) => s.set('', conversation('', 'u1')), 'STORE_INVALID_ID', /id/],
  ['get with an empty id', (s) => s.get(''), 'STORE_INVALID_ID', /id must be a non-empty string/],
  ['delete with an empty id', (s) => s.delete(''), 'STORE_INVALID_ID', /id must be a non-empty string/],
  ['set with a number id', (s) => s.set(42, conversation('42', 'u1')), 'STORE_INVALID_ID', /id must be a non-empty string.*number/],
  ['get with a number id', (s) => s.get(42), 'STORE_INVALID_ID', /id .*number/],
  ['delete with a number id', (s) => s.delete(42), 'STORE_INVALID_ID', /id .*number/],
  ['set with an undefined id', (s) => s.set(undefined, conversation('x', 'u1')), 'STORE_INVALID_ID', /id .*undefined/],
  ['get with an undefined id', (s) => s.get(undefined), 'STORE_INVALID_ID', /id .*undefined/],
  ['delete with an undefined id', (s) => s.delete(undefined), 'STORE_INVALID_ID', /id .*undefined/],
  ['set with an object id', (s) => s.set({ id: 'existing' }, conversation('x', 'u1')), 'STORE_INVALID_ID', /id .*object/],
  ['get with an object id', (s) => s.get({ id: 'existing' }), 'STORE_INVALID_ID', /id .*object/],
  ['delete with an object id', (s) => s.delete(['existing']), 'STORE_INVALID_ID', /id .*array/],
  ['get with an object id that has methods', (s) => s.get({ toString: () => 'existing' }), 'STORE_INVALID_ID', /\bid\b/],
  ['delete with a Buffer id', (s) => s.delete(Buffer.from('existing')), 'STORE_INVALID_ID', /\bid\b/],
  ['get with a NaN id', (s) => s.get(NaN), 'STORE_INVALID_ID', /\bid\b/],
  ['listByUser with a Symbol userId', (s) => s.listByUser(Symbol('u1')), 'STORE_INVALID_USER_ID', /userId/],
  // userId
  ['set with no userId', (s) => {
    const { userId, ...record } = conversation('existing', 'u1');
    assert.ok(userId);
    return s.set('existing', record);
  }, 'STORE_INVALID_USER_ID', /userId/],
  ['set with an empty userId', (s) => s.set('existing', conversation('existing', '')), 'STORE_INVALID_USER_ID', /userId/],
  ['set with a number userId', (s) => s.set('existing', conversation('existing', 7)), 'STORE_INVALID_USER_ID', /userId must be a string/],
  ['set with a null userId', (s) => s.set('existing', conversation('existing', null)), 'STORE_INVALID_USER_ID', /userId must be a string/],
  ['set with an object userId', (s) => s.set('existing', conversation('existing', { id: 'u1' })), 'STORE_INVALID_USER_ID', /userId must be a string/],
  // updatedAt
  ["set with updatedAt 'soon'", (s) => s.set('existing', conversation('existing', 'u1', { updatedAt: 'soon' })), 'STORE_INVALID_UPDATED_AT', /updatedAt.*soon/],
  ["set with updatedAt '2024-13-01'", (s) => s.set('existing', conversation('existing', 'u1', { updatedAt: '2024-13-01' })), 'STORE_INVALID_UPDATED_AT', /updatedAt.*2024-13-01/],
  ['set with a number updatedAt', (s) => s.set('existing', conversation('existing', 'u1', { updatedAt: 1709294400000 })), 'STORE_INVALID_UPDATED_AT', /updatedAt/],
  ['set to a new id with a bad updatedAt', (s) => s.set('brand-new', conversation('brand-new', 'u3', { updatedAt: 'not a date' })), 'STORE_INVALID_UPDATED_AT', /updatedAt/],
  // the record itself
  ['set with a null record', (s) => s.set('existing', null), 'STORE_INVALID_RECORD', /object/],
  ['set with an undefined record', (s) => s.set('existing', undefined), 'STORE_INVALID_RECORD', /object/],
  ['set with a string record', (s) => s.set('existing', JSON.stringify(conversation('existing', 'u1'))), 'STORE_INVALID_RECORD', /object/],
  ['set with an array record', (s) => s.set('existing', [conversation('existing', 'u1')]), 'STORE_INVALID_RECORD', /object/],
  ['set with a number record', (s) => s.set('existing', 42), 'STORE_INVALID_RECORD', /object/],
  ['set with a circular record', (s) => s.set('existing', circular), 'STORE_INVALID_RECORD', /circular/i],
  ['set with a BigInt field', (s) => s.set('existing', conversation('existing', 'u1', { tokens: 10n })), 'STORE_INVALID_RECORD', /BigInt/],
  ['set with an oversized record (maxRecordBytes 1024)', (s, small) => small.set('existing', big), 'STORE_RECORD_TOO_LARGE', /maxRecordBytes|1024/],
  ['set of a new id with an oversized record (maxRecordBytes 1024)', (s, small) => small.set('huge', big), 'STORE_RECORD_TOO_LARGE', /\b1024\b/],
  // listByUser arguments
  ['listByUser with limit 0', (s) => s.listByUser('u1', { limit: 0 }), 'STORE_INVALID_ARGUMENT', /limit/],
  ['listByUser with limit 1.5', (s) => s.listByUser('u1', { limit: 1.5 }), 'STORE_INVALID_ARGUMENT', /limit/],
  ['listByUser with limit -1', (s) => s.listByUser('u1', { limit: -1 }), 'STORE_INVALID_ARGUMENT', /limit/],
  ["listByUser with limit '10'", (s) => s.listByUser('u1', { limit: '10' }), 'STORE_INVALID_ARGUMENT', /limit/],
  ['listByUser with offset -1', (s) => s.listByUser('u1', { offset: -1 }), 'STORE_INVALID_ARGUMENT', /offset/],
  ['listByUser with offset 0.5', (s) => s.listByUser('u1', { offset: 0.5 }), 'STORE_INVALID_ARGUMENT', /offset/],
  ['listByUser with empty fields', (s) => s.listByUser('u1', { fields: [] }), 'STORE_INVALID_ARGUMENT', /fields/],
  // A misspelt limit must not silently list the default page.
  ['listByUser with an unknown option', (s) => s.listByUser('u1', { limt: 10 }), 'STORE_INVALID_ARGUMENT', /unknown option "limt"/],
  ['listByUser with a number userId', (s) => s.listByUser(1), 'STORE_INVALID_USER_ID', /userId .*number/],
  ['listByUser with an undefined userId', (s) => s.listByUser(undefined), 'STORE_INVALID_USER_ID', /userId .*undefined/],
  ['listByUser with an empty userId', (s) => s.listByUser(''), 'STORE_INVALID_USER_ID', /userId/],
];

function checkInputError(expectedCode, messagePattern) {
  return (err) => {
    assert.ok(err instanceof Error, `not an Error: ${err}`);
    assert.notEqual(err.name, 'RedisError');
    assert.equal(typeof err.code, 'string');
    assert.ok(err.code.startsWith('STORE_'), `code ${err.code}`);
    assert.equal(err.code, expectedCode, `${err.code}: ${err.message}`);
    assert.match(err.message, messagePattern);
    assert.equal(isRedisError(err), false, "the chat server's isRedisError must not match it (it would answer 503)");
    return true;
  };
}

describe('bad input', () => {
  for (const storeName of ['MemoryStore', 'RedisStore']) {
    describe(storeName, () => {
      const isRedis = storeName === 'RedisStore';
      let plain;
      let small;

      before(async () => {
        if (isRedis) {
          const options = { url: srv.url, allowPlaintext: true, keyPrefix: PREFIX, logger: null };
          plain = open(new RedisStore(options));
          small = open(new RedisStore({ ...options, maxRecordBytes: 1024 }));
        } else {
          plain = open(new MemoryStore({ logger: null }));
          small = open(new MemoryStore({ logger: null, maxRecordBytes: 1024 }));
        }
        for (const store of [plain, small]) {
          for (const record of SEEDED) await store.set(record.externalId, record);
        }
      });

      for (const [title, act, code, pattern, todo] of CASES) {
        it(`${title}: ${code}, nothing written`, { todo }, async () => {
          const before = isRedis ? await snapshot() : null;
          await assert.rejects(async () => act(plain, small), checkInputError(code, pattern));
          if (isRedis) {
            const afterwards = await snapshot();
            assert.equal(afterwards.dbsize, before.dbsize, 'DBSIZE');
            assert.deepEqual(afterwards.keys, before.keys, 'keys');
            assert.deepEqual(afterwards.content, before.content, 'values');
            // No TTL was refreshed either (TTLs only run down when nothing writes).
            for (const [key, pttl] of Object.entries(afterwards.pttls)) {
              if (pttl >= 0) assert.ok(pttl <= before.pttls[key], `TTL of ${key} went up: ${before.pttls[key]} -> ${pttl} ms`);
            }
          }
          // Through the API too: the seeded records are as they were.
          for (const store of [plain, small]) {
            for (const record of SEEDED) assert.deepEqual(await store.get(record.externalId), record);
            assert.deepEqual(await store.listByUser('u1'), [SEEDED[0]]);
            assert.deepEqual(await store.listByUser('u3'), []);
            assert.equal(await store.get('brand-new'), undefined);
            assert.equal(await store.get('huge'), undefined);
          }
        });
      }

      it('maxRecordBytes bounds the stored JSON (excluded fields do not count)', async () => {
        const sized = (bytes) => {
          const record = conversation('fits', 'u9', { sdkConversationRef: { big: 'y'.repeat(4096) }, pad: '' });
          const { sdkConversationRef, ...persisted } = record;
          assert.ok(sdkConversationRef);
          record.pad = 'z'.repeat(bytes - Buffer.byteLength(JSON.stringify(persisted)));
          return record;
        };
        const exact = sized(1024);
        await small.set('fits', exact);
        const { sdkConversationRef, ...persisted } = exact;
        assert.ok(sdkConversationRef);
        assert.equal(Buffer.byteLength(JSON.stringify(persisted)), 1024);
        assert.deepEqual(await small.get('fits'), persisted);
        await small.delete('fits');
        await assert.rejects(small.set('fits', sized(1025)), checkInputError('STORE_RECORD_TOO_LARGE', /1025/));
        assert.equal(await small.get('fits'), undefined);
      });
    });
  }
});

function checkConfigError(pattern) {
  return (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'StoreConfigError');
    assert.equal(typeof err.code, 'string');
    assert.ok(err.code.startsWith('STORE_'), err.code);
    assert.match(err.message, pattern);
    assert.equal(isRedisError(err), false);
    return true;
  };
}

describe('bad configuration is refused at construction', () => {
  const badStores = [
    ['redis:// without allowPlaintext', () => new RedisStore({ url: 'redis://127.0.0.1:1' }), /allowPlaintext/],
    ['a malformed url', () => new RedisStore({ url: 'not a url' }), /\burl\b/],
    ['an http url', () => new RedisStore({ url: 'http://127.0.0.1:1' }), /\burl\b/],
    ['no url', () => new RedisStore({}), /\burl\b/],
    ['a negative ttlSeconds', () => new RedisStore({ url: 'redis://127.0.0.1:1', allowPlaintext: true, ttlSeconds: -5 }), /ttlSeconds/],
    ['a fractional ttlSeconds', () => new RedisStore({ url: 'rediss://127.0.0.1:1', ttlSeconds: 1.5 }), /ttlSeconds/],
    ['a string ttlSeconds', () => new RedisStore({ url: 'rediss://127.0.0.1:1', ttlSeconds: '60' }), /ttlSeconds/],
    ['MemoryStore with a negative ttlSeconds', () => new MemoryStore({ ttlSeconds: -5 }), /ttlSeconds/],
    ['MemoryStore with maxRecordBytes 0', () => new MemoryStore({ maxRecordBytes: 0 }), /maxRecordBytes/],
    ['excludeFields containing userId', () => new MemoryStore({ excludeFields: ['userId'] }), /excludeFields/],
    ['a schema without parse()', () => new MemoryStore({ schema: {} }), /schema/],
  ];
  for (const [title, build, pattern] of badStores) {
    it(`${title} throws a StoreConfigError naming it`, () => {
      assert.throws(build, checkConfigError(pattern));
    });
  }

  const badEnvs = [
    [{ REDIS_URL: 'not a url' }, /REDIS_URL/],
    [{ REDIS_URL: 'redis://127.0.0.1:1' }, /REDIS_URL/],
    [{ REDIS_TTL: 'abc' }, /REDIS_TTL/],
    [{ REDIS_TTL: '-5' }, /REDIS_TTL/],
    [{ REDIS_URL: 'rediss://h', REDIS_TTL: '1.5' }, /REDIS_TTL/],
    [{ REDIS_URL: 'rediss://h', REDIS_TIMEOUT: 'x' }, /REDIS_TIMEOUT/],
    [{ REDIS_URL: 'rediss://h', REDIS_TIMEOUT: '0' }, /REDIS_TIMEOUT/],
  ];
  for (const [env, pattern] of badEnvs) {
    it(`createConversationStore(${JSON.stringify(env)}) throws naming the variable`, () => {
      const { logger } = captureLogger();
      assert.throws(() => createConversationStore(env, { logger }), checkConfigError(pattern));
    });
  }

  it('createConversationStore({}) returns a MemoryStore and logs a [STORE] line', async () => {
    const { lines, logger } = captureLogger();
    const store = createConversationStore({}, { logger });
    try {
      assert.ok(store instanceof MemoryStore);
      assert.ok(lines.some(({ line }) => line.includes('[STORE]')), JSON.stringify(lines));
      await store.set('c1', conversation('c1', 'u1'));
      assert.equal((await store.get('c1')).userId, 'u1');
    } finally {
      await store.close();
    }
  });

  it('createConversationStore with REDIS_URL returns a RedisStore with the REDIS_* settings', async () => {
    const { lines, logger } = captureLogger();
    const store = createConversationStore(
      { REDIS_URL: srv.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_TTL: '120', REDIS_KEY_PREFIX: 'env:' },
      { logger },
    );
    try {
      assert.ok(store instanceof RedisStore);
      assert.ok(lines.some(({ line }) => line.includes('[STORE]')), JSON.stringify(lines));
      await store.set('c1', conversation('c1', 'u1'));
      const ttl = Number(await srv.cli('TTL', conversationKey('c1', 'env:')));
      assert.ok(ttl > 115 && ttl <= 120, `TTL ${ttl}`);
    } finally {
      await store.close();
      await redis.del(conversationKey('c1', 'env:'), userIndexKey('u1', 'env:'));
    }
  });
});
