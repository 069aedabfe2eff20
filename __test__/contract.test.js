'use strict';

// The behaviour promised in the contract (docs/contract.md), run
// against both stores: MemoryStore and RedisStore (on a throwaway
// redis-server, on a cluster, and behind Redis Sentinel). Each test gets a fresh key space: a new MemoryStore, or a
// RedisStore with a keyPrefix of its own. Where the Redis layout is part of
// the promise, the raw keys are checked with redis-cli too.

const fs = require('node:fs');
const path = require('node:path');
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { z } = require('zod');

const { RedisStore, MemoryStore } = require('..');
const {
  startRedis,
  startCluster,
  startSentinels,
  conversation,
  conversationKey,
  userIndexKey,
  isoAtMinute: iso,
  liveSdkObject,
  captureLogger,
  pollUntil,
} = require('../test-support');

let srv;
let cluster;
let sentinelSet;
let prefixCounter = 0;
/** Stores opened by the current test, closed after it. */
let opened = [];

/** The least-privilege ACL user, with exactly the rule the README gives. */
const ACL_USER = 'conversation-store';
const ACL_PASSWORD = 'least-privilege';

/** The README's ACL rule, its key patterns under the tests' prefixes (`t<n>:`). */
function readmeAclRule() {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const line = readme.split('\n').find((l) => l.startsWith(`ACL SETUSER ${ACL_USER} `));
  assert.ok(line, 'the README gives the ACL rule');
  return line
    .split(' ')
    .slice(3)
    .map((part) => (part === '>PASSWORD' ? `>${ACL_PASSWORD}` : part.replace(/^~/, '~t*:')));
}

before(async () => {
  [srv, cluster, sentinelSet] = await Promise.all([startRedis(), startCluster(), startSentinels({ quick: true })]);
  const rule = readmeAclRule();
  for (const node of [srv, ...cluster.nodes]) {
    assert.equal(await node.cli('ACL', 'SETUSER', ACL_USER, ...rule), 'OK');
  }
});

afterEach(async () => {
  const stores = opened;
  opened = [];
  await Promise.all(stores.map((s) => s.close()));
});

after(async () => {
  await Promise.all([srv?.stop(), cluster?.stop(), sentinelSet?.stop()]);
});

/**
 * Each factory returns a context for one test:
 *   store     — the store under test (options passed through)
 *   another(o) — a second store on the same key space, options `o` on top
 *               (Redis only; memory instances share nothing)
 *   raw       — for Redis: key(name) (with prefix), cli(...args); null for memory
 */
/** A RedisStore on one server, on the cluster or behind sentinels, with raw access to the key's node. */
function redisFactory(target, { asAclUser = false } = {}) {
  return async (opts = {}) => {
    const keyPrefix = `t${++prefixCounter}:`;
    const asUser = (url) => (asAclUser ? url.replace('redis://', `redis://${ACL_USER}:${ACL_PASSWORD}@`) : url);
    const connection = {
      single: () => ({ url: asUser(srv.url) }),
      cluster: () => ({ url: asUser(cluster.seedUrl), cluster: true }),
      sentinel: () => ({ sentinels: sentinelSet.sentinelUrls, sentinelName: sentinelSet.name }),
    }[target]();
    const make = (more = {}) => {
      const store = new RedisStore({ ...connection, allowPlaintext: true, keyPrefix, logger: null, ...opts, ...more });
      opened.push(store);
      return store;
    };
    // Every raw command here names its key first: send it to the node that owns it.
    const cli = {
      single: (...args) => srv.cli(...args),
      cluster: async (...args) => (await cluster.nodeForKey(args[1])).cli(...args),
      sentinel: async (...args) => (await sentinelSet.primary()).cli(...args),
    }[target];
    return {
      store: make(),
      another: make,
      raw: {
        prefix: keyPrefix,
        key: (name) => `${keyPrefix}${name}`,
        cli,
        index: (userId) => userIndexKey(userId, keyPrefix),
        record: (id) => conversationKey(id, keyPrefix),
      },
    };
  };
}

const FACTORIES = [
  [
    'MemoryStore',
    async (opts = {}) => {
      const store = new MemoryStore({ logger: null, ...opts });
      opened.push(store);
      return { store, raw: null };
    },
  ],
  ['RedisStore', redisFactory('single')],
  ['RedisStore on a cluster', redisFactory('cluster')],
  ['RedisStore behind Redis Sentinel', redisFactory('sentinel')],
  ['RedisStore as a least-privilege ACL user', redisFactory('single', { asAclUser: true })],
  ['RedisStore on a cluster as a least-privilege ACL user', redisFactory('cluster', { asAclUser: true })],
];

/** The chat server's StoredConversationSchema, with defaults for older records. */
const StoredConversationSchema = z
  .object({
    externalId: z.string(),
    history: z.array(z.any()).default([]),
    userId: z.string(),
    tenantId: z.string().default('default-tenant'),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
    status: z.enum(['active', 'completed', 'abandoned']).default('active'),
    workflowId: z.string().optional(),
    metadata: z.record(z.any()).optional(),
  })
  .passthrough();

const ids = (records) => records.map((r) => r.externalId);

for (const [storeName, makeContext] of FACTORIES) {
  describe(`contract: ${storeName}`, () => {
    const isRedis = storeName.startsWith('RedisStore');

    it('set then get round-trips the record', async () => {
      const { store } = await makeContext();
      const record = conversation('c1', 'u1', {
        updatedAt: iso(5),
        workflowId: 'wf-1',
        currentStep: 'collect',
        stepData: { answers: [1, 2, { nested: null }] },
        metadata: { source: 'web' },
      });
      assert.equal(await store.set('c1', record), undefined);
      assert.deepEqual(await store.get('c1'), record);
      // Overwriting replaces the whole record.
      const updated = { ...record, status: 'completed', history: [] };
      await store.set('c1', updated);
      assert.deepEqual(await store.get('c1'), updated);
    });

    it('get of a missing id resolves undefined', async () => {
      const { store } = await makeContext();
      assert.equal(await store.get('never-written'), undefined);
      await store.set('present', conversation('present', 'u1'));
      assert.equal(await store.get('absent'), undefined);
    });

    it('never stores sdkConversationRef, and keeps unknown fields verbatim', async () => {
      const { store, raw } = await makeContext();
      const record = {
        ...conversation('c1', 'u1', { updatedAt: iso(1) }),
        sdkConversationRef: liveSdkObject(),
        // Fields this version of the store knows nothing about.
        futureField: { deep: [1, 'two', null, { three: true }], big: 1e21, small: -1.5e-7 },
        'key with "quotes" and \\': 'é ✓ \u2028 \ud83d\ude00',
        metadata: { sdkConversationRef: 'a nested field of that name is data, not the SDK object' },
      };
      await store.set('c1', record);
      const { sdkConversationRef, ...persisted } = record;
      assert.ok(sdkConversationRef);
      const got = await store.get('c1');
      assert.equal(Object.hasOwn(got, 'sdkConversationRef'), false);
      assert.deepEqual(got, persisted);
      // The original object is left alone.
      assert.equal(record.sdkConversationRef, sdkConversationRef);
      if (raw) {
        assert.equal(await raw.cli('GET', raw.record('c1')), JSON.stringify(persisted));
      }
      const [listed] = await store.listByUser('u1');
      assert.deepEqual(listed, persisted);
    });

    it('a custom excludeFields list replaces the default', async () => {
      const { store, raw } = await makeContext({ excludeFields: ['socket', 'draft'] });
      const record = {
        ...conversation('c1', 'u1', { updatedAt: iso(1) }),
        socket: liveSdkObject(),
        draft: 'unsent text',
        sdkConversationRef: { plain: 'data' }, // not excluded by this list
      };
      await store.set('c1', record);
      const { socket, draft, ...persisted } = record;
      assert.ok(socket && draft);
      assert.deepEqual(await store.get('c1'), persisted);
      if (raw) {
        assert.equal(await raw.cli('GET', raw.record('c1')), JSON.stringify(persisted));
      }
    });

    it('schema: defaults are filled on get and listByUser', async () => {
      const { store } = await makeContext({ schema: StoredConversationSchema });
      // An older record: no status, no tenantId, no history.
      const { status, tenantId, history, ...old } = conversation('old', 'u1', { updatedAt: iso(1), extra: 'kept' });
      assert.ok(status && tenantId && history);
      await store.set('old', old);
      const expected = { ...old, status: 'active', tenantId: 'default-tenant', history: [] };
      assert.deepEqual(await store.get('old'), expected);
      assert.deepEqual(await store.listByUser('u1'), [expected]);
    });

    it('listByUser: newest first by updatedAt, at most 50 by default', async () => {
      const { store } = await makeContext();
      // 55 records written in a scrambled order, concurrently.
      const minutes = Array.from({ length: 55 }, (_, i) => (i * 37) % 55);
      await Promise.all(minutes.map((m) => store.set(`c${m}`, conversation(`c${m}`, 'u1', { updatedAt: iso(m) }))));
      const listed = await store.listByUser('u1');
      assert.equal(listed.length, 50);
      const newestFirst = Array.from({ length: 55 }, (_, i) => `c${54 - i}`);
      assert.deepEqual(ids(listed), newestFirst.slice(0, 50));
      // Paging.
      assert.deepEqual(ids(await store.listByUser('u1', { limit: 100 })), newestFirst);
      assert.deepEqual(ids(await store.listByUser('u1', { limit: 10, offset: 20 })), newestFirst.slice(20, 30));
      assert.deepEqual(ids(await store.listByUser('u1', { offset: 50 })), newestFirst.slice(50));
      assert.deepEqual(await store.listByUser('u1', { offset: 55 }), []);
      assert.deepEqual(ids(await store.listByUser('u1', { limit: 1 })), ['c54']);
      // A different updatedAt moves a record within the order.
      await store.set('c0', conversation('c0', 'u1', { updatedAt: iso(1000) }));
      assert.deepEqual(ids(await store.listByUser('u1', { limit: 2 })), ['c0', 'c54']);
      assert.deepEqual(await store.listByUser('nobody'), []);
    });

    it('listByUser: updatedAt offsets and fractions order by the instant', async () => {
      const { store } = await makeContext();
      // 10:00+05:30 is 04:30Z, the earliest of these.
      await store.set('offset', conversation('offset', 'u1', { updatedAt: '2024-03-01T10:00:00+05:30' }));
      await store.set('fraction', conversation('fraction', 'u1', { updatedAt: '2024-03-01T05:00:00.5Z' }));
      await store.set('plain', conversation('plain', 'u1', { updatedAt: '2024-03-01T05:00:00.000Z' }));
      assert.deepEqual(ids(await store.listByUser('u1')), ['fraction', 'plain', 'offset']);
    });

    it('listByUser with fields returns only those fields', async () => {
      const { store } = await makeContext({ schema: StoredConversationSchema });
      await store.set('a', conversation('a', 'u1', { updatedAt: iso(1), metadata: { x: 1 } }));
      const { status, ...noStatus } = conversation('b', 'u1', { updatedAt: iso(2) });
      assert.ok(status);
      await store.set('b', noStatus);
      const listed = await store.listByUser('u1', { fields: ['externalId', 'updatedAt'] });
      assert.deepEqual(listed, [
        { externalId: 'b', updatedAt: iso(2) },
        { externalId: 'a', updatedAt: iso(1) },
      ]);
      // With paging too.
      assert.deepEqual(await store.listByUser('u1', { fields: ['externalId'], limit: 1, offset: 1 }), [
        { externalId: 'a' },
      ]);
    });

    it("never returns another user's record", async () => {
      const { store } = await makeContext();
      const users = ['u1', 'u10', 'u1:x', 'U1', 'u 1'];
      await Promise.all(
        users.flatMap((user, u) =>
          [0, 1, 2].map((n) => store.set(`${u}-${n}`, conversation(`${u}-${n}`, user, { updatedAt: iso(u * 10 + n) }))),
        ),
      );
      for (const [u, user] of users.entries()) {
        const listed = await store.listByUser(user);
        assert.deepEqual(ids(listed), [`${u}-2`, `${u}-1`, `${u}-0`], `list of ${user}`);
        for (const record of listed) assert.equal(record.userId, user);
      }
    });

    it("a userId change moves the record between users' indexes", async () => {
      const { store, raw } = await makeContext();
      await store.set('c1', conversation('c1', 'u1', { updatedAt: iso(1) }));
      await store.set('keep', conversation('keep', 'u1', { updatedAt: iso(0) }));
      await store.set('c1', conversation('c1', 'u2', { updatedAt: iso(2) }));
      assert.deepEqual(ids(await store.listByUser('u1')), ['keep']);
      assert.deepEqual(ids(await store.listByUser('u2')), ['c1']);
      assert.equal((await store.get('c1')).userId, 'u2');
      if (raw) {
        // Gone from the old index in the same step as the write (no listing needed to prune it).
        await store.set('c1', conversation('c1', 'u3', { updatedAt: iso(3) }));
        assert.equal(await raw.cli('ZSCORE', raw.index('u2'), 'c1'), '');
        assert.equal(await raw.cli('ZSCORE', raw.index('u1'), 'c1'), '');
        assert.equal(Number(await raw.cli('ZSCORE', raw.index('u3'), 'c1')), Date.parse(iso(3)));
      } else {
        await store.set('c1', conversation('c1', 'u3', { updatedAt: iso(3) }));
      }
      assert.deepEqual(await store.listByUser('u2'), []);
      // Moving it back works too.
      await store.set('c1', conversation('c1', 'u1', { updatedAt: iso(4) }));
      assert.deepEqual(ids(await store.listByUser('u1')), ['c1', 'keep']);
      assert.deepEqual(await store.listByUser('u3'), []);
    });

    it('owner changes and deletes work for userIds with quotes, backslashes, newlines and non-ASCII, and with nested userId fields', async () => {
      const { store, raw } = await makeContext();
      const users = ['a"b', 'x\\', 'line\nbreak', 'ü😀', 'plain'];
      const nested = { history: [{ role: 'user', userId: 'someone-else' }], metadata: { userId: 42 } };
      for (const [i, user] of users.entries()) {
        await store.set('c1', conversation('c1', user, { updatedAt: iso(i), ...nested }));
        await store.set(`own-${i}`, conversation(`own-${i}`, user, { updatedAt: iso(-1) }));
        for (const [j, other] of users.entries()) {
          const expected = j === i ? ['c1', `own-${j}`] : j < i ? [`own-${j}`] : [];
          assert.deepEqual(ids(await store.listByUser(other)), expected, `after moving c1 to ${JSON.stringify(user)}, list of ${JSON.stringify(other)}`);
          if (raw && j !== i) assert.equal(await raw.cli('ZSCORE', raw.index(other), 'c1'), '');
        }
      }
      assert.deepEqual(await store.listByUser('someone-else'), []);
      await store.delete('c1');
      assert.deepEqual(ids(await store.listByUser('plain')), ['own-4']);
      if (raw) assert.equal(await raw.cli('ZSCORE', raw.index('plain'), 'c1'), '');
    });

    it('owner changes and deletes work whatever surrounds userId in the record (the store reads only the head or the tail when it can)', async () => {
      const { store, raw } = await makeContext();
      // userId first; after a string holding brackets; after nested data; after a long text.
      const shapes = [
        (user, i) => ({ userId: user, externalId: 'h', updatedAt: iso(i), history: [{ userId: 'decoy' }] }),
        (user, i) => ({ title: 'a [draft] {x}', userId: user, updatedAt: iso(i), history: [] }),
        (user, i) => ({ history: [{ userId: 'decoy' }], userId: user, updatedAt: iso(i) }),
        (user, i) => ({ note: 'x'.repeat(3000), userId: user, updatedAt: iso(i) }),
        // A long history first, as real records have it: the tail settles it...
        (user, i) => ({ history: [{ content: 'x'.repeat(3000), userId: 'decoy' }], userId: user, updatedAt: iso(i) }),
        (user, i) => ({
          history: [{ content: 'y'.repeat(3000) }],
          userId: user,
          updatedAt: iso(i),
          metadata: { note: 'a}"b\\', list: [{ x: '[' }, ']{'], userId: 7 },
        }),
        // ...unless it cannot: a nested userId last, a key that ends in "userId, a short record.
        (user, i) => ({ note: 'z'.repeat(3000), userId: user, updatedAt: iso(i), history: [{ userId: 'decoy' }] }),
        (user, i) => ({ note: 'w'.repeat(3000), userId: user, updatedAt: iso(i), 'a"userId': 'decoy' }),
        (user, i) => ({ history: [{ userId: 'decoy' }], userId: user, updatedAt: iso(i), tail: '}' }),
        (user, i) => ({ 'a"userId': 'decoy', history: [{ content: 'v'.repeat(3000) }], userId: user, updatedAt: iso(i) }),
        (user, i) => ({ 'a"userId': 'decoy', userId: user, updatedAt: iso(i) }),
      ];
      for (const [s, shape] of shapes.entries()) {
        const id = `head-${s}`;
        await store.set(id, { ...shape('h-a', 1), externalId: id });
        await store.set(id, { ...shape('h-b', 2), externalId: id });
        assert.deepEqual(ids(await store.listByUser('h-a')).filter((x) => x === id), [], `shape ${s}: left h-a`);
        assert.ok(ids(await store.listByUser('h-b')).includes(id), `shape ${s}: listed for h-b`);
        if (raw) assert.equal(await raw.cli('ZSCORE', raw.index('h-a'), id), '', `shape ${s}: h-a index`);
        await store.delete(id);
        if (raw) assert.equal(await raw.cli('ZSCORE', raw.index('h-b'), id), '', `shape ${s}: deleted from h-b index`);
      }
      assert.deepEqual(await store.listByUser('decoy'), []);
    });

    it('delete is idempotent and removes the index entry', async () => {
      const { store, raw } = await makeContext();
      await store.set('c1', conversation('c1', 'u1', { updatedAt: iso(1) }));
      await store.set('c2', conversation('c2', 'u1', { updatedAt: iso(2) }));
      assert.equal(await store.delete('c1'), undefined);
      assert.equal(await store.get('c1'), undefined);
      if (raw) {
        assert.equal(await raw.cli('EXISTS', raw.record('c1')), '0');
        assert.equal(await raw.cli('ZSCORE', raw.index('u1'), 'c1'), '');
      }
      assert.deepEqual(ids(await store.listByUser('u1')), ['c2']);
      await store.delete('c1');
      await store.delete('never-existed');
      await store.delete('c2');
      assert.deepEqual(await store.listByUser('u1'), []);
      if (raw) assert.equal(await raw.cli('EXISTS', raw.index('u1')), '0');
    });

    it('a missing updatedAt means now (it sorts first)', async () => {
      const { store, raw } = await makeContext();
      await store.set('past', conversation('past', 'u1', { updatedAt: '2020-01-01T00:00:00.000Z' }));
      await store.set('future-ish', conversation('future-ish', 'u1', { updatedAt: new Date(Date.now() - 60_000).toISOString() }));
      const { updatedAt, ...fresh } = conversation('fresh', 'u1');
      assert.ok(updatedAt);
      const before = Date.now();
      await store.set('fresh', fresh);
      const afterSet = Date.now();
      assert.deepEqual(ids(await store.listByUser('u1')), ['fresh', 'future-ish', 'past']);
      // The record itself is stored as given.
      assert.deepEqual(await store.get('fresh'), fresh);
      if (raw) {
        const score = Number(await raw.cli('ZSCORE', raw.index('u1'), 'fresh'));
        assert.ok(score >= before - 1000 && score <= afterSet + 1000, `score ${score} is not about now`);
      }
    });

    it('ttlSeconds: a record expires, and listByUser then prunes it', async () => {
      const { store, raw } = await makeContext({ ttlSeconds: 1 });
      await store.set('short', conversation('short', 'u1', { updatedAt: iso(1) }));
      if (raw) {
        const recordPttl = Number(await raw.cli('PTTL', raw.record('short')));
        const indexPttl = Number(await raw.cli('PTTL', raw.index('u1')));
        assert.ok(recordPttl > 0 && recordPttl <= 1000, `record PTTL ${recordPttl}`);
        assert.ok(indexPttl > 3_596_000 && indexPttl <= 3_601_000, `index PTTL ${indexPttl}`);
      }
      assert.deepEqual(ids(await store.listByUser('u1')), ['short']);
      await pollUntil(async () => (await store.get('short')) === undefined, { timeoutMs: 4000, what: 'the record to expire' });
      if (raw) assert.equal(await raw.cli('ZCARD', raw.index('u1')), '1');
      assert.deepEqual(await store.listByUser('u1'), []);
      // Pruned in the background: the listing does not wait for it.
      if (raw) await pollUntil(async () => (await raw.cli('ZCARD', raw.index('u1'))) === '0', { what: 'the expired entry pruned' });
      // The id can be used again.
      await store.set('short', conversation('short', 'u1', { updatedAt: iso(2) }));
      assert.equal((await store.get('short')).updatedAt, iso(2));
    });

    if (isRedis) {
      it('slidingExpiry: get refreshes the record and index TTLs (off by default)', async () => {
        const { store, raw, another } = await makeContext({ ttlSeconds: 100, slidingExpiry: true });
        await store.set('c1', conversation('c1', 'u1', { updatedAt: iso(1) }));
        await raw.cli('EXPIRE', raw.record('c1'), '10');
        await raw.cli('EXPIRE', raw.index('u1'), '10');
        assert.ok(await store.get('c1'));
        const recordTtl = Number(await raw.cli('TTL', raw.record('c1')));
        const indexTtl = Number(await raw.cli('TTL', raw.index('u1')));
        assert.ok(recordTtl > 95 && recordTtl <= 100, `record TTL ${recordTtl}`);
        assert.ok(indexTtl > 3695 && indexTtl <= 3700, `index TTL ${indexTtl}`);

        // Without slidingExpiry a read leaves the TTL alone.
        const plain = another({ slidingExpiry: false });
        await raw.cli('EXPIRE', raw.record('c1'), '10');
        assert.ok(await plain.get('c1'));
        assert.ok(Number(await raw.cli('TTL', raw.record('c1'))) <= 10);
      });
    } else {
      it('slidingExpiry: get refreshes the TTL (off by default)', async () => {
        const { store: sliding } = await makeContext({ ttlSeconds: 1, slidingExpiry: true });
        const { store: plain } = await makeContext({ ttlSeconds: 1 });
        await sliding.set('c1', conversation('c1', 'u1', { updatedAt: iso(1) }));
        await plain.set('c1', conversation('c1', 'u1', { updatedAt: iso(1) }));
        // Read the sliding one every 150 ms for well over its 1 s TTL.
        const until = Date.now() + 1600;
        while (Date.now() < until) {
          assert.ok(await sliding.get('c1'), 'a record read within its TTL stays alive');
          await new Promise((resolve) => setTimeout(resolve, 150));
        }
        assert.equal(await plain.get('c1'), undefined, 'without slidingExpiry the record expired');
        assert.deepEqual(ids(await sliding.listByUser('u1')), ['c1']);
      });
    }

    it('an id re-created under another user after expiry does not shorten the old user page', async () => {
      const { store } = await makeContext({ ttlSeconds: 1 });
      await store.set('x', conversation('x', 'u1', { updatedAt: iso(10) }));
      await pollUntil(async () => (await store.get('x')) === undefined, { timeoutMs: 4000, what: 'x to expire' });
      // u1's index still names x (it outlives its records); x now belongs to u2.
      await store.set('z', conversation('z', 'u1', { updatedAt: iso(1) }));
      await store.set('x', conversation('x', 'u2', { updatedAt: iso(10) }));
      assert.deepEqual(ids(await store.listByUser('u1', { limit: 1 })), ['z']);
      assert.deepEqual(ids(await store.listByUser('u1')), ['z']);
      assert.deepEqual(ids(await store.listByUser('u2')), ['x']);
    });

    it('moving a record back to a user whose index has a stale entry removes it from the previous owner', async () => {
      const { store, raw } = await makeContext({ ttlSeconds: 1 });
      await store.set('x', conversation('x', 'u1', { updatedAt: iso(10) }));
      await pollUntil(async () => (await store.get('x')) === undefined, { timeoutMs: 4000, what: 'x to expire' });
      await store.set('x', conversation('x', 'u2', { updatedAt: iso(10) })); // u1's stale entry for x remains
      await store.set('x', conversation('x', 'u1', { updatedAt: iso(11) })); // x changes owner u2 -> u1
      if (raw) {
        assert.equal(await raw.cli('ZSCORE', raw.index('u2'), 'x'), '', 'x left the index of its previous owner u2');
      }
      await store.set('w', conversation('w', 'u2', { updatedAt: iso(1) }));
      assert.deepEqual(ids(await store.listByUser('u2', { limit: 1 })), ['w']);
      assert.deepEqual(ids(await store.listByUser('u1')), ['x']);
    });

    if (isRedis) {
      it('a stored record that is not JSON: get rejects with the id, listByUser skips it with a [STORE] warning, delete removes it', async () => {
        const { logger, lines, linesAt } = captureLogger();
        const { store, raw } = await makeContext({ logger });
        await store.set('good', conversation('good', 'u1', { updatedAt: iso(1) }));
        await store.set('garbage', conversation('garbage', 'u1', { updatedAt: iso(2) }));
        await store.set('truncated', conversation('truncated', 'u1', { updatedAt: iso(3) }));
        await raw.cli('SET', raw.record('garbage'), 'not json at all {');
        const full = JSON.stringify(conversation('truncated', 'u1', { updatedAt: iso(3) }));
        await raw.cli('SET', raw.record('truncated'), full.slice(0, full.length - 10));

        for (const id of ['garbage', 'truncated']) {
          await assert.rejects(store.get(id), (err) => {
            assert.ok(err instanceof Error);
            assert.equal(err.name, 'StoreDataError');
            assert.equal(err.code, 'STORE_CORRUPT_RECORD');
            assert.ok(err.message.includes(id), `message names the id: ${err.message}`);
            return true;
          });
        }

        assert.deepEqual(ids(await store.listByUser('u1')), ['good']);
        // A record that is not even an object with a userId is skipped on the
        // native side, whose log lines reach JS on their own queue.
        await pollUntil(() => linesAt('warn').filter((line) => line.includes('[STORE]')).length >= 2, {
          timeoutMs: 5000,
          what: 'two [STORE] warnings',
        });
        const warnings = linesAt('warn').filter((line) => line.includes('[STORE]'));
        assert.ok(warnings.some((line) => line.includes('garbage')), JSON.stringify(warnings));
        assert.ok(warnings.some((line) => line.includes('truncated')), JSON.stringify(warnings));
        // With fields too.
        assert.deepEqual(await store.listByUser('u1', { fields: ['externalId'] }), [{ externalId: 'good' }]);

        await store.delete('garbage');
        await store.delete('truncated');
        assert.equal(await store.get('garbage'), undefined);
        assert.equal(await store.get('truncated'), undefined);
        assert.equal(await raw.cli('EXISTS', raw.record('garbage')), '0');
        assert.equal(await raw.cli('EXISTS', raw.record('truncated')), '0');
        const warningsBefore = linesAt('warn').length;
        assert.deepEqual(ids(await store.listByUser('u1')), ['good']);
        assert.equal(linesAt('warn').length, warningsBefore, 'nothing left to warn about');
        // The deleted records' entries (their owner unreadable) are pruned in the background.
        await pollUntil(async () => (await raw.cli('ZCARD', raw.index('u1'))) === '1', { what: 'the stale index entries pruned' });
      });
    }

    it('a stored record the schema rejects: get rejects with the id, listByUser skips it with a [STORE] warning, delete removes it', async () => {
      const { logger, lines, linesAt } = captureLogger();
      const { store, raw } = await makeContext({ schema: StoredConversationSchema, logger });
      await store.set('good', conversation('good', 'u1', { updatedAt: iso(1) }));
      // The schema runs on reads only: a record it rejects can be in storage
      // (written by another version of the app, or by hand).
      await store.set('rejected', conversation('rejected', 'u1', { updatedAt: iso(2), status: 'no-such-status' }));

      await assert.rejects(store.get('rejected'), (err) => {
        assert.ok(err instanceof Error);
        assert.equal(err.name, 'StoreDataError');
        assert.equal(err.code, 'STORE_CORRUPT_RECORD');
        assert.ok(err.message.includes('rejected'), `message names the id: ${err.message}`);
        return true;
      });
      assert.deepEqual(ids(await store.listByUser('u1')), ['good']);
      const warnings = linesAt('warn').filter((line) => line.includes('[STORE]'));
      assert.ok(warnings.some((line) => line.includes('rejected')), JSON.stringify(lines));

      await store.delete('rejected');
      assert.equal(await store.get('rejected'), undefined);
      if (raw) {
        assert.equal(await raw.cli('EXISTS', raw.record('rejected')), '0');
        assert.equal(await raw.cli('ZSCORE', raw.index('u1'), 'rejected'), '');
      }
      const warningsBefore = linesAt('warn').length;
      assert.deepEqual(ids(await store.listByUser('u1')), ['good']);
      assert.equal(linesAt('warn').length, warningsBefore);
    });

    it('after close(), every call rejects with STORE_CLOSED', async () => {
      const { store } = await makeContext();
      await store.set('c1', conversation('c1', 'u1'));
      await store.close();
      assert.equal(store.status, 'closed');
      const calls = {
        get: () => store.get('c1'),
        set: () => store.set('c2', conversation('c2', 'u1')),
        delete: () => store.delete('c1'),
        listByUser: () => store.listByUser('u1'),
      };
      for (const [name, call] of Object.entries(calls)) {
        await assert.rejects(call(), (err) => {
          assert.ok(err instanceof Error, name);
          assert.equal(err.code, 'STORE_CLOSED', `${name}: ${err.code} ${err.message}`);
          assert.match(err.message, /closed/, name);
          return true;
        });
      }
      // Closing twice is harmless.
      await store.close();
    });
  });
}

describe('contract: least privilege', () => {
  it('the ACL user ran the whole suite without a single refused command or key', async () => {
    for (const node of [srv, ...cluster.nodes]) {
      const log = await node.cli('ACL', 'LOG');
      assert.equal(log.includes(ACL_USER), false, `ACL LOG on port ${node.port}:\n${log}`);
    }
  });
});
