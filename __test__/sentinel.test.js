'use strict';

// RedisStore behind Redis Sentinel (issue 13), on one shared set: a primary,
// a replica and three sentinels on loopback (test-support/redis-sentinel.js).
// The contract suite runs against sentinel mode in contract.test.js; here:
// finding the primary with a sentinel down, the options refused with
// sentinels, and failovers under a write load (SENTINEL FAILOVER, then
// SIGKILL of the primary), each followed without a restart of the store.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  startSentinels,
  conversation,
  conversationKey,
  captureLogger,
  pollUntil,
  startWriteLoad,
  missingWrites,
} = require('../test-support');
const { RedisStore, StoreConfigError, createConversationStore, isRedisError } = require('..');

const TIMEOUT_MS = 1000;
// A settled call may land this late on a loaded 2-core CI machine.
const SETTLE_SLACK_MS = 300;
const RECOVERY_MS = 5000;

describe('RedisStore behind Redis Sentinel', () => {
  let set;
  const stores = [];
  const open = (options = {}) => {
    const store = new RedisStore({
      sentinels: set.sentinelUrls,
      sentinelName: set.name,
      allowPlaintext: true,
      commandTimeoutMs: TIMEOUT_MS,
      logger: null,
      ...options,
    });
    stores.push(store);
    return store;
  };

  before(async () => {
    set = await startSentinels({ quick: true });
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await set?.stop();
  });

  it('refuses url or cluster with sentinels, and a missing sentinelName, saying why', () => {
    const sentinels = ['redis://127.0.0.1:1'];
    const refused = (options, pattern) =>
      assert.throws(() => new RedisStore({ allowPlaintext: true, logger: null, ...options }), (err) => {
        assert.ok(err instanceof StoreConfigError, `${err.name}: ${err.message}`);
        assert.equal(err.code, 'STORE_INVALID_CONFIG');
        assert.match(err.message, pattern);
        return true;
      });
    refused({ sentinels, sentinelName: 'm', url: 'redis://127.0.0.1:2' }, /url and sentinels cannot be used together: .*asks them for the primary/);
    refused({ sentinels, sentinelName: 'm', cluster: true }, /cluster and sentinels cannot be used together/);
    refused({ sentinels }, /sentinelName is required with sentinels/);
    refused({ sentinels: ['rediss://127.0.0.1:1', 'redis://127.0.0.1:2'], sentinelName: 'm' }, /sentinels\[1\] must use the same scheme/);
    assert.throws(
      () => createConversationStore({ REDIS_URL: 'redis://127.0.0.1:2', REDIS_SENTINELS: sentinels[0], REDIS_SENTINEL_NAME: 'm', REDIS_ALLOW_PLAINTEXT: 'true' }, { logger: null }),
      /REDIS_URL and REDIS_SENTINELS cannot both be set/,
    );
  });

  it('createConversationStore builds a sentinel store from REDIS_SENTINELS and REDIS_SENTINEL_NAME', async () => {
    const store = createConversationStore(
      { REDIS_SENTINELS: set.sentinelUrls.join(','), REDIS_SENTINEL_NAME: set.name, REDIS_ALLOW_PLAINTEXT: 'true' },
      { logger: null },
    );
    stores.push(store);
    assert.match(store.redactedUrl, new RegExp(`^sentinel master ${set.name} \\(via redis://127\\.0\\.0\\.1:\\d+ and 2 more\\)$`));
    await store.set('env-1', conversation('env-1', 'env-user'));
    const primary = await set.primary();
    assert.notEqual(await primary.cli('GET', conversationKey('env-1')), '', 'the record is on the primary the sentinels name');
  });

  it('finds the primary when the first sentinel is down, and logs the primary it settled on', async () => {
    const [down] = set.sentinels;
    await down.kill();
    try {
      const capture = captureLogger();
      const store = open({ logger: capture.logger, connectionName: 'behind-sentinels' });
      await store.set('one-down', conversation('one-down', 'u1'));
      assert.equal((await store.get('one-down')).externalId, 'one-down');
      const primary = await set.primary();
      // The primary the sentinels named got the store's name (CLIENT SETNAME),
      // and so did the lasting +switch-master subscription on a sentinel.
      assert.match(await primary.cli('CLIENT', 'LIST'), /\bname=behind-sentinels\b.*\bresp=3\b/);
      const sentinelLists = await Promise.all(set.sentinels.filter((s) => s !== down).map((s) => s.cli('CLIENT', 'LIST')));
      assert.ok(
        sentinelLists.some((list) => /\bname=behind-sentinels\b.*\bcmd=subscribe\b/.test(list)),
        sentinelLists.join('\n'),
      );
      assert.ok(
        capture.linesAt('info').some((line) => line.includes(`names 127.0.0.1:${primary.port} as the primary of ${set.name}; ROLE confirms it`)),
        capture.lines.map((entry) => entry.line).join('\n'),
      );
      await store.close();
    } finally {
      await down.restart();
    }
  });

  it('skips a sentinel that hangs (SIGSTOP) within its share of the connect timeout', async () => {
    const [hung] = set.sentinels;
    hung.pause();
    try {
      const store = open({ connectTimeoutMs: 2000, commandTimeoutMs: 3000 });
      const started = Date.now();
      await store.set('one-hung', conversation('one-hung', 'u1'));
      // Each of the three sentinels gets a quarter of the connect timeout.
      assert.ok(Date.now() - started < 2000, `connected after ${Date.now() - started} ms`);
      assert.equal((await store.get('one-hung')).externalId, 'one-hung');
      await store.close();
    } finally {
      hung.resume();
    }
  });

  it('a write that meets a replica (READONLY) is a STORE_UNAVAILABLE RedisError, which makes the link replace the connection', async () => {
    const primary = await set.primary();
    const replica = set.servers.find((server) => server !== primary && server.alive);
    const store = new RedisStore({ url: replica.url, allowPlaintext: true, commandTimeoutMs: TIMEOUT_MS, logger: null });
    stores.push(store);
    await assert.rejects(store.set('to-replica', conversation('to-replica', 'u1')), (err) => {
      assert.ok(isRedisError(err), `${err.name}: ${err.message}`);
      assert.equal(err.code, 'STORE_UNAVAILABLE');
      assert.match(err.message, /READONLY: the server is a replica now/);
      return true;
    });
    assert.equal(await replica.cli('EXISTS', conversationKey('to-replica')), '0');
  });

  it('sends the sentinel URLs\' password to the primary, and sentinelPassword (\'\': none) to the sentinels', async () => {
    const secured = await startSentinels({ quick: true, password: 's3cret-pw' });
    try {
      const withPassword = secured.sentinelUrls.map((url) => url.replace('redis://', 'redis://:s3cret-pw@'));
      // The sentinels need no password ('' = send none); the primary does.
      const store = new RedisStore({ sentinels: withPassword, sentinelName: secured.name, sentinelPassword: '', allowPlaintext: true, logger: null });
      stores.push(store);
      await store.set('secured', conversation('secured', 'u1'));
      assert.equal((await store.get('secured')).externalId, 'secured');
      // A wrong password in the URLs reaches the primary, which refuses it.
      const wrong = secured.sentinelUrls.map((url) => url.replace('redis://', 'redis://:wrong-pw@'));
      const refused = new RedisStore({ sentinels: wrong, sentinelName: secured.name, sentinelPassword: '', allowPlaintext: true, commandTimeoutMs: TIMEOUT_MS, logger: null });
      stores.push(refused);
      await assert.rejects(refused.get('secured'), (err) => {
        assert.ok(isRedisError(err), `${err.name}: ${err.message}`);
        assert.equal(err.code, 'STORE_AUTH', err.message);
        return true;
      });
    } finally {
      await secured.stop();
    }
  });

  /**
   * Runs writers against `store` while `disrupt()` causes a failover; waits
   * for the promotion and RECOVERY_MS more of load. Returns what it saw.
   */
  async function underWriteLoad(store, capture, label, disrupt) {
    const load = startWriteLoad(store, label, { lateAfterMs: TIMEOUT_MS + SETTLE_SLACK_MS });
    const { acked, failures, late: lateSettles } = load;
    await pollUntil(() => acked.size >= 50, { what: 'writes before the failover' });
    const old = await set.primary();
    const disruptedAt = Date.now();
    await disrupt(old);
    const disruptedBy = Date.now();
    const promoted = await set.promotedFrom(old);
    const promotedAt = Date.now();
    // The store moved when it logged the new primary; serving again: a write
    // acknowledged after that.
    const movedAt = await pollUntil(
      () => capture.lines.find((entry) => entry.line.includes(`names 127.0.0.1:${promoted.port} as the primary`))?.at ?? false,
      { timeoutMs: RECOVERY_MS + 2000, intervalMs: 10, what: () => `the store to log the new primary (port ${promoted.port}):\n${capture.lines.map((e) => e.line).join('\n')}` },
    );
    const servedAt = await pollUntil(
      () => [...acked.values()].find((at) => at > movedAt) ?? false,
      { timeoutMs: RECOVERY_MS + 2000, intervalMs: 10, what: `a write acknowledged by the new primary (port ${promoted.port})` },
    );
    await pollUntil(() => Date.now() - servedAt > 500, { intervalMs: 50, what: 'more writes after recovery' });
    await load.stop();
    return { acked, failures, lateSettles, old, promoted, disruptedAt, disruptedBy, promotedAt, movedAt, servedAt };
  }

  function check(seen, what) {
    const { acked, failures, lateSettles, disruptedAt, promotedAt, movedAt, servedAt } = seen;
    assert.deepEqual(lateSettles, [], `every call settles within ${TIMEOUT_MS} ms (+${SETTLE_SLACK_MS} ms slack)`);
    for (const { err } of failures) {
      assert.ok(isRedisError(err) && err.name === 'RedisError', `${err.name} ${err.code}: ${err.message}`);
      assert.match(err.code, /^STORE_(UNAVAILABLE|TIMEOUT)$/, err.message);
    }
    assert.ok(
      servedAt - promotedAt <= RECOVERY_MS,
      `${what}: writes served by the new primary ${servedAt - promotedAt} ms after the promotion (limit ${RECOVERY_MS})`,
    );
    const codes = {};
    for (const { err } of failures) codes[err.code] = (codes[err.code] ?? 0) + 1;
    console.log(
      `# ${what}: ${acked.size} writes acknowledged, ${failures.length} rejected ${JSON.stringify(codes)}; ` +
        `promotion seen ${promotedAt - disruptedAt} ms after the disruption, the store on the new primary ` +
        `${movedAt - promotedAt} ms after that, a write served ${servedAt - promotedAt} ms after it`,
    );
  }

  /** Lost writes may only be ones the old primary acknowledged before the store moved. */
  async function countLost(store, seen, what, ackedBefore) {
    const lost = await missingWrites(store, seen.acked);
    console.log(`# ${what}: ${lost.length} of ${seen.acked.size} acknowledged writes lost by Redis`);
    // The promise to a JS caller and the log line travel separately: allow a little.
    for (const { id, at } of lost) assert.ok(at <= ackedBefore + 100, `${id} was acknowledged ${at - ackedBefore} ms too late to be lost`);
  }

  it('follows SENTINEL FAILOVER under a write load, without a restart', async () => {
    await set.settled();
    const capture = captureLogger();
    const store = open({ logger: capture.logger });
    const seen = await underWriteLoad(store, capture, 'manual', async () => {
      await set.failover();
    });
    check(seen, 'SENTINEL FAILOVER');
    // Replication is asynchronous: what the old primary acknowledged between
    // the replica's promotion and the store's move is gone (Redis, not the store).
    await countLost(store, seen, 'SENTINEL FAILOVER', seen.movedAt);
  });

  it('follows the SIGKILL of the primary under a write load, without a restart', async () => {
    await set.settled();
    const capture = captureLogger();
    // Backoff steps of seconds: only the +switch-master notice, which ends a
    // backoff early, lets the store move within a second of the promotion.
    const store = open({ logger: capture.logger, reconnectMinDelayMs: 3000, reconnectMaxDelayMs: 30_000 });
    const seen = await underWriteLoad(store, capture, 'killed', async (primary) => {
      await primary.kill();
    });
    check(seen, 'SIGKILL of the primary');
    assert.ok(
      seen.movedAt - seen.promotedAt <= 1000,
      `the store moved ${seen.movedAt - seen.promotedAt} ms after the promotion, despite a 1.5-3 s backoff step`,
    );
    assert.ok(
      capture.linesAt('warn').some((line) => /lost the connection/.test(line)),
      'the lost connection is logged',
    );
    // Only what the killed primary acknowledged but had not yet replicated.
    await countLost(store, seen, 'SIGKILL of the primary', seen.disruptedBy);
  });
});
