'use strict';

// Credentials that rotate: username/password options, and node-redis's two
// credentials provider shapes, against real redis-servers with ACL users.
// Re-authentication must happen in place: CLIENT LIST shows the same client
// ids before and after a rotation, and no call fails while it happens.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { RedisStore } = require('..');
const { startRedis, startCluster, startSentinels, conversation, pollUntil, captureLogger } = require('../test-support');

const APP_ACL = ['on', '~*', '&*', '+@all'];

/** A streaming provider of the @redis/client shape, driven by the test. */
function streamingProvider(initial) {
  const provider = {
    type: 'streaming-credentials-provider',
    listener: null,
    disposed: 0,
    async subscribe(listener) {
      provider.listener = listener;
      return [initial, { dispose: () => { provider.disposed += 1; } }];
    },
    failures: [],
    onReAuthenticationError: (error) => provider.failures.push(error.message),
    emit: (credentials) => provider.listener.onNext(credentials),
  };
  return provider;
}

/** Client ids of `user`'s connections on one server, sorted. */
async function clientIds(handle, user = 'app') {
  const list = await handle.cli('CLIENT', 'LIST');
  return list
    .split('\n')
    .filter((line) => line.includes(` user=${user} `))
    .map((line) => Number(/^id=(\d+)/.exec(line)[1]))
    .sort((a, b) => a - b);
}

/** How many AUTH commands a server has run (HELLO ... AUTH at connect not included). */
async function authCalls(handle) {
  const stats = await handle.cli('INFO', 'commandstats');
  return Number(/cmdstat_auth:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

/** Mixed operations, a few at a time, until stopped; counts successes and failures. */
function startLoad(store, name) {
  const tally = { done: 0, failures: [] };
  let running = true;
  const worker = async (w) => {
    for (let i = 0; running; i += 1) {
      const id = `${name}-${w}-${i % 20}`;
      try {
        await store.set(id, conversation(id, `${name}-user-${w}`));
        await store.get(id);
        if (i % 5 === 0) await store.listByUser(`${name}-user-${w}`, { limit: 5 });
        if (i % 7 === 0) await store.delete(id);
        tally.done += 1;
      } catch (err) {
        tally.failures.push(err);
      }
    }
  };
  const workers = Array.from({ length: 6 }, (_, w) => worker(w));
  tally.stop = async () => {
    running = false;
    await Promise.all(workers);
    return tally;
  };
  return tally;
}

/** Waits until `tally` has `more` operations beyond what it had. */
function moreOps(tally, more, what) {
  const target = tally.done + more;
  return pollUntil(() => tally.done >= target || tally.failures.length > 0, { timeoutMs: 20_000, what });
}

describe('username and password options', () => {
  let server;
  before(async () => {
    server = await startRedis();
    await server.cli('ACL', 'SETUSER', 'app', ...APP_ACL, '>s3cret');
  });
  after(() => server?.stop());

  it('override the URL user info and are redacted', async () => {
    const { lines, logger } = captureLogger();
    const url = `redis://wrong:wrong@127.0.0.1:${server.port}`;
    const store = new RedisStore({ url, username: 'app', password: 's3cret', allowPlaintext: true, logger });
    try {
      assert.ok((await store.ping()) >= 0);
      assert.equal((await clientIds(server)).length, 1, 'the store is connected as app');
      assert.equal(store.redactedUrl, `redis://app:***@127.0.0.1:${server.port}`);
      assert.ok(lines.length > 0 && lines.every(({ line }) => !line.includes('s3cret')));
    } finally {
      await store.close();
    }
  });

  it('work as a user with only the ACL rules the README gives', async () => {
    const rules = ['~conv:*', '~user:*', '+@read', '+@write', '+@scripting', '+@transaction', '+@connection'];
    await server.cli('ACL', 'SETUSER', 'narrow', 'on', '>n1', ...rules);
    const store = new RedisStore({
      url: server.url,
      username: 'narrow',
      password: 'n1',
      allowPlaintext: true,
      slidingExpiry: true,
      logger: null,
    });
    try {
      const record = conversation('narrow-1', 'narrow-user');
      await store.set('narrow-1', record);
      await store.set('narrow-1', { ...record, title: 'again' }, { ifUpdatedAt: record.updatedAt });
      assert.equal((await store.get('narrow-1')).title, 'again');
      await store.set('narrow-1', conversation('narrow-1', 'other-user'));
      assert.equal((await store.listByUser('other-user')).length, 1);
      await store.delete('narrow-1');
      assert.equal(await store.get('narrow-1'), undefined);
    } finally {
      await store.close();
    }
  });

  it('are refused together with a credentialsProvider', () => {
    assert.throws(
      () => new RedisStore({ url: server.url, allowPlaintext: true, password: 'x', credentialsProvider: streamingProvider({ password: 'x' }) }),
      { code: 'STORE_INVALID_CONFIG', message: /cannot be used together/ },
    );
    assert.throws(
      () => new RedisStore({ url: server.url, allowPlaintext: true, credentialsProvider: { type: 'token' } }),
      { code: 'STORE_INVALID_CONFIG', message: /async-credentials-provider/ },
    );
  });
});

describe('a streaming credentials provider, one server', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server?.stop());

  it('rotates under load in place, then reconnects with the new password', async () => {
    await server.cli('ACL', 'SETUSER', 'app', 'reset', ...APP_ACL, '>p1');
    const provider = streamingProvider({ username: 'app', password: 'p1' });
    const { linesAt, logger } = captureLogger();
    const store = new RedisStore({ url: server.url, allowPlaintext: true, credentialsProvider: provider, logger });
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'the store connected with p1' });
      const before = await clientIds(server);
      assert.equal(before.length, 1);

      const load = startLoad(store, 'rot');
      await moreOps(load, 50, 'load before the rotation');
      const authsBefore = await authCalls(server);
      await server.cli('ACL', 'SETUSER', 'app', '>p2');
      provider.emit({ username: 'app', password: 'p2' });
      await pollUntil(() => linesAt('info').some((line) => line.includes('re-authenticated')), { what: 're-authentication' });
      await server.cli('ACL', 'SETUSER', 'app', '<p1');
      await moreOps(load, 100, 'load after the rotation');
      const tally = await load.stop();
      assert.deepEqual(tally.failures, [], 'no operation failed');
      assert.deepEqual(await clientIds(server), before, 'same connection: re-authenticated, not reconnected');
      assert.equal(await authCalls(server), authsBefore + 1, 'one AUTH, on the live connection');
      assert.deepEqual(linesAt('warn'), []);

      await server.cli('CLIENT', 'KILL', 'USER', 'app');
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'the store reconnected with p2' });
      const after = await clientIds(server);
      assert.equal(after.length, 1);
      assert.notDeepEqual(after, before);
    } finally {
      await store.close();
    }
    assert.equal(provider.disposed, 1, 'close() disposed the subscription');
  });

  it('keeps serving when a refresh fails (onError, or AUTH refused), and takes the next good one', async () => {
    await server.cli('ACL', 'SETUSER', 'app', 'reset', ...APP_ACL, '>good1');
    const provider = streamingProvider({ username: 'app', password: 'good1' });
    const { linesAt, logger } = captureLogger();
    const store = new RedisStore({
      url: server.url,
      allowPlaintext: true,
      credentialsProvider: provider,
      reconnectMinDelayMs: 50,
      logger,
    });
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'the store connected' });
      const before = await clientIds(server);
      provider.listener.onError(new Error('token endpoint unreachable'));
      provider.emit({ username: 'app', password: 'not-the-password' });
      await pollUntil(() => linesAt('warn').some((line) => line.includes('re-authentication')), { what: 'the refused AUTH warning' });
      assert.ok(linesAt('warn').some((line) => line.includes('token endpoint unreachable')));
      assert.ok(linesAt('warn').every((line) => !line.includes('not-the-password')), 'no password in the logs');
      assert.ok(provider.failures.some((message) => message.includes('token endpoint unreachable')), 'onReAuthenticationError: onError');
      assert.ok(provider.failures.some((message) => /re-authentication .* failed .*WRONGPASS/.test(message)), 'onReAuthenticationError: AUTH refused');
      await store.set('refresh-1', conversation('refresh-1', 'refresh-user'));
      assert.equal((await store.get('refresh-1')).externalId, 'refresh-1');
      assert.deepEqual(await clientIds(server), before, 'the live connection survived');

      await server.cli('ACL', 'SETUSER', 'app', '>good2');
      provider.emit({ username: 'app', password: 'good2' });
      await pollUntil(() => linesAt('info').some((line) => line.includes('re-authenticated')), { what: 'the good refresh' });
      assert.deepEqual(await clientIds(server), before);
    } finally {
      await store.close();
    }
  });

  it('retries a subscribe that rejects, and connects once it resolves', async () => {
    await server.cli('ACL', 'SETUSER', 'app', 'reset', ...APP_ACL, '>late');
    let attempts = 0;
    const provider = streamingProvider({ username: 'app', password: 'late' });
    const subscribe = provider.subscribe;
    provider.subscribe = async (listener) => {
      attempts += 1;
      if (attempts === 1) throw new Error('identity service starting');
      return subscribe(listener);
    };
    const { linesAt, logger } = captureLogger();
    const store = new RedisStore({ url: server.url, allowPlaintext: true, credentialsProvider: provider, logger });
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'connected after the retry', timeoutMs: 15_000 });
      assert.equal(attempts, 2);
      assert.ok(linesAt('warn').some((line) => line.includes('identity service starting')));
    } finally {
      await store.close();
    }
    assert.equal(provider.disposed, 1);
  });
});

describe('an async credentials provider', () => {
  let server;
  before(async () => {
    server = await startRedis();
    await server.cli('ACL', 'SETUSER', 'app', ...APP_ACL, '>a1');
  });
  after(() => server?.stop());

  it('is asked once per new connection, never per command', async () => {
    let calls = 0;
    const provider = {
      type: 'async-credentials-provider',
      credentials: async () => {
        calls += 1;
        return { username: 'app', password: 'a1' };
      },
    };
    const store = new RedisStore({ url: server.url, allowPlaintext: true, credentialsProvider: provider, logger: null });
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'the store connected' });
      for (let i = 0; i < 50; i += 1) await store.set(`async-${i}`, conversation(`async-${i}`, 'async-user'));
      assert.equal((await store.listByUser('async-user', { limit: 100 })).length, 50);
      assert.equal(calls, 1);
      await server.cli('CLIENT', 'KILL', 'USER', 'app');
      await pollUntil(async () => (await clientIds(server)).length === 1 && store.ping().then(() => true, () => false), {
        what: 'the store reconnected',
      });
      assert.equal(calls, 2);
    } finally {
      await store.close();
    }
  });

  it('fails calls with STORE_AUTH only when the server refuses, STORE_UNAVAILABLE when the provider does', async () => {
    const refused = new RedisStore({
      url: server.url,
      allowPlaintext: true,
      logger: null,
      credentialsProvider: { type: 'async-credentials-provider', credentials: async () => ({ username: 'app', password: 'nope' }) },
    });
    const failing = new RedisStore({
      url: server.url,
      allowPlaintext: true,
      logger: null,
      credentialsProvider: {
        type: 'async-credentials-provider',
        credentials: async () => {
          throw new Error('identity endpoint down');
        },
      },
    });
    try {
      const codeOf = (store) => store.ping().then(() => 'ok', (err) => err.code);
      await pollUntil(async () => (await codeOf(refused)) === 'STORE_AUTH', { what: 'STORE_AUTH from the server' });
      await pollUntil(async () => (await codeOf(failing)) === 'STORE_UNAVAILABLE', { what: 'STORE_UNAVAILABLE' });
      await assert.rejects(failing.ping(), (err) => err.code === 'STORE_UNAVAILABLE' && /identity endpoint down/.test(err.message));
    } finally {
      await refused.close();
      await failing.close();
    }
  });
});

describe('a streaming credentials provider, cluster', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(() => cluster?.stop());

  it('re-authenticates every node in place, then reconnects with the new password', async () => {
    // ACL commands are not replicated: every node gets the user.
    await Promise.all(cluster.nodes.map((node) => node.cli('ACL', 'SETUSER', 'app', ...APP_ACL, '>c1')));
    const provider = streamingProvider({ username: 'app', password: 'c1' });
    const { linesAt, logger } = captureLogger();
    const store = new RedisStore({
      url: cluster.seedUrl,
      cluster: true,
      allowPlaintext: true,
      credentialsProvider: provider,
      logger,
    });
    const idsPerNode = () => Promise.all(cluster.nodes.map((node) => clientIds(node)));
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'the store connected' });
      const load = startLoad(store, 'crot');
      await moreOps(load, 50, 'load before the rotation');
      const before = await idsPerNode();
      assert.ok(before.filter((ids) => ids.length > 0).length >= 3, 'connected as app to every primary');
      const authsBefore = await Promise.all(cluster.nodes.map(authCalls));

      await Promise.all(cluster.nodes.map((node) => node.cli('ACL', 'SETUSER', 'app', '>c2')));
      provider.emit({ username: 'app', password: 'c2' });
      await pollUntil(() => linesAt('info').some((line) => line.includes('re-authenticated')), { what: 're-authentication' });
      await Promise.all(cluster.nodes.map((node) => node.cli('ACL', 'SETUSER', 'app', '<c1')));
      await moreOps(load, 100, 'load after the rotation');
      const tally = await load.stop();
      assert.deepEqual(tally.failures, [], 'no operation failed');
      assert.deepEqual(await idsPerNode(), before, 'every node: the same connections');
      const authsAfter = await Promise.all(cluster.nodes.map(authCalls));
      before.forEach((ids, i) => {
        if (ids.length > 0) assert.ok(authsAfter[i] > authsBefore[i], `node ${cluster.nodes[i].port} was re-authenticated`);
      });
      assert.deepEqual(linesAt('warn'), []);

      await Promise.all(cluster.nodes.map((node) => node.cli('CLIENT', 'KILL', 'USER', 'app')));
      await pollUntil(
        async () => {
          for (let i = 0; i < 12; i += 1) await store.set(`after-kill-${i}`, conversation(`after-kill-${i}`, 'kill-user'));
          return true;
        },
        { what: 'the store reconnected every node with c2', retryErrors: true },
      );
    } finally {
      await store.close();
    }
  });
});

describe('a streaming credentials provider, Sentinel', () => {
  let set;
  before(async () => {
    set = await startSentinels({ quick: true });
  });
  after(() => set?.stop());

  it('authenticates the primary with the provider and re-authenticates it in place', async () => {
    // The provider's credentials go to the data nodes; the sentinels keep the URLs' (none here).
    await Promise.all(set.servers.map((server) => server.cli('ACL', 'SETUSER', 'app', ...APP_ACL, '>s1')));
    const provider = streamingProvider({ username: 'app', password: 's1' });
    const { linesAt, logger } = captureLogger();
    const store = new RedisStore({
      sentinels: set.sentinelUrls,
      sentinelName: set.name,
      allowPlaintext: true,
      credentialsProvider: provider,
      logger,
    });
    try {
      await pollUntil(() => store.ping().then(() => true, () => false), { what: 'connected to the primary as app' });
      const primary = await set.primary();
      const before = await clientIds(primary);
      assert.equal(before.length, 1);
      const authsBefore = await authCalls(primary);
      await Promise.all(set.servers.map((server) => server.cli('ACL', 'SETUSER', 'app', '>s2', '<s1')));
      provider.emit({ username: 'app', password: 's2' });
      await pollUntil(() => linesAt('info').some((line) => line.includes('re-authenticated')), { what: 're-authentication' });
      await store.set('sentinel-rot', conversation('sentinel-rot', 'sentinel-user'));
      assert.deepEqual(await clientIds(primary), before);
      assert.equal(await authCalls(primary), authsBefore + 1);
    } finally {
      await store.close();
    }
  });
});
