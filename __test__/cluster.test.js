'use strict';
// RedisStore on a real local Redis Cluster (3 primaries, a replica each):
// keys spread over every primary, the contract's behaviour across slots
// (docs/contract.md, "Redis Cluster"), failover under a write workload, and
// a TLS cluster.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startCluster, conversation, conversationKey, userIndexKey, pollUntil } = require('../test-support');
const { RedisStore, isRedisError } = require('..');

const TIMEOUT_MS = 1000;
const SLACK_MS = 1000;


describe('RedisStore on a cluster', () => {
  let cluster;
  let store;
  before(async () => {
    cluster = await startCluster();
    // With the default (yes), Redis itself answers CLUSTERDOWN for every key
    // while any slot is unserved; "no" lets healthy primaries keep serving,
    // which is what the bystander check below measures.
    await Promise.all(cluster.nodes.map((node) => node.cli('CONFIG', 'SET', 'cluster-require-full-coverage', 'no')));
    store = new RedisStore({
      url: cluster.seedUrl,
      clusterNodes: cluster.seedUrls.slice(1, 3),
      cluster: true,
      allowPlaintext: true,
      commandTimeoutMs: TIMEOUT_MS,
      // Also how soon node connections redis-rs opens by itself get their name.
      heartbeatIntervalMs: 500,
      connectionName: 'chat-api-cluster',
      logger: null,
    });
  });
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });

  /** Per live node: the names of its connections that speak RESP3 (redis-cli speaks RESP2). */
  async function storeConnectionNames() {
    const live = cluster.nodes.filter((node) => node.alive);
    return Promise.all(
      live.map(async (node) => {
        const list = await node.cli('CLIENT', 'LIST');
        const names = list
          .split('\n')
          .filter((line) => /\bresp=3\b/.test(line))
          .map((line) => /\bname=(\S*)/.exec(line)[1]);
        return { port: node.port, names };
      }),
    );
  }

  /**
   * Each of the 3 primaries has a connection of the store, and every
   * connection of the store is named (redis-rs connects to replicas only to
   * read from them, which the store does not ask for).
   */
  function allNamed(perNode) {
    const connected = perNode.filter(({ names }) => names.length > 0);
    return connected.length >= 3 && connected.every(({ names }) => names.every((name) => name === 'chat-api-cluster'));
  }

  it('spreads records and indexes over every primary, in the ioredis layout', async () => {
    for (let i = 0; i < 60; i += 1) {
      await store.set(`spread-${i}`, conversation(`spread-${i}`, `spread-user-${i % 6}`));
    }
    const perPrimary = await cluster.keysPerPrimary(conversationKey('spread-*'));
    assert.equal(perPrimary.size, 3);
    for (const [port, count] of perPrimary) assert.ok(count > 0, `primary ${port} holds no record`);
    const indexes = await cluster.keysPerPrimary(userIndexKey('spread-user-*'));
    assert.equal([...indexes.values()].reduce((a, b) => a + b, 0), 6);
    const listed = await store.listByUser('spread-user-1');
    assert.equal(listed.length, 10);
    assert.ok(listed.every((record) => record.userId === 'spread-user-1'));
  });

  it('keeps order, paging, fields, the userId move, delete and pruning across slots', async () => {
    const base = Date.parse('2024-01-01T00:00:00Z');
    for (let i = 0; i < 12; i += 1) {
      await store.set(`order-${i}`, conversation(`order-${i}`, 'order-a', { updatedAt: new Date(base + i * 1000).toISOString() }));
    }
    const newestFirst = (await store.listByUser('order-a')).map((r) => r.externalId);
    assert.deepEqual(newestFirst, Array.from({ length: 12 }, (_, i) => `order-${11 - i}`));
    const page = (await store.listByUser('order-a', { limit: 3, offset: 2 })).map((r) => r.externalId);
    assert.deepEqual(page, ['order-9', 'order-8', 'order-7']);
    const light = await store.listByUser('order-a', { limit: 1, fields: ['externalId', 'updatedAt'] });
    assert.deepEqual(Object.keys(light[0]).sort(), ['externalId', 'updatedAt']);

    await store.set('order-5', conversation('order-5', 'order-b'));
    assert.ok(!(await store.listByUser('order-a')).some((r) => r.externalId === 'order-5'));
    assert.deepEqual((await store.listByUser('order-b')).map((r) => r.externalId), ['order-5']);
    const [aIndex] = await Promise.all([cluster.nodeForKey(userIndexKey('order-a'))]);
    assert.equal(await aIndex.cli('ZSCORE', userIndexKey('order-a'), 'order-5'), '', 'moved id left the old index');

    await store.delete('order-6');
    await store.delete('order-6');
    assert.equal(await store.get('order-6'), undefined);
    assert.ok(!(await store.listByUser('order-a')).some((r) => r.externalId === 'order-6'));

    // A record that vanished (expiry) is pruned from the index by the next listing.
    const recordNode = await cluster.nodeForKey(conversationKey('order-7'));
    await recordNode.cli('DEL', conversationKey('order-7'));
    assert.ok(!(await store.listByUser('order-a')).some((r) => r.externalId === 'order-7'));
    assert.equal(await aIndex.cli('ZSCORE', userIndexKey('order-a'), 'order-7'), '');
  });

  it('names its connection to every node with CLIENT SETNAME', async () => {
    await store.ping();
    const perNode = await storeConnectionNames();
    assert.equal(perNode.length, 6);
    assert.ok(allNamed(perNode), JSON.stringify(perNode));
  });

  it('sets both TTLs', async () => {
    await store.set('ttl-1', conversation('ttl-1', 'ttl-user'));
    const recordTtl = Number(await (await cluster.nodeForKey(conversationKey('ttl-1'))).cli('TTL', conversationKey('ttl-1')));
    const indexKey = userIndexKey('ttl-user');
    const indexTtl = Number(await (await cluster.nodeForKey(indexKey)).cli('TTL', indexKey));
    assert.ok(recordTtl > 86_390 && recordTtl <= 86_400, `record TTL ${recordTtl}`);
    assert.ok(indexTtl > 89_990 && indexTtl <= 90_000, `index TTL ${indexTtl}`);
  });

  it('follows a slot that moved since it read the slot map, for the record step and the index step', async () => {
    // Each write step is one pipeline (a script, or MULTI/EXEC), and the
    // MOVED comes back among its replies: the step must be resent to the
    // new owner (redis-rs does it), not fail. A redirect still answered
    // after the retries is STORE_UNAVAILABLE (src/error.rs).
    const id = 'moved-slot-1';
    const user = 'moved-slot-user';
    await store.ping();
    const record = await cluster.moveEmptySlotOf(conversationKey(id));
    const index = await cluster.moveEmptySlotOf(userIndexKey(user));
    assert.notEqual(record.slot, index.slot);
    await store.set(id, conversation(id, user));
    assert.equal(await record.to.cli('EXISTS', conversationKey(id)), '1', 'the record is on the slot\'s new owner');
    assert.notEqual(await index.to.cli('ZSCORE', userIndexKey(user), id), '', 'the id is in the index on its new owner');
    assert.equal((await store.get(id)).externalId, id);
    assert.deepEqual((await store.listByUser(user)).map((r) => r.externalId), [id]);
    await store.delete(id);
    assert.equal(await store.get(id), undefined);
  });

  it('survives the failover of the primary that owns a user index', async () => {
    const user = 'failover-user';
    const indexKey = userIndexKey(user);
    const indexNode = await cluster.nodeForKey(indexKey);
    // Keys that live elsewhere must be served without a hiccup meanwhile.
    const bystanders = [];
    for (let i = 0; bystanders.length < 5; i += 1) {
      if ((await cluster.nodeForKey(conversationKey(`bystander-${i}`))).port !== indexNode.port) bystanders.push(`bystander-${i}`);
    }
    for (const id of bystanders) await store.set(id, conversation(id, 'bystander-user'));

    let clock = 0;
    const acknowledged = new Map(); // id → clock when the last acknowledged set was issued
    const settledAt = new Map(); // version → clock when its set settled
    const failures = [];
    const bystanderFailures = [];
    let version = 0;
    let running = true;
    let lastSuccessAt = 0;
    const writer = async () => {
      while (running) {
        const id = `fo-${Math.floor(Math.random() * 40)}`;
        const v = ++version;
        const issuedAt = ++clock;
        const started = Date.now();
        try {
          await store.set(id, conversation(id, user, { version: v }));
          if ((acknowledged.get(id) ?? 0) < issuedAt) acknowledged.set(id, issuedAt);
          lastSuccessAt = Date.now();
        } catch (err) {
          failures.push({ err, elapsed: Date.now() - started });
          await new Promise((resolve) => setTimeout(resolve, 20));
        } finally {
          settledAt.set(v, ++clock);
        }
      }
    };
    const bystander = async () => {
      while (running) {
        for (const id of bystanders) {
          try {
            assert.ok(await store.get(id));
          } catch (err) {
            bystanderFailures.push(err);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const workers = [...Array.from({ length: 8 }, writer), bystander()];
    await pollUntil(() => acknowledged.size >= 20, { timeoutMs: 15_000, what: 'a warm workload' });

    const { killed } = await cluster.killPrimaryOf(indexKey);
    const killedAt = Date.now();
    await cluster.waitForFailover(killed);
    await pollUntil(() => lastSuccessAt > Date.now() - 100 && lastSuccessAt > killedAt, { timeoutMs: 15_000, what: 'writes to succeed again' });
    const recoveryMs = lastSuccessAt - killedAt;
    await new Promise((resolve) => setTimeout(resolve, 300));
    running = false;
    await Promise.all(workers);

    for (const { err, elapsed } of failures) {
      assert.equal(err.name, 'RedisError', err.stack);
      assert.ok(isRedisError(err));
      assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `failed call took ${elapsed} ms`);
    }
    assert.ok(recoveryMs < 15_000, `recovered after ${recoveryMs} ms`);
    let lost = 0;
    for (const [id, lastIssued] of acknowledged) {
      const record = await store.get(id);
      if (!record || settledAt.get(record.version) < lastIssued) lost += 1;
    }
    assert.equal(lost, 0, 'every acknowledged write is readable');
    const listed = new Set((await store.listByUser(user, { limit: 100 })).map((r) => r.externalId));
    for (const id of acknowledged.keys()) assert.ok(listed.has(id), `${id} is listed`);
    assert.deepEqual(bystanderFailures.map((e) => e.message), [], 'keys on other nodes were not disturbed');
    console.log(`# failover: ${failures.length} failed calls, recovered ${recoveryMs} ms after the kill`);
    // Connections redis-rs opened by itself during the failover are named too.
    await pollUntil(async () => allNamed(await storeConnectionNames()), {
      timeoutMs: 5_000,
      what: 'every connection of the store to be named after the failover',
    });
  });
});

describe('RedisStore on a TLS cluster', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster({ tls: true });
  });
  after(() => cluster?.stop());

  it('connects with the CA and serves the contract', async () => {
    const store = new RedisStore({ url: cluster.seedUrl, cluster: true, tls: { ca: cluster.tls.ca }, logger: null });
    try {
      for (let i = 0; i < 9; i += 1) await store.set(`tls-${i}`, conversation(`tls-${i}`, 'tls-user'));
      assert.equal((await store.get('tls-4')).externalId, 'tls-4');
      assert.equal((await store.listByUser('tls-user')).length, 9);
      const perPrimary = await cluster.keysPerPrimary(conversationKey('tls-*'));
      for (const [port, count] of perPrimary) assert.ok(count > 0, `primary ${port} holds no record`);
    } finally {
      await store.close();
    }
  });
});
