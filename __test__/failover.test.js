'use strict';
// Failover behind one endpoint (issue 10, point 5): a managed Redis (Azure
// Cache for Redis, ElastiCache, a DNS name in front of a primary and a
// replica) fails over by demoting the old primary and pointing the endpoint
// at the new one, while connections already open stay on the old server. A
// TCP proxy (test-support/tcp-proxy.js) stands in for the endpoint.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  startRedis,
  startProxy,
  pollUntil,
  sendCommands,
  captureLogger,
  conversation,
  conversationKey,
  LOOPBACK,
  freePort,
} = require('../test-support');
const { RedisStore, isRedisError } = require('..');

const WRITERS = 8;
/** The bound: writes succeed again within this long after the switch. */
const RECOVERY_BOUND_MS = 2000;

/** A field of INFO replication. */
async function replicationField(server, field) {
  const info = await server.cli('INFO', 'replication');
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

describe('failover behind one endpoint', () => {
  let primary;
  let replica;
  let proxy;
  let store;
  before(async () => {
    // Replicas sync at once, not after Redis's default 5 s diskless-sync delay.
    const quickSync = { extraArgs: ['--repl-diskless-sync-delay', '0'] };
    [primary, replica] = await Promise.all([startRedis(quickSync), startRedis(quickSync)]);
    await replica.cli('REPLICAOF', LOOPBACK, String(primary.port));
    await pollUntil(async () => (await replicationField(replica, 'master_link_status')) === 'up', {
      what: 'the replica to sync',
    });
    proxy = await startProxy({ target: primary });
  });
  after(async () => {
    await store?.close();
    await proxy?.close();
    // SIGKILL: a primary with a replica would wait on SIGTERM for it to catch up.
    await Promise.all([primary?.kill(), replica?.kill()]);
  });

  it('moves to the promoted replica through the same URL, with no restart and no acknowledged write lost', async (t) => {
    const { lines, logger } = captureLogger();
    store = new RedisStore({
      url: proxy.url(),
      allowPlaintext: true,
      logger,
      commandTimeoutMs: 1000,
      connectTimeoutMs: 1000,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 200,
    });
    await store.set('before', conversation('before', 'u1'));

    const acknowledged = [];
    const failures = [];
    let switchedAt;
    let firstWriteAfterSwitch;
    let stopping = false;
    const writer = async (w) => {
      for (let i = 0; !stopping; i += 1) {
        const id = `w${w}-${i}`;
        try {
          await store.set(id, conversation(id, `u${w}`));
          acknowledged.push(id);
          if (switchedAt !== undefined && firstWriteAfterSwitch === undefined) {
            firstWriteAfterSwitch = Date.now() - switchedAt;
          }
        } catch (err) {
          failures.push(err);
          // A failed call is answered at once while reconnecting: pace the retry.
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    await pollUntil(() => acknowledged.length >= 200, { what: 'the write load to run on the primary' });

    // A planned failover, as a managed service runs it: hold writes on the
    // old primary until the replica has every one of them (replication is
    // asynchronous: without this, Redis itself could drop acknowledged
    // writes), promote the replica, demote the old primary, point the
    // endpoint at the new one. Connections already open stay on the old one.
    await primary.cli('CLIENT', 'PAUSE', '10000', 'WRITE');
    const offset = await replicationField(primary, 'master_repl_offset');
    await pollUntil(async () => (await replicationField(replica, 'slave_repl_offset')) === offset, {
      what: 'the replica to catch up',
    });
    await replica.cli('REPLICAOF', 'NO', 'ONE');
    await primary.cli('REPLICAOF', LOOPBACK, String(replica.port));
    // The writes held on the old primary now meet a replica (READONLY), and
    // so do those of each new connection until the endpoint moves: a DNS
    // name can lag the promotion.
    await primary.cli('CLIENT', 'UNPAUSE');
    await pollUntil(() => failures.some((err) => /READONLY/.test(err.message)), { what: 'a READONLY reply' });
    assert.ok(proxy.connectionsTo(primary) >= 1, 'the store is still connected to the old primary');
    proxy.switchTo(replica);
    switchedAt = Date.now();

    await pollUntil(() => firstWriteAfterSwitch !== undefined, {
      timeoutMs: 10_000,
      what: 'a write to succeed after the switch',
    });
    const acknowledgedAfter = acknowledged.length;
    await pollUntil(() => acknowledged.length >= acknowledgedAfter + 100, { what: 'the load to run on' });
    stopping = true;
    await Promise.all(writers);
    t.diagnostic(
      `first successful write ${firstWriteAfterSwitch} ms after the endpoint switched; ` +
        `${acknowledged.length} writes acknowledged, ${failures.length} rejected`,
    );

    assert.ok(
      firstWriteAfterSwitch < RECOVERY_BOUND_MS,
      `writes succeeded again ${firstWriteAfterSwitch} ms after the switch`,
    );
    assert.equal(store.status, 'ready');
    assert.equal(proxy.connectionsTo(primary), 0, 'the connection to the demoted primary was replaced');
    for (const err of failures) {
      assert.ok(isRedisError(err), err.stack);
      assert.ok(['STORE_UNAVAILABLE', 'STORE_TIMEOUT'].includes(err.code), `${err.code}: ${err.message}`);
    }
    assert.ok(
      failures.some((err) => err.code === 'STORE_UNAVAILABLE' && /READONLY/.test(err.message)),
      'a write that met the demoted primary rejected with STORE_UNAVAILABLE, naming READONLY',
    );
    assert.ok(
      lines.some(({ level, line }) => level === 'warn' && /lost the connection .*READONLY.*reconnecting/.test(line)),
      JSON.stringify(lines.slice(-10)),
    );

    // Every acknowledged write is on the new primary.
    const keys = ['before', ...acknowledged].map((id) => conversationKey(id));
    const replies = await sendCommands({ port: replica.port }, keys.map((key) => ['EXISTS', key]), 10_000);
    const missing = keys.filter((_, i) => replies[i] !== 1);
    assert.deepEqual(missing, [], `${missing.length} of ${keys.length} acknowledged writes missing from the new primary`);
    assert.equal((await store.get('before')).userId, 'u1');
  });
});

describe('a server that cannot serve writes', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server?.stop());

  it('MASTERDOWN (a replica cut off from its primary) replaces the connection, and the store serves once the server can', async () => {
    const { lines, logger } = captureLogger();
    const store = new RedisStore({
      url: server.url,
      allowPlaintext: true,
      logger,
      commandTimeoutMs: 1000,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 100,
    });
    try {
      await store.set('md-1', conversation('md-1', 'u1'));
      // A replica of a primary that does not exist, told not to serve stale data.
      const nowhere = await freePort();
      await server.cli('CONFIG', 'SET', 'replica-serve-stale-data', 'no');
      await server.cli('REPLICAOF', LOOPBACK, String(nowhere));
      // A read: a write would meet READONLY first.
      const err = await store.get('md-1').then(
        () => assert.fail('expected STORE_UNAVAILABLE'),
        (e) => e,
      );
      assert.ok(isRedisError(err), err.stack);
      assert.equal(err.code, 'STORE_UNAVAILABLE', err.message);
      assert.match(err.message, /MASTERDOWN|MasterDown/);
      assert.ok(
        lines.some(({ line }) => /lost the connection .*(MASTERDOWN|MasterDown).*reconnecting/.test(line)),
        JSON.stringify(lines),
      );
      await server.cli('REPLICAOF', 'NO', 'ONE');
      await pollUntil(async () => (await store.set('md-3', conversation('md-3', 'u1')).then(() => true, () => false)), {
        what: 'writes to succeed once the server is a primary again',
      });
      assert.equal((await store.get('md-1')).userId, 'u1');
    } finally {
      await store.close();
    }
  });
});
