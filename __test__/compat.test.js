'use strict';

// Byte compatibility with the ioredis store (docs/contract.md, "Storage
// layout": what lands in Redis is byte for byte what the ioredis store wrote,
// so a deployment can switch over, or run both at once). Both stores run on one server, with no key prefix
// and with 'app:' (ioredis's keyPrefix client option against our keyPrefix),
// and each reads what the other wrote.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { z } = require('zod');

const { RedisStore } = require('..');
const {
  startRedis,
  IoredisConversationStore,
  NodeRedisConversationStore,
  ioredisClient,
  nodeRedisClient,
  conversation,
  conversationKey,
  userIndexKey,
  liveSdkObject,
} = require('../test-support');

const TTL = 600;
const INDEX_TTL = TTL + 3600;

let srv;
const clients = [];
const stores = [];

before(async () => {
  srv = await startRedis();
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const c of clients) c.disconnect();
  if (srv) await srv.stop();
});

function prefixedClient(keyPrefix) {
  const c = ioredisClient(srv.url, { keyPrefix });
  clients.push(c);
  return c;
}

const schema = z
  .object({
    externalId: z.string(),
    history: z.array(z.any()).default([]),
    userId: z.string(),
    tenantId: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
    status: z.string().default('active'),
    metadata: z.record(z.any()).optional(),
  })
  .passthrough();

/** A record with the awkward bits: unicode, escapes, nested data, an SDK object. */
function awkward(id, userId, updatedAt, extra = {}) {
  return conversation(id, userId, {
    sdkConversationRef: liveSdkObject(),
    history: [
      { role: 'user', content: `hello from ${id}: "quoted" \\ back\nslash ✓ é \u2028 😀`, at: 1.5e-7 },
      { role: 'assistant', content: '', tokens: 12345678901234, flags: [true, false, null] },
    ],
    createdAt: '2024-01-01T00:00:00.000Z',
    updatedAt,
    metadata: { sdkConversationRef: 'nested, kept', unicodeKey_ñ: { a: [] } },
    ...extra,
  });
}

const persisted = (record) => {
  // eslint-disable-next-line no-unused-vars
  const { sdkConversationRef, ...rest } = record;
  return rest;
};

const ids = (records) => records.map((r) => r.externalId);

for (const prefix of ['', 'app:']) {
  describe(`compatibility with the ioredis store (keyPrefix ${JSON.stringify(prefix)})`, () => {
    let io;
    let ours;
    const recordKey = (id) => conversationKey(id, prefix);
    const indexKey = (userId) => userIndexKey(userId, prefix);

    before(() => {
      io = new IoredisConversationStore(prefixedClient(prefix || undefined), { ttlSeconds: TTL, schema });
      ours = new RedisStore({
        url: srv.url,
        allowPlaintext: true,
        keyPrefix: prefix || undefined,
        ttlSeconds: TTL,
        schema,
        logger: null,
      });
      stores.push(ours);
    });

    it('RedisStore reads what the ioredis store wrote (get, listByUser order)', async () => {
      const written = [
        awkward('io-a', 'io-u1', '2024-01-01T10:00:00.000Z'),
        awkward('io-b', 'io-u1', '2024-01-01T12:00:00.000Z'),
        awkward('io-c', 'io-u1', '2024-01-01T11:00:00.000Z'),
        awkward('io-d', 'io-u1', '2024-01-01T12:00:00+05:30'),
        awkward('io-e', 'io-u2', '2024-01-02T00:00:00.000Z'),
      ];
      for (const record of written) await io.set(record.externalId, record);
      assert.equal(await srv.cli('EXISTS', recordKey('io-a')), '1');

      for (const record of written) {
        assert.deepEqual(await ours.get(record.externalId), persisted(record));
      }
      const theirs = await io.listByUser('io-u1');
      const listed = await ours.listByUser('io-u1');
      assert.deepEqual(ids(listed), ['io-b', 'io-c', 'io-a', 'io-d']);
      assert.deepEqual(listed, theirs);
      assert.deepEqual(ids(await ours.listByUser('io-u2')), ['io-e']);

      // An older record (no status) gets the schema default from either store.
      const { status, ...old } = awkward('io-old', 'io-u3', '2024-01-01T00:00:00.000Z');
      assert.ok(status);
      await io.set('io-old', old);
      assert.equal((await ours.get('io-old')).status, 'active');
      assert.deepEqual(await ours.get('io-old'), await io.get('io-old'));
    });

    it('the ioredis store reads what RedisStore wrote (get, listByUser order)', async () => {
      const written = [
        awkward('rs-a', 'rs-u1', '2024-01-01T10:00:00.000Z'),
        awkward('rs-b', 'rs-u1', '2024-01-01T12:00:00.000Z'),
        awkward('rs-c', 'rs-u1', '2024-01-01T11:00:00.000Z'),
        awkward('rs-d', 'rs-u2', '2024-01-02T00:00:00.000Z'),
      ];
      for (const record of written) await ours.set(record.externalId, record);
      for (const record of written) {
        assert.deepEqual(await io.get(record.externalId), persisted(record));
      }
      assert.deepEqual(ids(await io.listByUser('rs-u1')), ['rs-b', 'rs-c', 'rs-a']);
      assert.deepEqual(await io.listByUser('rs-u1'), await ours.listByUser('rs-u1'));
      assert.deepEqual(ids(await io.listByUser('rs-u2')), ['rs-d']);
    });

    it('the same record written by each store: identical bytes, scores and TTLs', async () => {
      const updatedAts = [
        '2024-01-01T10:00:00.000Z',
        '2024-01-01T10:00:00+05:30',
        '2024-02-29T00:00:00.1Z',
        '2024-01-01T10:00:00.123456Z',
        '2024-06',
        '2024-01-01T24:00:00Z',
      ];
      for (const [n, updatedAt] of updatedAts.entries()) {
        const record = awkward('same', `same-u${n}`, updatedAt);
        await io.set(`same-io-${n}`, record);
        const ioIndexTtl = Number(await srv.cli('TTL', indexKey(`same-u${n}`)));
        // Lower the index TTL, so that RedisStore's refresh of it shows.
        await srv.cli('EXPIRE', indexKey(`same-u${n}`), '100');
        await ours.set(`same-rs-${n}`, record);

        const fromIo = await srv.cli('GET', recordKey(`same-io-${n}`));
        const fromOurs = await srv.cli('GET', recordKey(`same-rs-${n}`));
        assert.ok(fromIo.length > 100);
        assert.equal(fromOurs, fromIo, `stored bytes for updatedAt ${updatedAt}`);
        assert.equal(fromOurs, JSON.stringify(persisted(record)));

        const ioScore = await srv.cli('ZSCORE', indexKey(`same-u${n}`), `same-io-${n}`);
        const ourScore = await srv.cli('ZSCORE', indexKey(`same-u${n}`), `same-rs-${n}`);
        assert.equal(ourScore, ioScore, `score for updatedAt ${updatedAt}`);
        assert.equal(Number(ourScore), Date.parse(updatedAt));

        const ioTtl = Number(await srv.cli('TTL', recordKey(`same-io-${n}`)));
        const ourTtl = Number(await srv.cli('TTL', recordKey(`same-rs-${n}`)));
        assert.ok(Math.abs(ioTtl - ourTtl) <= 1, `record TTLs ${ioTtl} vs ${ourTtl}`);
        assert.ok(ourTtl >= TTL - 2 && ourTtl <= TTL, `record TTL ${ourTtl}`);
        const ourIndexTtl = Number(await srv.cli('TTL', indexKey(`same-u${n}`)));
        assert.ok(Math.abs(ioIndexTtl - ourIndexTtl) <= 1, `index TTLs ${ioIndexTtl} vs ${ourIndexTtl}`);
        assert.ok(ourIndexTtl >= INDEX_TTL - 2 && ourIndexTtl <= INDEX_TTL, `index TTL ${ourIndexTtl}`);
      }
      // Both ids list together, in the same order either store reads them.
      assert.deepEqual(await ours.listByUser('same-u0'), await io.listByUser('same-u0'));
    });

    it('a record without sdkConversationRef, and one with only some fields, are identical too', async () => {
      const minimal = { userId: 'min-u', updatedAt: '2024-05-05T05:05:05.005Z' };
      const plain = persisted(awkward('plain', 'min-u', '2024-05-05T05:05:05.006Z'));
      for (const [name, record] of [['minimal', minimal], ['plain', plain]]) {
        await io.set(`${name}-io`, record);
        await ours.set(`${name}-rs`, record);
        assert.equal(await srv.cli('GET', recordKey(`${name}-rs`)), await srv.cli('GET', recordKey(`${name}-io`)));
        assert.equal(
          await srv.cli('ZSCORE', indexKey('min-u'), `${name}-rs`),
          await srv.cli('ZSCORE', indexKey('min-u'), `${name}-io`),
        );
      }
    });

    it('each store deletes what the other wrote, index entry included', async () => {
      await io.set('del-io', awkward('del-io', 'del-u', '2024-01-01T00:00:00.000Z'));
      await ours.set('del-rs', awkward('del-rs', 'del-u', '2024-01-01T01:00:00.000Z'));
      await ours.delete('del-io');
      await io.delete('del-rs');
      for (const id of ['del-io', 'del-rs']) {
        assert.equal(await srv.cli('EXISTS', recordKey(id)), '0');
        assert.equal(await srv.cli('ZSCORE', indexKey('del-u'), id), '');
        assert.equal(await ours.get(id), undefined);
        assert.equal(await io.get(id), undefined);
      }
    });

    it('a record the ioredis store moved to another user is not listed for the old user, and the stale entry is pruned', async () => {
      await io.set('moved', awkward('moved', 'old-u', '2024-01-01T10:00:00.000Z'));
      await io.set('stays', awkward('stays', 'old-u', '2024-01-01T09:00:00.000Z'));
      await io.set('moved', awkward('moved', 'new-u', '2024-01-01T11:00:00.000Z'));
      // The ioredis store leaves the id in the old user's index (and lists it there).
      assert.ok(await srv.cli('ZSCORE', indexKey('old-u'), 'moved'));
      assert.deepEqual(ids(await io.listByUser('old-u')), ['moved', 'stays']);

      assert.deepEqual(ids(await ours.listByUser('old-u')), ['stays']);
      assert.equal(await srv.cli('ZSCORE', indexKey('old-u'), 'moved'), '', 'stale entry pruned');
      assert.deepEqual(ids(await ours.listByUser('new-u')), ['moved']);
      assert.deepEqual(ids(await io.listByUser('old-u')), ['stays']);
    });

    it('an ioredis-moved record does not shorten the old user page (listByUser limit)', async () => {
      await io.set('lim-moved', awkward('lim-moved', 'lim-old', '2024-01-01T10:00:00.000Z'));
      await io.set('lim-stays', awkward('lim-stays', 'lim-old', '2024-01-01T09:00:00.000Z'));
      await io.set('lim-moved', awkward('lim-moved', 'lim-new', '2024-01-01T11:00:00.000Z'));
      assert.deepEqual(ids(await ours.listByUser('lim-old', { limit: 1 })), ['lim-stays']);
    });

    it('moving a record back to a user whose index holds a stale ioredis entry removes it from the previous owner', async () => {
      await io.set('back', awkward('back', 'back-a', '2024-01-01T10:00:00.000Z'));
      await io.set('back', awkward('back', 'back-b', '2024-01-01T11:00:00.000Z')); // stale in back-a
      await ours.set('back', awkward('back', 'back-a', '2024-01-01T12:00:00.000Z')); // b -> a
      assert.equal(await srv.cli('ZSCORE', indexKey('back-b'), 'back'), '', 'left the index of back-b');
      assert.deepEqual(await ours.listByUser('back-b'), []);
      assert.deepEqual(ids(await ours.listByUser('back-a')), ['back']);
    });

    it('records expired under the ioredis store are skipped and pruned by RedisStore', async () => {
      await io.set('exp-gone', awkward('exp-gone', 'exp-u', '2024-01-01T10:00:00.000Z'));
      await io.set('exp-live', awkward('exp-live', 'exp-u', '2024-01-01T09:00:00.000Z'));
      await srv.cli('DEL', recordKey('exp-gone')); // as if it had expired
      assert.deepEqual(ids(await ours.listByUser('exp-u', { limit: 1 })), ['exp-live']);
      assert.equal(await srv.cli('ZCARD', indexKey('exp-u')), '1');
    });
  });
}

describe('key prefixes keep the two deployments apart', () => {
  it("RedisStore with keyPrefix 'app:' sees only the 'app:' keys", async () => {
    const a = new RedisStore({ url: srv.url, allowPlaintext: true, keyPrefix: 'iso-a:', logger: null });
    const none = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null });
    stores.push(a, none);
    await a.set('iso', awkward('iso', 'iso-u', '2024-01-01T00:00:00.000Z'));
    assert.equal(await none.get('iso'), undefined);
    assert.deepEqual(await none.listByUser('iso-u'), []);
    assert.equal(await srv.cli('EXISTS', 'iso-a:conv:iso', 'iso-a:user:iso-u:conversations'), '2');
    assert.equal(await srv.cli('EXISTS', 'conv:iso', 'user:iso-u:conversations'), '0');
  });
});

// The bench's second peer (test-support/node-redis-store.js) must be the same
// store on another client, or its figures compare nothing: same bytes as the
// ioredis store, and each store reads what the other wrote.
describe('the node-redis peer store keeps the same layout', () => {
  let nodeRedis;
  let io;
  let ours;
  const prefix = 'nr:';

  before(async () => {
    const client = await nodeRedisClient(srv.url);
    clients.push({ disconnect: () => client.destroy() });
    nodeRedis = new NodeRedisConversationStore(client, { ttlSeconds: TTL, keyPrefix: prefix, schema });
    io = new IoredisConversationStore(prefixedClient(prefix), { ttlSeconds: TTL, schema });
    ours = new RedisStore({ url: srv.url, allowPlaintext: true, keyPrefix: prefix, ttlSeconds: TTL, schema, logger: null });
    stores.push(ours);
  });

  it('writes the bytes, score and TTLs the ioredis store writes', async () => {
    const record = awkward('nr-same', 'nr-u0', '2024-01-01T10:00:00+05:30');
    await io.set('nr-io', record);
    await nodeRedis.set('nr-nr', record);
    const stored = await srv.cli('GET', `${prefix}conv:nr-nr`);
    assert.equal(stored, await srv.cli('GET', `${prefix}conv:nr-io`));
    assert.equal(stored, JSON.stringify(persisted(record)));
    assert.equal(
      await srv.cli('ZSCORE', `${prefix}user:nr-u0:conversations`, 'nr-nr'),
      await srv.cli('ZSCORE', `${prefix}user:nr-u0:conversations`, 'nr-io'),
    );
    const ttl = Number(await srv.cli('TTL', `${prefix}conv:nr-nr`));
    assert.ok(ttl >= TTL - 2 && ttl <= TTL, `record TTL ${ttl}`);
    const indexTtl = Number(await srv.cli('TTL', `${prefix}user:nr-u0:conversations`));
    assert.ok(indexTtl >= INDEX_TTL - 2 && indexTtl <= INDEX_TTL, `index TTL ${indexTtl}`);
  });

  it('reads what RedisStore wrote and the other way round, in the same order; deletes what the other wrote', async () => {
    const records = [
      awkward('nr-a', 'nr-u1', '2024-01-01T10:00:00.000Z'),
      awkward('nr-b', 'nr-u1', '2024-01-01T12:00:00.000Z'),
      awkward('nr-c', 'nr-u1', '2024-01-01T11:00:00.000Z'),
    ];
    await ours.set('nr-a', records[0]);
    await nodeRedis.set('nr-b', records[1]);
    await ours.set('nr-c', records[2]);
    assert.deepEqual(await nodeRedis.get('nr-a'), persisted(records[0]));
    assert.deepEqual(await ours.get('nr-b'), persisted(records[1]));
    assert.deepEqual(ids(await nodeRedis.listByUser('nr-u1')), ['nr-b', 'nr-c', 'nr-a']);
    assert.deepEqual(await nodeRedis.listByUser('nr-u1'), await ours.listByUser('nr-u1'));
    await nodeRedis.delete('nr-a');
    await ours.delete('nr-b');
    assert.equal(await srv.cli('EXISTS', `${prefix}conv:nr-a`, `${prefix}conv:nr-b`), '0');
    assert.deepEqual(ids(await nodeRedis.listByUser('nr-u1')), ['nr-c']);
    assert.equal(await nodeRedis.get('nr-a'), undefined);
  });
});
