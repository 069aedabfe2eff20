'use strict';

// Acknowledged means replicated (issue 18): with waitReplicas, every write is
// followed by WAIT on the same connection, and resolves only once that many
// replicas have it. On real processes: a primary with one replica (healthy,
// then the replica detached), a Sentinel failover under a write load, and
// a forced Redis Cluster failover under a write load. The failovers print
// what Redis lost with and without the option (the README quotes them).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  startRedis,
  startSentinels,
  startCluster,
  conversation,
  conversationKey,
  userIndexKey,
  captureLogger,
  pollUntil,
  startWriteLoad,
  missingWrites,
} = require('../test-support');
const { RedisStore, RedisError, StoreConfigError, createConversationStore, isRedisError } = require('..');

const TIMEOUT_MS = 1000;
const WAIT_MS = 300;
// A settled call may land this late on a loaded 2-core machine.
const SETTLE_SLACK_MS = 400;

async function replicationInfo(server) {
  return server.cli('INFO', 'replication');
}

async function waitCalls(server) {
  const stats = await server.cli('INFO', 'commandstats');
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

function expectNotReplicated(err, replicas = 1) {
  assert.ok(err instanceof RedisError, `${err.name}: ${err.message}`);
  assert.ok(isRedisError(err));
  assert.equal(err.code, 'STORE_NOT_REPLICATED', err.message);
  assert.match(err.message, new RegExp(`applied on the primary but only 0 of ${replicas} replicas confirmed it within \\d+ ms`));
  return true;
}

describe('waitReplicas on a primary with one replica', () => {
  let primary;
  let replica;
  const stores = [];
  const open = (options = {}) => {
    const store = new RedisStore({ url: primary.url, allowPlaintext: true, commandTimeoutMs: TIMEOUT_MS, logger: null, ...options });
    stores.push(store);
    return store;
  };

  before(async () => {
    // A password keeps stray replicas out: a replica another test file left
    // behind keeps reconnecting to its dead primary's port, and if this
    // primary got that port it would acknowledge writes while ours is paused.
    primary = await startRedis({ password: 'durability-primary' });
    replica = await startRedis({
      extraArgs: ['--replicaof', '127.0.0.1', String(primary.port), '--masterauth', 'durability-primary'],
    });
    await pollUntil(async () => /master_link_status:up/.test(await replicationInfo(replica)), { what: 'the replica in sync' });
    await pollUntil(async () => /connected_slaves:1/.test(await replicationInfo(primary)), { what: 'the primary to count its replica' });
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await replica?.stop();
    await primary?.stop();
  });

  it('refuses bad values, and a waitTimeoutMs that leaves no room in commandTimeoutMs', () => {
    const refused = (options, pattern) =>
      assert.throws(() => new RedisStore({ url: 'redis://127.0.0.1:1', allowPlaintext: true, logger: null, ...options }), (err) => {
        assert.ok(err instanceof StoreConfigError, `${err.name}: ${err.message}`);
        assert.match(err.message, pattern);
        return true;
      });
    refused({ waitReplicas: -1 }, /waitReplicas must be a whole number from 0 to 100, got -1/);
    refused({ waitReplicas: 1.5 }, /waitReplicas must be a whole number/);
    refused({ waitTimeoutMs: 0 }, /waitTimeoutMs must be a whole number from 1/);
    refused({ waitReplicas: 1, commandTimeoutMs: 1000, waitTimeoutMs: 901 }, /waitTimeoutMs \(901\) must be at most nine tenths of commandTimeoutMs \(1000\), i\.e\. 900/);
    assert.throws(
      () => createConversationStore({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_ALLOW_PLAINTEXT: 'true', REDIS_WAIT_REPLICAS: 'one' }, { logger: null }),
      /REDIS_WAIT_REPLICAS must be a whole number from 0 to 100, got "one"/,
    );
    assert.throws(
      () => createConversationStore({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_ALLOW_PLAINTEXT: 'true', REDIS_WAIT_TIMEOUT: '0' }, { logger: null }),
      /REDIS_WAIT_TIMEOUT must be a whole number from 1/,
    );
  });

  it('without waitReplicas sends no WAIT; with it, one WAIT per write, and each write is on the replica when it resolves', async () => {
    await primary.cli('CONFIG', 'RESETSTAT');
    const plain = open();
    await plain.set('plain-1', conversation('plain-1', 'u-plain'));
    await plain.delete('plain-1');
    assert.equal(await waitCalls(primary), 0, 'waitReplicas 0: no WAIT');

    const store = createConversationStore(
      { REDIS_URL: primary.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_TIMEOUT: String(TIMEOUT_MS), REDIS_WAIT_REPLICAS: '1' },
      { logger: null },
    );
    stores.push(store);
    let writes = 0;
    for (let i = 0; i < 20; i += 1) {
      const id = `acked-${i}`;
      await store.set(id, conversation(id, 'u-acked', { sequence: i }));
      writes += 1;
      // Read from the replica right after the promise resolved: no polling.
      const onReplica = JSON.parse(await replica.cli('GET', conversationKey(id)));
      assert.equal(onReplica.sequence, i, `${id} on the replica when set resolved`);
    }
    const stored = await store.get('acked-3');
    await store.set('acked-3', { ...stored, status: 'completed' }, { ifUpdatedAt: stored.updatedAt });
    writes += 1;
    assert.equal(JSON.parse(await replica.cli('GET', conversationKey('acked-3'))).status, 'completed');
    await store.update('acked-4', (current) => ({ ...current, status: 'abandoned' }));
    writes += 1;
    assert.equal(JSON.parse(await replica.cli('GET', conversationKey('acked-4'))).status, 'abandoned');
    await store.delete('acked-5');
    writes += 1;
    assert.equal(await replica.cli('EXISTS', conversationKey('acked-5')), '0', 'the delete is on the replica');
    assert.equal(await waitCalls(primary), writes, 'one WAIT per write');
  });

  it('rejects writes with STORE_NOT_REPLICATED within waitTimeoutMs while the replica is away, and logs it once', async () => {
    const capture = captureLogger();
    const store = open({ waitReplicas: 1, waitTimeoutMs: WAIT_MS, logger: capture.logger });
    await store.set('stopped-0', conversation('stopped-0', 'u-stopped'));
    const before = await store.get('stopped-0');
    // The replica leaves (REPLICAOF NO ONE): with no replica attached, no
    // acknowledgement can come from Redis, and WAIT blocks its whole timeout.
    await replica.cli('REPLICAOF', 'NO', 'ONE');
    await pollUntil(async () => /connected_slaves:0/.test(await replicationInfo(primary)), { what: 'the primary to lose its replica' });
    try {
      for (let i = 1; i <= 3; i += 1) {
        const id = `stopped-${i}`;
        const started = Date.now();
        await assert.rejects(store.set(id, conversation(id, 'u-stopped')), (err) => expectNotReplicated(err));
        const took = Date.now() - started;
        assert.ok(took >= WAIT_MS - 20 && took <= WAIT_MS + SETTLE_SLACK_MS, `rejected after ${took} ms (waitTimeoutMs ${WAIT_MS})`);
        // Applied on the primary: that is what the code says.
        assert.equal(await primary.cli('EXISTS', conversationKey(id)), '1');
      }
      // WAIT holds the connection: a read sent behind a write waits for it,
      // and still settles within the command timeout (README, "Durability").
      const readStarted = Date.now();
      const [write, read] = await Promise.allSettled([
        store.set('stopped-read', conversation('stopped-read', 'u-stopped')),
        store.get('stopped-0'),
      ]);
      const readMs = Date.now() - readStarted;
      assert.equal(write.status, 'rejected');
      assert.equal(read.value?.externalId, 'stopped-0');
      assert.ok(readMs <= TIMEOUT_MS + SETTLE_SLACK_MS, `the read settled after ${readMs} ms`);
      console.log(`# a get sent behind a write whose replica is stopped: ${readMs} ms (waitTimeoutMs ${WAIT_MS})`);
      await assert.rejects(store.delete('stopped-1'), (err) => expectNotReplicated(err));
      await assert.rejects(store.update('stopped-0', (current) => ({ ...current, status: 'completed' })), (err) => expectNotReplicated(err));
      // A refused conditional set wrote nothing: its answer is the conflict,
      // whatever the replicas said.
      await assert.rejects(store.set('stopped-0', before, { ifUpdatedAt: '1999-01-01T00:00:00.000Z' }), { code: 'STORE_CONFLICT' });
      // A call's own timeoutMs caps its WAIT at half of it.
      const started = Date.now();
      await assert.rejects(store.set('stopped-short', conversation('stopped-short', 'u-stopped'), { timeoutMs: 400 }), (err) => {
        expectNotReplicated(err);
        assert.match(err.message, /within 200 ms/);
        return true;
      });
      assert.ok(Date.now() - started <= 400 + SETTLE_SLACK_MS);
      const warned = () => capture.linesAt('warn').filter((line) => line.includes('replicas are not confirming writes'));
      await pollUntil(() => warned().length > 0, { timeoutMs: 2000, what: 'the warning logged' });
      const warnings = warned();
      assert.equal(warnings.length, 1, capture.lines.map((entry) => entry.line).join('\n'));
      assert.match(warnings[0], /^\[STORE\] replicas are not confirming writes: SET conv:stopped-1: only 0 of 1 replicas confirmed it within 300 ms; writes reject with STORE_NOT_REPLICATED/);
    } finally {
      await replica.cli('REPLICAOF', '127.0.0.1', String(primary.port));
    }
    await pollUntil(
      async () => {
        try {
          await store.set('resumed', conversation('resumed', 'u-stopped'));
          return true;
        } catch (err) {
          if (err.code !== 'STORE_NOT_REPLICATED') throw err;
          return false;
        }
      },
      { timeoutMs: 10_000, what: 'a confirmed write after the replica resumed' },
    );
    // Log lines reach JS on their own queue, maybe after the promise settled.
    await pollUntil(() => capture.linesAt('info').some((line) => line.includes('replicas confirm writes again (1 of 1')), {
      timeoutMs: 2000,
      what: 'the recovery logged',
    });
    assert.equal(JSON.parse(await replica.cli('GET', conversationKey('stopped-2'))).externalId, 'stopped-2', 'the replica caught up');
  });
});

/**
 * Runs a write load against `store` while `disrupt()` fails the primary over;
 * stops `settleMs` after `served()` says the new primary acknowledged a write.
 */
async function underWriteLoad(store, label, disrupt, served, settleMs = 500) {
  const load = startWriteLoad(store, label);
  const { acked, failures } = load;
  try {
    await pollUntil(() => acked.size >= 50, { what: 'writes before the failover' });
    const disruptedAt = Date.now();
    const context = await disrupt();
    const servedAt = await pollUntil(async () => (await served(context, acked, disruptedAt)) || false, {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: `${label}: a write acknowledged by the new primary`,
    });
    await pollUntil(() => Date.now() - servedAt > settleMs, { intervalMs: 50, what: 'more writes after recovery' });
  } finally {
    await load.stop();
  }
  const codes = {};
  for (const { err } of failures) {
    assert.ok(isRedisError(err) && err.name === 'RedisError', `${err.name} ${err.code}: ${err.message}`);
    // A WAIT cut short by the demotion of its primary (UNBLOCKED) is an
    // unconfirmed write too, not a reply error.
    assert.match(err.code, /^STORE_(UNAVAILABLE|TIMEOUT|NOT_REPLICATED)$/, err.message);
    if (!codes[err.code]) console.log(`# ${label}: first ${err.code}: ${err.message}`);
    codes[err.code] = (codes[err.code] ?? 0) + 1;
  }
  for (const { err, took } of failures) assert.ok(took <= TIMEOUT_MS + SETTLE_SLACK_MS, `${err.code} after ${took} ms`);
  return { acked, codes };
}

describe('waitReplicas through a Sentinel failover under load', () => {
  let set;
  const stores = [];
  before(async () => {
    set = await startSentinels({ quick: true });
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await set?.stop();
  });

  async function failoverRun(label, waitReplicas) {
    await set.settled();
    await pollUntil(async () => /connected_slaves:1/.test(await replicationInfo(await set.primary())), {
      timeoutMs: 20_000,
      what: 'the primary to have its replica back',
    });
    const store = new RedisStore({
      sentinels: set.sentinelUrls,
      sentinelName: set.name,
      allowPlaintext: true,
      commandTimeoutMs: TIMEOUT_MS,
      waitReplicas,
      logger: null,
    });
    stores.push(store);
    const seen = await underWriteLoad(
      store,
      label,
      async () => {
        const old = await set.primary();
        await set.failover();
        return { promoted: await set.promotedFrom(old), promotedAt: Date.now() };
      },
      async ({ promotedAt }, acked) => [...acked.values()].find((at) => at > promotedAt + 200),
    );
    const missing = await missingWrites(store, seen.acked);
    console.log(
      `# SENTINEL FAILOVER, waitReplicas ${waitReplicas}: ${missing.length} of ${seen.acked.size} acknowledged writes lost; ` +
        `rejected ${JSON.stringify(seen.codes)}`,
    );
    return missing;
  }

  it('with waitReplicas 1, not one acknowledged write is missing on the new primary', async () => {
    const missing = await failoverRun('sentinel-acked', 1);
    assert.deepEqual(missing, []);
  });

  // What Redis loses is timing-dependent (often none): printed, not asserted;
  // the run still asserts the failover was followed and every record read back.
  it('without it, counts what Redis lost (printed for the README)', async () => {
    await failoverRun('sentinel-plain', 0);
  });
});

describe('waitReplicas through a forced Redis Cluster failover under load', () => {
  let cluster;
  const stores = [];
  before(async () => {
    cluster = await startCluster();
    await Promise.all(cluster.nodes.map((node) => node.cli('CONFIG', 'SET', 'cluster-require-full-coverage', 'no')));
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await cluster?.stop();
  });

  async function failoverRun(label, waitReplicas) {
    await cluster.waitForReplicasInSync(20_000, 3);
    const store = new RedisStore({
      url: cluster.seedUrl,
      clusterNodes: cluster.seedUrls.slice(1, 3),
      cluster: true,
      allowPlaintext: true,
      commandTimeoutMs: TIMEOUT_MS,
      waitReplicas,
      logger: null,
    });
    stores.push(store);
    const probeKey = conversationKey(`${label}-1`);
    const seen = await underWriteLoad(
      store,
      label,
      async () => {
        // FORCE: the replica takes over without waiting for the primary to
        // hand over its last writes (as when the primary is unreachable).
        const owner = await cluster.nodeForKey(probeKey);
        const nodes = await cluster.clusterNodes();
        const ownerId = nodes.find((node) => node.port === owner.port).nodeId;
        const replica = nodes.find((node) => node.masterId === ownerId && node.handle).handle;
        await replica.cli('CLUSTER', 'FAILOVER', 'FORCE');
        await pollUntil(async () => (await replica.cli('ROLE')).startsWith('master'), { what: 'the replica promoted' });
        await pollUntil(async () => (await owner.cli('ROLE')).startsWith('slave'), { timeoutMs: 15_000, what: 'the old primary demoted' });
        return { promotedAt: Date.now(), replica };
      },
      async ({ promotedAt, replica }, acked) => {
        // A write acknowledged since, stored on the promoted node.
        for (const [id, at] of acked) {
          if (at > promotedAt + 200 && (await cluster.nodeForKey(conversationKey(id))) === replica) return at;
        }
        return false;
      },
    );
    const missing = await missingWrites(store, seen.acked);
    console.log(
      `# CLUSTER FAILOVER FORCE, waitReplicas ${waitReplicas}: ${missing.length} of ${seen.acked.size} acknowledged writes lost; ` +
        `rejected ${JSON.stringify(seen.codes)}`,
    );
    return missing;
  }

  it('with waitReplicas 1, asks each node a write touches', async () => {
    // A replica still syncing cannot acknowledge (seen on a loaded machine).
    await cluster.waitForReplicasInSync(20_000, 3);
    const store = new RedisStore({ url: cluster.seedUrl, cluster: true, allowPlaintext: true, commandTimeoutMs: TIMEOUT_MS, waitReplicas: 1, logger: null });
    stores.push(store);
    // A record and an index on two different primaries.
    let userId;
    const recordNode = await cluster.nodeForKey(conversationKey('spread-record'));
    for (let i = 0; !userId; i += 1) {
      if ((await cluster.nodeForKey(userIndexKey(`spread-user-${i}`))) !== recordNode) userId = `spread-user-${i}`;
    }
    const indexNode = await cluster.nodeForKey(userIndexKey(userId));
    await Promise.all([recordNode.cli('CONFIG', 'RESETSTAT'), indexNode.cli('CONFIG', 'RESETSTAT')]);
    await store.set('spread-record', conversation('spread-record', userId));
    assert.equal(await waitCalls(recordNode), 1, "the record's node was asked");
    assert.equal(await waitCalls(indexNode), 1, "the index's node was asked");
    await store.delete('spread-record');
    assert.equal(await waitCalls(recordNode), 2);
    assert.equal(await waitCalls(indexNode), 2);
  });

  it('an unconfirmed step does not stop the sequence: the record is written and listed, and the call rejects', async () => {
    const store = new RedisStore({ url: cluster.seedUrl, cluster: true, allowPlaintext: true, commandTimeoutMs: TIMEOUT_MS, waitReplicas: 1, waitTimeoutMs: WAIT_MS, logger: null });
    stores.push(store);
    const recordNode = await cluster.nodeForKey(conversationKey('lagging-record'));
    let userId;
    for (let i = 0; !userId; i += 1) {
      if ((await cluster.nodeForKey(userIndexKey(`lagging-user-${i}`))) !== recordNode) userId = `lagging-user-${i}`;
    }
    const nodes = await cluster.clusterNodes();
    const recordNodeId = nodes.find((node) => node.port === recordNode.port).nodeId;
    const replica = nodes.find((node) => node.masterId === recordNodeId && node.handle).handle;
    // Connected first: a connection attempt still under way would wait on the
    // paused replica (seen on a loaded machine: STORE_UNAVAILABLE, connect timed out).
    await store.ready();
    replica.pause();
    try {
      const started = Date.now();
      await assert.rejects(store.set('lagging-record', conversation('lagging-record', userId)), (err) => expectNotReplicated(err));
      // Only the record's step waited; the index step did not wait again.
      assert.ok(Date.now() - started <= WAIT_MS + SETTLE_SLACK_MS, `rejected after ${Date.now() - started} ms`);
      assert.deepEqual((await store.listByUser(userId)).map((record) => record.externalId), ['lagging-record']);
    } finally {
      replica.resume();
    }
    await cluster.waitForReplicasInSync(20_000, 3);
  });

  it('with waitReplicas 1, not one acknowledged write is missing after the failover', async () => {
    const missing = await failoverRun('cluster-acked', 1);
    assert.deepEqual(missing, []);
  });

  it('without it, counts what Redis lost (printed for the README)', async () => {
    await failoverRun('cluster-plain', 0);
  });
});
