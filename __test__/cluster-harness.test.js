'use strict';

// Proves the Redis Cluster test harness (test-support/redis-cluster.js): a plain
// cluster forms with 3 primaries that each serve slots, keys spread over all
// of them, a killed primary is replaced by its replica (and the key survives),
// the killed node rejoins after restart(), and TLS and password clusters form
// and answer.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const tlsModule = require('node:tls');
const { execFile } = require('node:child_process');
const { Cluster } = require('ioredis');

const { startCluster } = require('../test-support');

const TOTAL_SLOTS = 16384;

/** An ioredis Cluster client on the cluster's first live node; 'error' events are collected. */
function clusterClient(cluster, redisOptions = {}) {
  const seed = cluster.nodes.find((n) => n.alive);
  const client = new Cluster([{ host: seed.host, port: seed.port }], {
    redisOptions: { connectTimeout: 2000, disconnectTimeout: 100, ...redisOptions },
    clusterRetryStrategy: () => null,
    slotsRefreshTimeout: 2000,
  });
  client.errors = [];
  client.on('error', (err) => client.errors.push(err));
  return client;
}

function slotTotal(primaries) {
  return primaries.reduce((n, p) => n + p.slots.reduce((m, [a, b]) => m + (b - a + 1), 0), 0);
}

async function assertFormed(cluster) {
  assert.equal(cluster.nodes.length, 6);
  assert.ok(cluster.nodes.every((n) => n.alive));
  const primaries = await cluster.primaries();
  assert.equal(primaries.length, 3, 'three primaries');
  for (const p of primaries) {
    assert.ok(p.slots.length > 0, `primary ${p.port} serves slots`);
    assert.ok(p.handle && p.handle.port === p.port, 'each primary maps to one of our handles');
    assert.match(p.nodeId, /^[0-9a-f]{40}$/);
  }
  assert.equal(slotTotal(primaries), TOTAL_SLOTS, 'the primaries cover every slot exactly once');
  for (const node of cluster.nodes) {
    const info = await node.cli('CLUSTER', 'INFO');
    assert.match(info, /cluster_state:ok/);
    assert.match(info, /cluster_slots_ok:16384/);
    assert.match(info, /cluster_size:3/);
  }
  // Every primary has exactly one replica.
  const all = await cluster.clusterNodes();
  for (const p of primaries) {
    assert.equal(all.filter((n) => n.masterId === p.nodeId).length, 1, `primary ${p.port} has one replica`);
  }
}

describe('plain cluster', () => {
  let cluster;
  const clients = [];

  before(async () => {
    const t = Date.now();
    cluster = await startCluster();
    console.log(`plain cluster ready in ${Date.now() - t} ms`, cluster.timings);
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    if (cluster) await cluster.stop();
  });

  it('forms: 6 nodes, 3 primaries each with slots and a replica, cluster_state:ok everywhere', async () => {
    await assertFormed(cluster);
    assert.match(cluster.seedUrl, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(cluster.seedUrls.length, 6);
    assert.equal(cluster.tls, null);
    assert.ok(cluster.nodes.every((n) => n.port !== 6379 && n.host === '127.0.0.1'));
  });

  it('keys written through ioredis Cluster land on all three primaries', async () => {
    const client = clusterClient(cluster);
    clients.push(client);
    const keys = Array.from({ length: 60 }, (_, i) => `spread:${i}`);
    await Promise.all(keys.map((k) => client.set(k, `v-${k}`)));
    const perPrimary = await cluster.keysPerPrimary('spread:*');
    assert.equal(perPrimary.size, 3);
    for (const [port, count] of perPrimary) assert.ok(count > 0, `primary ${port} holds some keys`);
    assert.equal([...perPrimary.values()].reduce((a, b) => a + b, 0), keys.length);
    // DBSIZE variant agrees.
    const sizes = await cluster.keysPerPrimary();
    assert.deepEqual([...sizes.values()].reduce((a, b) => a + b, 0), keys.length);

    // nodeForKey names the node that really holds it (asked directly, no redirects).
    for (const key of keys.slice(0, 10)) {
      const owner = await cluster.nodeForKey(key);
      assert.equal(await owner.cli('GET', key), `v-${key}`);
    }
    // redis-cli -c follows MOVED from any node.
    const owner0 = await cluster.nodeForKey('spread:0');
    const other = cluster.nodes.find((n) => n !== owner0);
    assert.match(await other.cli('GET', 'spread:0'), /MOVED/);
    assert.equal(await other.cli('-c', 'GET', 'spread:0'), 'v-spread:0');
    assert.deepEqual(client.errors, []);
  });

  it('killPrimaryOf + waitForFailover: the replica takes over and the key is still readable', async () => {
    const key = 'conv:failover';
    const setup = clusterClient(cluster);
    clients.push(setup);
    await setup.set(key, 'survives');
    const primary = await cluster.nodeForKey(key);
    // Replication is asynchronous: make sure the replica has the write before the crash.
    assert.equal(await primary.cli('WAIT', '1', '2000'), '1');
    setup.disconnect();

    const t = Date.now();
    const { killed, replica } = await cluster.killPrimaryOf(key);
    assert.equal(killed, primary);
    assert.equal(killed.alive, false);
    assert.ok(replica && replica.alive && replica !== killed);
    const { promoted, elapsedMs } = await cluster.waitForFailover(killed);
    console.log(`failover done ${Date.now() - t} ms after the kill (waitForFailover ${elapsedMs} ms)`);
    assert.equal(promoted, replica, 'the only replica was promoted');

    assert.match(await replica.cli('ROLE'), /^master/);
    assert.equal(await replica.cli('GET', key), 'survives', 'readable on the promoted replica directly');
    assert.equal(await cluster.nodeForKey(key), replica);
    const primaries = await cluster.primaries();
    assert.equal(primaries.length, 3);
    assert.ok(!primaries.some((p) => p.handle === killed));
    assert.equal(slotTotal(primaries), TOTAL_SLOTS);

    const fresh = clusterClient(cluster);
    clients.push(fresh);
    assert.equal(await fresh.get(key), 'survives', 'readable through a cluster client');
    await fresh.set(key, 'writable again');
    assert.equal(await replica.cli('GET', key), 'writable again');
  });

  it('a restarted killed primary rejoins as a replica of the promoted node', async () => {
    const killed = cluster.nodes.find((n) => !n.alive);
    assert.ok(killed, 'the previous test left one node down');
    await killed.restart();
    const promoted = await cluster.nodeForKey('conv:failover');
    assert.notEqual(promoted, killed);
    const promotedId = (await cluster.primaries()).find((p) => p.handle === promoted).nodeId;
    // 'ok' everywhere, and every live node sees the restarted one as the promoted node's replica.
    await cluster.waitForState((snap) => cluster.isOk(snap) && snap.live.every((view) => {
      const entry = view.nodes.find((n) => n.port === killed.port);
      return entry && entry.flags.includes('slave') && entry.masterId === promotedId;
    }), 10_000);
    assert.match(await killed.cli('ROLE'), /^slave/);
    await cluster.waitForReplicasInSync(10_000);
    const [, value] = await cluster.commands(killed, ['READONLY'], ['GET', 'conv:failover']);
    assert.equal(value, 'writable again', 'the rejoined node resynced from the promoted one');
  });
});

describe('TLS cluster', () => {
  let cluster;
  const clients = [];

  before(async () => {
    const t = Date.now();
    cluster = await startCluster({ tls: true });
    console.log(`TLS cluster ready in ${Date.now() - t} ms`, cluster.timings);
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    if (cluster) await cluster.stop();
  });

  it('forms with one shared CA, and answers ioredis Cluster and redis-cli --tls', async () => {
    await assertFormed(cluster);
    assert.match(cluster.seedUrl, /^rediss:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(cluster.tls && cluster.tls.ca.includes('BEGIN CERTIFICATE'));
    for (const n of cluster.nodes) assert.equal(n.tls.ca, cluster.tls.ca, 'every node uses the same CA');

    const client = clusterClient(cluster, { tls: { ca: cluster.tls.ca } });
    clients.push(client);
    const keys = Array.from({ length: 30 }, (_, i) => `tls:${i}`);
    await Promise.all(keys.map((k) => client.set(k, k)));
    assert.deepEqual(await Promise.all(keys.map((k) => client.get(k))), keys);
    const perPrimary = await cluster.keysPerPrimary('tls:*');
    assert.equal(perPrimary.size, 3);
    for (const [port, count] of perPrimary) assert.ok(count > 0, `primary ${port} holds some keys`);

    // redis-cli --tls (the handle adds --cacert/--cert/--key) with -c redirects.
    for (const n of cluster.nodes) assert.equal(await n.cli('-c', 'GET', 'tls:7'), 'tls:7');
    assert.deepEqual(client.errors, []);
  });

  it('refuses a TLS client that does not trust the CA', async () => {
    const err = await new Promise((resolve) => {
      const sock = tlsModule.connect({ host: '127.0.0.1', port: cluster.nodes[0].port });
      sock.once('secureConnect', () => {
        sock.destroy();
        resolve(null);
      });
      sock.once('error', resolve);
    });
    assert.ok(err, 'the handshake fails without the CA');
    assert.match(err.code, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });
});

describe('password cluster', () => {
  let cluster;
  const clients = [];

  before(async () => {
    const t = Date.now();
    cluster = await startCluster({ password: 's3cret pw' });
    console.log(`password cluster ready in ${Date.now() - t} ms`, cluster.timings);
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    if (cluster) await cluster.stop();
  });

  it('forms with requirepass + masterauth and needs the password', async () => {
    await assertFormed(cluster);
    assert.match(cluster.seedUrl, /^redis:\/\/:s3cret%20pw@127\.0\.0\.1:\d+$/);
    const client = clusterClient(cluster, { password: 's3cret pw' });
    clients.push(client);
    await client.set('pw:1', 'x');
    assert.equal(await client.get('pw:1'), 'x');
    const reply = await new Promise((resolve, reject) => {
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(cluster.nodes[0].port), 'PING'], (err, stdout) =>
        (err ? reject(err) : resolve(stdout)));
    });
    assert.match(reply, /NOAUTH/, 'unauthenticated commands are refused');
  });
});
