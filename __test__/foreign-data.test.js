'use strict';

// Data the store did not write, at the keys it reads: a hash where a record
// should be, a string where an index should be, records that are a JSON
// array, a number, a huge string, bytes that are not UTF-8, or an object
// whose userId is not a string. Each is written raw (sendCommands, not the
// store). Every read gives a clear error naming the key, or (listByUser)
// skips it with a [STORE] warning while the real records are still listed;
// and nothing at those keys changes. On one server and on a cluster.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore, StoreDataError, RedisError } = require('..');
const {
  startRedis,
  startCluster,
  sendCommands,
  conversation,
  conversationKey,
  userIndexKey,
  isoAtMinute: iso,
  captureLogger,
  pollUntil,
} = require('../test-support');

let srv;
let cluster;
let prefixCounter = 0;
let opened = [];

before(async () => {
  [srv, cluster] = await Promise.all([startRedis(), startCluster({ replicasPerPrimary: 0 })]);
});

afterEach(async () => {
  const stores = opened;
  opened = [];
  await Promise.all(stores.map((s) => s.close()));
});

after(async () => {
  await Promise.all([srv?.stop(), cluster?.stop()]);
});

const TARGETS = [
  ['one server', () => ({ url: srv.url }), async () => srv],
  ['a cluster', () => ({ url: cluster.seedUrl, cluster: true }), (key) => cluster.nodeForKey(key)],
];

for (const [where, connection, nodeFor] of TARGETS) {
  describe(`foreign data on ${where}`, () => {
    /** A store on a fresh prefix, the raw commands for its keys, and its log. */
    function setup(options = {}) {
      const prefix = `f${++prefixCounter}:`;
      const log = captureLogger();
      const store = new RedisStore({ ...connection(), allowPlaintext: true, keyPrefix: prefix, logger: log.logger, ...options });
      opened.push(store);
      const send = async (key, ...commands) => sendCommands({ port: (await nodeFor(key)).port }, commands);
      const record = (id) => conversationKey(id, prefix);
      const index = (userId) => userIndexKey(userId, prefix);
      /** TYPE, value (DUMP) and expiry time of each key: what "nothing changed" compares. */
      const snapshot = async (...keys) =>
        Promise.all(keys.map(async (key) => send(key, ['TYPE', key], ['DUMP', key], ['PEXPIRETIME', key])));
      return { store, log, send, record, index, snapshot };
    }

    /** Lists `id` in u1's index next to a real record, and checks each read. */
    async function checkForeignRecord(value, expectedReason) {
      const { store, log, send, record, index, snapshot } = setup();
      await store.set('real', conversation('real', 'u1', { updatedAt: iso(1) }));
      await send(record('foreign'), ['SET', record('foreign'), value]);
      await send(index('u1'), ['ZADD', index('u1'), String(Date.parse(iso(2))), 'foreign']);
      const before = await snapshot(record('foreign'), index('u1'));

      const err = await store.get('foreign').then(
        () => assert.fail('get of foreign data resolved'),
        (e) => e,
      );
      assert.ok(err instanceof StoreDataError, `${err.name}: ${err.message}`);
      assert.equal(err.code, 'STORE_CORRUPT_RECORD');
      assert.ok(err.message.includes(record('foreign')), `names the key: ${err.message}`);
      assert.match(err.message, expectedReason);

      const listed = await store.listByUser('u1');
      assert.deepEqual(
        listed.map((r) => r.externalId),
        ['real'],
      );
      // Log lines reach JS on their own queue, possibly after the page.
      await pollUntil(() => log.linesAt('warn').some((line) => line.includes(record('foreign'))), {
        timeoutMs: 5000,
        what: 'a warning naming the key',
      });
      const warned = log.linesAt('warn').find((line) => line.includes(record('foreign')));
      assert.match(warned, /^\[STORE\] listByUser\("u1"\): skipped a record/);
      const fields = await store.listByUser('u1', { fields: ['externalId'] });
      assert.deepEqual(fields, [{ externalId: 'real' }]);

      assert.deepEqual(await snapshot(record('foreign'), index('u1')), before, 'nothing changed');
    }

    it('a record that is a JSON array', () => checkForeignRecord('[{"userId":"u1"}]', /not a JSON object/));

    it('a record that is a number', () => checkForeignRecord('42', /not a JSON object/));

    it('a huge string that is not JSON', () => checkForeignRecord('x'.repeat(2 << 20), /not a JSON object/));

    it('a record whose userId is not a string', () =>
      checkForeignRecord(JSON.stringify({ userId: 5, history: [{ userId: 'u1' }], updatedAt: iso(2) }), /no string userId/));

    it('a record that is not UTF-8', () =>
      checkForeignRecord(Buffer.concat([Buffer.from('{"userId":"u1","title":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), /not UTF-8/));

    it('a hash at conv:<id>: get and delete name the key, listByUser skips it with a warning', async () => {
      const { store, log, send, record, index, snapshot } = setup();
      await store.set('real', conversation('real', 'u1', { updatedAt: iso(1) }));
      await send(record('foreign'), ['HSET', record('foreign'), 'userId', 'u1']);
      await send(index('u1'), ['ZADD', index('u1'), String(Date.parse(iso(2))), 'foreign']);
      const before = await snapshot(record('foreign'), index('u1'));

      for (const call of [() => store.get('foreign'), () => store.delete('foreign')]) {
        const err = await call().then(
          () => assert.fail('resolved'),
          (e) => e,
        );
        assert.ok(err instanceof RedisError, `${err.name}: ${err.message}`);
        assert.equal(err.code, 'STORE_REPLY');
        assert.ok(err.message.includes(record('foreign')), `names the key: ${err.message}`);
        assert.match(err.message, /WRONGTYPE.*another type of value/);
      }
      assert.deepEqual(
        (await store.listByUser('u1')).map((r) => r.externalId),
        ['real'],
      );
      // MGET reads a hash as nil: the background pruning finds out, warns, and leaves it.
      await pollUntil(() => log.linesAt('warn').some((line) => line.includes(record('foreign'))), {
        timeoutMs: 5000,
        what: 'a warning naming the hash',
      });
      assert.match(log.linesAt('warn').find((line) => line.includes(record('foreign'))), /another type of value.*left in place/);
      assert.deepEqual(await snapshot(record('foreign'), index('u1')), before, 'nothing changed');
    });

    it('a string at user:<id>:conversations: listByUser names the key, nothing changes', async () => {
      const { store, send, index, snapshot } = setup();
      await send(index('u1'), ['SET', index('u1'), 'not an index']);
      const before = await snapshot(index('u1'));
      const err = await store.listByUser('u1').then(
        () => assert.fail('resolved'),
        (e) => e,
      );
      assert.ok(err instanceof RedisError, `${err.name}: ${err.message}`);
      assert.equal(err.code, 'STORE_REPLY');
      assert.ok(err.message.includes(index('u1')), `names the key: ${err.message}`);
      assert.match(err.message, /another type of value/);
      assert.deepEqual(await snapshot(index('u1')), before, 'nothing changed');
    });

    if (where === 'one server') {
      it('a set of a record up to 8 KB over a hash at conv:<id> rejects and writes nothing (one script)', async () => {
        const { store, send, record, index, snapshot } = setup();
        await send(record('foreign'), ['HSET', record('foreign'), 'userId', 'u1']);
        const before = await snapshot(record('foreign'), index('u1'));
        const err = await store.set('foreign', conversation('foreign', 'u1', { updatedAt: iso(1) })).then(
          () => assert.fail('resolved'),
          (e) => e,
        );
        assert.ok(err instanceof RedisError, `${err.name}: ${err.message}`);
        assert.equal(err.code, 'STORE_REPLY');
        assert.match(err.message, /another type of value/);
        assert.deepEqual(await snapshot(record('foreign'), index('u1')), before, 'nothing changed');
      });

      // (The cluster's sliding get is one GETEX, which reads and refreshes at once.)
      it('slidingExpiry never puts a TTL on a foreign value', async () => {
        const { store, send, record, snapshot } = setup({ slidingExpiry: true });
        await send(record('foreign'), ['SET', record('foreign'), '[1,2,3]']);
        const before = await snapshot(record('foreign'));
        await assert.rejects(store.get('foreign'), { code: 'STORE_CORRUPT_RECORD' });
        assert.deepEqual(await snapshot(record('foreign')), before, 'no TTL set');
      });
    }
  });
}
