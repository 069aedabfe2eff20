'use strict';

// No lost updates: `set(id, record, { ifUpdatedAt })` writes only over the
// version it names, and `update(id, fn)` retries on a conflict, on one
// server, on the cluster and in memory. The contention test runs 50
// concurrent edits from two store instances; the same edits with plain
// get-then-set lose some, which shows the test can fail.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { z } = require('zod');

const { RedisStore, MemoryStore, StoreConflictError, StoreInputError, isRedisError } = require('..');
const { startRedis, startCluster, conversation, isoAtMinute, ioredisClient, IoredisConversationStore } = require('../test-support');

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

/** Two stores on one key space (one instance twice for memory, which shares nothing). */
const TARGETS = {
  memory: (options = {}) => {
    const store = new MemoryStore({ logger: null, ...options });
    return { first: store, second: store };
  },
  'one server': (options = {}) => twoRedisStores({ url: srv.url }, options),
  cluster: (options = {}) => twoRedisStores({ url: cluster.seedUrl, cluster: true }, options),
};

function twoRedisStores(connection, options) {
  const keyPrefix = `ce${++prefixCounter}:`;
  const make = () => {
    const store = new RedisStore({ ...connection, allowPlaintext: true, keyPrefix, logger: null, ...options });
    opened.push(store);
    return store;
  };
  return { first: make(), second: make(), keyPrefix };
}

for (const [name, open] of Object.entries(TARGETS)) {
  describe(`conditional set (${name})`, () => {
    it('writes over the named version only, and a conflict writes nothing', async () => {
      const { first } = open();
      const v1 = conversation('c1', 'u1', { updatedAt: isoAtMinute(1) });
      await first.set('c1', v1, { ifUpdatedAt: null });
      const v2 = { ...v1, title: 'renamed', updatedAt: isoAtMinute(2) };
      await first.set('c1', v2, { ifUpdatedAt: v1.updatedAt });
      assert.deepEqual(await first.get('c1'), v2);

      const stale = { ...v1, title: 'stale', updatedAt: isoAtMinute(3) };
      const err = await first.set('c1', stale, { ifUpdatedAt: v1.updatedAt }).catch((e) => e);
      assert.ok(err instanceof StoreConflictError, String(err));
      assert.equal(err.name, 'StoreConflictError');
      assert.equal(err.code, 'STORE_CONFLICT');
      assert.equal(isRedisError(err), false);
      assert.match(err.message, new RegExp(v2.updatedAt.replace(/\./g, '\\.')));
      await assert.rejects(first.set('c1', stale, { ifUpdatedAt: null }), { code: 'STORE_CONFLICT' });
      assert.deepEqual(await first.get('c1'), v2);
      // Nothing listed twice or moved: the index still holds the one version.
      assert.deepEqual(await first.listByUser('u1'), [v2]);
    });

    it('compares the exact text: an equal instant written differently conflicts', async () => {
      const { first } = open();
      const v1 = conversation('c2', 'u1', { updatedAt: '2024-03-01T12:00:00.000Z' });
      await first.set('c2', v1);
      await assert.rejects(first.set('c2', v1, { ifUpdatedAt: '2024-03-01T12:00:00Z' }), StoreConflictError);
      await assert.rejects(first.set('missing', v1, { ifUpdatedAt: v1.updatedAt }), /no record is stored/);
    });

    it('moves the id between owners as a plain set does', async () => {
      const { first } = open();
      const v1 = conversation('c3', 'u1', { updatedAt: isoAtMinute(1) });
      await first.set('c3', v1);
      const moved = { ...v1, userId: 'u2', updatedAt: isoAtMinute(2) };
      await first.set('c3', moved, { ifUpdatedAt: v1.updatedAt });
      assert.deepEqual(await first.listByUser('u1'), []);
      assert.deepEqual(await first.listByUser('u2'), [moved]);
    });

    it('refuses a bad ifUpdatedAt with an input error and writes nothing', async () => {
      const { first } = open();
      for (const ifUpdatedAt of [5, {}, false]) {
        await assert.rejects(first.set('c4', conversation('c4', 'u1'), { ifUpdatedAt }), (err) => {
          assert.ok(err instanceof StoreInputError);
          assert.equal(err.code, 'STORE_INVALID_ARGUMENT');
          return true;
        });
      }
      // A misspelt option is refused, not taken for a plain write.
      await assert.rejects(first.set('c4', conversation('c4', 'u1'), { ifUpdateAt: null }), /unknown option "ifUpdateAt"/);
      await assert.rejects(first.update('c4', () => conversation('c4', 'u1'), { retry: 3 }), { code: 'STORE_INVALID_ARGUMENT' });
      assert.equal(await first.get('c4'), undefined);
    });
  });

  describe(`update (${name})`, () => {
    it('creates, edits with a fresh, strictly later updatedAt, and resolves what it wrote', async () => {
      const { first } = open();
      const created = await first.update('u-c1', (current) => {
        assert.equal(current, undefined);
        return conversation('u-c1', 'u1', { history: [], updatedAt: undefined });
      });
      assert.equal(typeof created.updatedAt, 'string');
      assert.deepEqual(await first.get('u-c1'), JSON.parse(JSON.stringify(created)));

      // A stored updatedAt in the future: the new one is still later.
      const future = new Date(Date.now() + 60_000).toISOString();
      await first.set('u-c1', { ...created, updatedAt: future });
      const edited = await first.update('u-c1', async (current) => ({ ...current, title: 'edited' }));
      assert.ok(Date.parse(edited.updatedAt) > Date.parse(future), `${edited.updatedAt} after ${future}`);
      assert.equal((await first.get('u-c1')).title, 'edited');

      // fn's own updatedAt is kept; undefined writes nothing.
      const own = isoAtMinute(5);
      assert.equal((await first.update('u-c1', (current) => ({ ...current, updatedAt: own }))).updatedAt, own);
      assert.equal(await first.update('u-c1', () => undefined), undefined);
      assert.equal((await first.get('u-c1')).updatedAt, own);
    });

    it('gives up after `retries` conflicts with StoreConflictError', async () => {
      const { first, second } = open();
      await first.set('u-c2', conversation('u-c2', 'u1'));
      let calls = 0;
      const err = await first
        .update(
          'u-c2',
          async (current) => {
            calls += 1;
            // Another writer gets in between every read and write.
            await second.update('u-c2', (other) => ({ ...other, title: `other ${calls}` }));
            return { ...current, title: 'mine' };
          },
          { retries: 2 },
        )
        .catch((e) => e);
      assert.ok(err instanceof StoreConflictError, String(err));
      assert.equal(calls, 3);
      assert.equal((await first.get('u-c2')).title, 'other 3');
    });

    it('50 concurrent appends from two instances: all present, none twice; get-then-set loses some', async () => {
      const { first, second } = open();
      const stores = [first, second];
      const base = conversation('u-c3', 'u1', { history: [] });
      await first.set('u-c3', base);
      // Each edit yields between read and write, so the edits interleave.
      const append = (current, n) => new Promise((resolve) => setImmediate(() => resolve({ ...current, history: [...current.history, { role: 'user', content: `m${n}` }] })));
      const count = 50;
      await Promise.all(
        Array.from({ length: count }, (_, n) => stores[n % 2].update('u-c3', (current) => append(current, n), { retries: 1000 })),
      );
      const contents = (await first.get('u-c3')).history.map((message) => message.content);
      assert.equal(contents.length, count);
      assert.deepEqual([...contents].sort(), Array.from({ length: count }, (_, n) => `m${n}`).sort());

      await first.set('u-c3', base);
      await Promise.all(
        Array.from({ length: count }, async (_, n) => {
          const store = stores[n % 2];
          await store.set('u-c3', await append(await store.get('u-c3'), n));
        }),
      );
      const lossy = (await first.get('u-c3')).history.length;
      assert.ok(lossy < count, `plain get-then-set kept all ${count} appends; the contention test would prove nothing`);
    });

    it('compares the stored text even when a schema turns updatedAt into a Date', async () => {
      const schema = z.object({ userId: z.string(), updatedAt: z.coerce.date(), title: z.string().optional() }).passthrough();
      const { first } = open({ schema });
      const stored = conversation('u-c4', 'u1', { updatedAt: '2024-03-01T12:00:00Z' });
      await first.set('u-c4', stored);
      const written = await first.update('u-c4', (current) => {
        assert.ok(current.updatedAt instanceof Date);
        return { ...current, title: 'typed' };
      });
      assert.ok(Date.parse(written.updatedAt) > Date.parse(stored.updatedAt));
      assert.equal((await first.get('u-c4')).title, 'typed');
    });

    it('edits a record stored without updatedAt', async () => {
      const { first } = open();
      await first.set('u-c5', conversation('u-c5', 'u1', { updatedAt: undefined }));
      const written = await first.update('u-c5', (current) => ({ ...current, title: 'now dated' }));
      assert.equal(typeof written.updatedAt, 'string');
      assert.equal((await first.get('u-c5')).title, 'now dated');
    });

    it('refuses bad arguments', async () => {
      const { first } = open();
      await assert.rejects(first.update('u-c6', 'not a function'), { code: 'STORE_INVALID_ARGUMENT' });
      await assert.rejects(first.update('u-c6', () => undefined, { retries: -1 }), { code: 'STORE_INVALID_ARGUMENT' });
      await assert.rejects(first.update(42, () => undefined), { code: 'STORE_INVALID_ID' });
    });
  });
}

describe('conditional set over records the ioredis store wrote', () => {
  it('compares their updatedAt the same way', async () => {
    const keyPrefix = `ce${++prefixCounter}:`;
    const client = ioredisClient(srv.url, { keyPrefix });
    await client.connect();
    try {
      const io = new IoredisConversationStore(client);
      const v1 = conversation('io1', 'u1', { updatedAt: isoAtMinute(7) });
      await io.set('io1', v1);
      const store = new RedisStore({ url: srv.url, allowPlaintext: true, keyPrefix, logger: null });
      opened.push(store);
      await assert.rejects(store.set('io1', v1, { ifUpdatedAt: isoAtMinute(6) }), StoreConflictError);
      const v2 = { ...v1, title: 'over ioredis', updatedAt: isoAtMinute(8) };
      await store.set('io1', v2, { ifUpdatedAt: v1.updatedAt });
      assert.deepEqual(await io.get('io1'), v2);
    } finally {
      client.disconnect();
    }
  });
});
