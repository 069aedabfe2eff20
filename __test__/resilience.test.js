'use strict';
// Faults injected into real redis-server processes this file starts: TLS
// (test-time CA, mutual TLS, wrong CA, server name), passwords, a killed, a
// hung (SIGSTOP) and a slow server, reconnection, status/ping and close().

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');

const { startRedis, generateCa, pollUntil, captureLogger, conversation } = require('../test-support');
const { RedisStore, isRedisError, StoreConfigError, createConversationStore } = require('..');

const TIMEOUT_MS = 400;
// Scheduling slack on a loaded 2-core CI machine.
const SLACK_MS = 700;

const fastOptions = {
  commandTimeoutMs: TIMEOUT_MS,
  connectTimeoutMs: TIMEOUT_MS,
  reconnectMinDelayMs: 20,
  reconnectMaxDelayMs: 200,
};
// For stores that must connect (the happy paths): a TLS handshake on a loaded
// 2-core machine can take longer than the 400 ms the fault tests bound.
const connectingOptions = { ...fastOptions, connectTimeoutMs: 3000 };

/** Runs `call`, expecting a RedisError; returns it with the time it took. */
async function expectRedisError(call, code) {
  const started = Date.now();
  const err = await call().then(
    () => assert.fail('expected a RedisError'),
    (e) => e,
  );
  const elapsed = Date.now() - started;
  assert.equal(err.name, 'RedisError', err.stack);
  if (code) assert.equal(err.code, code, err.message);
  assert.ok(isRedisError(err), `isRedisError must be true for ${err.code}: ${err.message}`);
  return { err, elapsed };
}

const stores = [];
function track(store) {
  stores.push(store);
  return store;
}
after(async () => {
  await Promise.all(stores.map((store) => store.close()));
});

describe('TLS', () => {
  let server;
  let mutual;
  before(async () => {
    [server, mutual] = await Promise.all([
      startRedis({ tls: true, password: 'tls-pw' }),
      startRedis({ tls: { requireClientCert: true } }),
    ]);
  });
  after(async () => {
    await Promise.all([server.stop(), mutual.stop()]);
  });

  it('verifies the server against a CA given as a PEM string or a Buffer', async () => {
    for (const ca of [server.tls.ca, Buffer.from(server.tls.ca)]) {
      const store = track(new RedisStore({ url: server.url, tls: { ca }, logger: null, ...connectingOptions }));
      await store.set('tls-1', conversation('c', 'u1'));
      assert.equal((await store.get('tls-1')).userId, 'u1');
      await store.close();
    }
  });

  it('fails with STORE_TLS, not a hang, when the CA does not match', async () => {
    const store = track(new RedisStore({ url: server.url, tls: { ca: generateCa().ca }, logger: null, ...fastOptions }));
    const { err, elapsed } = await expectRedisError(() => store.get('x'), 'STORE_TLS');
    assert.match(err.message, /certificate/i);
    assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `settled after ${elapsed} ms`);
  });

  it('uses the system roots when no CA is given (a test CA is then untrusted)', async () => {
    const store = track(new RedisStore({ url: server.url, logger: null, ...fastOptions }));
    await expectRedisError(() => store.get('x'), 'STORE_TLS');
  });

  it('checks the certificate against servername when it is given', async () => {
    // The test certificate names 127.0.0.1, localhost and redis.test.
    const ok = track(
      new RedisStore({ url: server.url, tls: { ca: server.tls.ca, servername: 'redis.test' }, logger: null, ...connectingOptions }),
    );
    await ok.set('tls-sni', conversation('c', 'u1'));
    const wrong = track(
      new RedisStore({ url: server.url, tls: { ca: server.tls.ca, servername: 'other.test' }, logger: null, ...fastOptions }),
    );
    await expectRedisError(() => wrong.get('tls-sni'), 'STORE_TLS');
  });

  it('does mutual TLS with a client certificate and key', async () => {
    const { ca, clientCert, clientKey } = mutual.tls;
    const store = track(new RedisStore({ url: mutual.url, tls: { ca, cert: clientCert, key: clientKey }, logger: null, ...connectingOptions }));
    await store.set('mtls-1', conversation('c', 'u1'));
    assert.equal((await store.get('mtls-1')).userId, 'u1');
    const anonymous = track(new RedisStore({ url: mutual.url, tls: { ca }, logger: null, ...fastOptions }));
    await expectRedisError(() => anonymous.get('mtls-1'), 'STORE_TLS');
  });

  it('refuses plaintext redis:// unless allowPlaintext is set, and never offers to skip verification', () => {
    assert.throws(
      () => new RedisStore({ url: 'redis://127.0.0.1:1' }),
      (err) => err instanceof StoreConfigError && /allowPlaintext/.test(err.message) && !isRedisError(err),
    );
    assert.throws(() => new RedisStore({ url: `${server.url}#insecure` }), StoreConfigError);
    assert.throws(() => new RedisStore({ url: 'redis://127.0.0.1:1', tls: { ca: server.tls.ca }, allowPlaintext: true }), StoreConfigError);
  });
});

describe('passwords', () => {
  let server;
  before(async () => {
    server = await startRedis({ tls: true, password: 'default-pw', aclUser: { name: 'chat', password: 'chat-pw' } });
  });
  after(() => server.stop());

  const urlWith = (credentials) => `rediss://${credentials}@127.0.0.1:${server.port}`;

  it('authenticates with a password in the URL, or an ACL user and password', async () => {
    for (const credentials of [':default-pw', 'chat:chat-pw']) {
      const store = track(new RedisStore({ url: urlWith(credentials), tls: { ca: server.tls.ca }, logger: null, ...connectingOptions }));
      await store.set(`auth-${credentials}`, conversation('c', 'u1'));
      assert.ok(await store.get(`auth-${credentials}`));
      await store.close();
    }
  });

  it('fails with STORE_AUTH on a wrong password, and never logs the password', async () => {
    const { lines, logger } = captureLogger();
    const store = track(new RedisStore({ url: urlWith('chat:wrong-secret'), tls: { ca: server.tls.ca }, logger, ...fastOptions }));
    const { err } = await expectRedisError(() => store.get('x'), 'STORE_AUTH');
    assert.doesNotMatch(err.message, /wrong-secret/);
    await pollUntil(() => lines.some(({ line }) => /cannot connect/.test(line)), { what: 'a connect failure log line' });
    for (const { line } of lines) {
      assert.doesNotMatch(line, /wrong-secret/);
      assert.match(line, /^\[STORE\] /);
    }
  });
});

describe('faults on a plain server', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  function plainStore(extra = {}) {
    return track(new RedisStore({ url: server.url, allowPlaintext: true, logger: null, ...fastOptions, ...extra }));
  }

  it('reports status and measures a ping', async () => {
    const store = plainStore();
    assert.ok(['connecting', 'ready'].includes(store.status));
    const rtt = await store.ping();
    assert.equal(typeof rtt, 'number');
    assert.ok(rtt > 0 && rtt < TIMEOUT_MS, `ping took ${rtt} ms`);
    assert.equal(store.status, 'ready');
  });

  it('settles every call within the timeout while the server is hung (SIGSTOP), then heals', async () => {
    const store = plainStore();
    await store.set('hung-1', conversation('c', 'u1'));
    server.pause();
    try {
      const calls = Array.from({ length: 50 }, (_, i) => expectRedisError(() => store.get(`hung-${i}`)));
      const results = await Promise.all(calls);
      for (const { err, elapsed } of results) {
        assert.ok(['STORE_TIMEOUT', 'STORE_UNAVAILABLE'].includes(err.code), err.message);
        assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `settled after ${elapsed} ms`);
      }
      // Later calls, after the link was given up, fail fast or within the timeout too.
      const { elapsed } = await expectRedisError(() => store.get('hung-1'));
      assert.ok(elapsed < TIMEOUT_MS + SLACK_MS);
    } finally {
      server.resume();
    }
    await pollUntil(async () => (await store.get('hung-1').catch(() => null))?.userId === 'u1', {
      what: 'the store to serve again after SIGCONT',
    });
  });

  it('notices a connection that died while idle, without any call, and replaces it', async () => {
    const { lines, logger } = captureLogger();
    const store = plainStore({ logger, heartbeatIntervalMs: 100 });
    await store.set('idle-1', conversation('c', 'u1'));
    assert.equal(store.status, 'ready');
    server.pause();
    try {
      // No call is made: the heartbeat alone must find out.
      await pollUntil(() => store.status !== 'ready', { what: 'the heartbeat to give up the hung connection' });
      assert.ok(lines.some(({ line }) => /lost the connection.*PING/.test(line)), JSON.stringify(lines));
    } finally {
      server.resume();
    }
    await pollUntil(() => store.status === 'ready', { what: 'reconnection after SIGCONT' });
    assert.equal((await store.get('idle-1')).userId, 'u1');
  });

  it('leaves ready as soon as a call times out on a hung server, and is ready again once the probe answers', async (t) => {
    const { lines, logger } = captureLogger();
    // The probe waits up to the command timeout (2 s); the call gives up after its own 200 ms.
    const store = plainStore({ logger, commandTimeoutMs: 2000, heartbeatIntervalMs: 3_600_000 });
    await store.set('stalled-1', conversation('c', 'u1'));
    assert.equal(store.status, 'ready');
    server.pause();
    let statusAtRejection;
    let resumedAt;
    try {
      const started = Date.now();
      const err = await store.get('stalled-1', { timeoutMs: 200 }).then(
        () => assert.fail('expected STORE_TIMEOUT'),
        (e) => {
          statusAtRejection = store.status;
          return e;
        },
      );
      const elapsed = Date.now() - started;
      assert.equal(err.code, 'STORE_TIMEOUT', err.message);
      t.diagnostic(`status was '${statusAtRejection}' when the call rejected, ${elapsed} ms after it started`);
      assert.equal(statusAtRejection, 'reconnecting', 'status leaves ready when the call times out, not after the probe');
      assert.ok(
        lines.some(({ level, line }) => level === 'warn' && /no answer from .*checking the connection with PING/.test(line)),
        JSON.stringify(lines),
      );
    } finally {
      server.resume();
      resumedAt = Date.now();
    }
    await pollUntil(() => store.status === 'ready', { what: 'status ready once the PING is answered' });
    t.diagnostic(`status ready again ${Date.now() - resumedAt} ms after SIGCONT`);
    // Log lines cross from tokio after the status changed: wait for the line, with a deadline.
    await pollUntil(() => lines.some(({ line }) => /answers again/.test(line)), { what: () => `the 'answers again' line: ${JSON.stringify(lines)}` });
    assert.ok(!lines.some(({ line }) => /lost the connection/.test(line)), 'the same connection serves on');
    assert.equal((await store.get('stalled-1')).userId, 'u1');
  });

  it('times out a slow command with STORE_TIMEOUT, then serves again', async () => {
    const store = plainStore();
    await store.set('slow-1', conversation('c', 'u1'));
    // The server holds every client's commands for a second: slow, not dead.
    await server.cli('CLIENT', 'PAUSE', '1000', 'ALL');
    const { err, elapsed } = await expectRedisError(() => store.get('slow-1'), 'STORE_TIMEOUT');
    assert.match(err.message, /ETIMEDOUT/);
    assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `settled after ${elapsed} ms`);
    await pollUntil(async () => (await store.get('slow-1').catch(() => null)) !== null, { what: 'recovery' });
  });

  it('bounds the first connection by the connect timeout', async () => {
    server.pause();
    try {
      const store = plainStore();
      const { elapsed } = await expectRedisError(() => store.get('x'));
      assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `settled after ${elapsed} ms`);
    } finally {
      server.resume();
    }
  });

  it('fails fast with ECONNREFUSED while the server is down, and serves again when it is back', async () => {
    const { lines, logger } = captureLogger();
    const store = plainStore({ logger });
    await store.set('down-1', conversation('c', 'u1'));
    await server.kill();
    await pollUntil(() => store.status === 'reconnecting', { what: 'status reconnecting' });
    // Let several reconnect attempts fail, then check every call settles and says why.
    await pollUntil(() => lines.filter(({ line }) => /cannot connect/.test(line)).length >= 3, { what: 'attempts' });
    const results = await Promise.all(Array.from({ length: 200 }, () => expectRedisError(() => store.get('down-1'))));
    for (const { err, elapsed } of results) {
      assert.equal(err.code, 'STORE_UNAVAILABLE');
      assert.match(err.message, /ECONNREFUSED|ECONNRESET/);
      assert.ok(elapsed < TIMEOUT_MS + SLACK_MS, `settled after ${elapsed} ms`);
    }
    await server.restart();
    await pollUntil(() => store.status === 'ready', { what: 'status ready after restart' });
    await store.set('down-2', conversation('c', 'u1'));
    assert.equal((await store.get('down-2')).userId, 'u1');
    const lost = lines.filter(({ line }) => /lost the connection/.test(line));
    const recovered = lines.filter(({ line }) => /reconnected to/.test(line));
    assert.equal(lost.length, 1, JSON.stringify(lines));
    assert.equal(recovered.length, 1, JSON.stringify(lines));
    const attempts = lines.filter(({ line }) => /cannot connect/.test(line)).length;
    assert.ok(attempts >= 3, 'each reconnect attempt is logged with its delay');
    assert.match(lines.find(({ line }) => /cannot connect/.test(line)).line, /next attempt in \d+ ms/);
  });
});

describe('connectionName', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  /** The names of the server's connections, but for the redis-cli asking. */
  async function storeConnectionNames() {
    const list = await server.cli('CLIENT', 'LIST');
    return list
      .split('\n')
      .filter((line) => !/\bcmd=client\|list\b/.test(line))
      .map((line) => /\bname=(\S*)/.exec(line)[1]);
  }

  it('names the connection with CLIENT SETNAME: the default, a given name, none with \'\'', async () => {
    for (const [options, expected] of [
      [{}, 'redis-conversation-store'],
      [{ connectionName: 'chat-api-prod' }, 'chat-api-prod'],
      [{ connectionName: '' }, ''],
    ]) {
      const store = track(new RedisStore({ url: server.url, allowPlaintext: true, logger: null, ...fastOptions, ...options }));
      await store.ping();
      assert.deepEqual(await storeConnectionNames(), [expected], JSON.stringify(options));
      await store.close();
      await pollUntil(async () => (await storeConnectionNames()).length === 0, { what: 'the connection to close' });
    }
    const fromEnv = track(
      createConversationStore(
        { REDIS_URL: server.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_CONNECTION_NAME: 'from-env' },
        { logger: null },
      ),
    );
    await fromEnv.ping();
    assert.deepEqual(await storeConnectionNames(), ['from-env']);
    await fromEnv.close();
  });

  it('names the new connection after a reconnection', async () => {
    const store = track(
      new RedisStore({ url: server.url, allowPlaintext: true, logger: null, ...fastOptions, connectionName: 'again' }),
    );
    await store.ping();
    await server.cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await pollUntil(async () => (await store.ping().catch(() => null)) !== null, { what: 'the store to reconnect' });
    assert.deepEqual(await storeConnectionNames(), ['again']);
    await store.close();
  });

  it('refuses a name Redis would refuse, at construction, saying why', () => {
    for (const name of ['chat api', 'chat\napi', 'café']) {
      assert.throws(
        () => new RedisStore({ url: server.url, allowPlaintext: true, logger: null, connectionName: name }),
        (err) => err instanceof StoreConfigError && /connectionName/.test(err.message) && /spaces/.test(err.message),
        JSON.stringify(name),
      );
    }
    assert.throws(
      () => createConversationStore({ REDIS_URL: server.url, REDIS_ALLOW_PLAINTEXT: 'true', REDIS_CONNECTION_NAME: 'a b' }),
      StoreConfigError,
    );
    assert.throws(() => new RedisStore({ url: server.url, allowPlaintext: true, clientName: 'x' }), /connectionName/);
  });
});

describe('close() and destroy()', () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  it('destroy() settles calls in flight and rejects later calls with STORE_CLOSED', async () => {
    const store = track(
      new RedisStore({ url: server.url, allowPlaintext: true, logger: null, ...fastOptions, commandTimeoutMs: 5000 }),
    );
    await store.set('close-1', conversation('c', 'u1'));
    server.pause();
    try {
      const inFlight = Array.from({ length: 10 }, () => store.get('close-1').then(() => 'resolved', (err) => err));
      const started = Date.now();
      store.destroy();
      const outcomes = await Promise.all(inFlight);
      assert.ok(Date.now() - started < 1000, 'in-flight calls settle at destroy(), not at the 5 s timeout');
      for (const outcome of outcomes) assert.equal(outcome.code, 'STORE_CLOSED');
    } finally {
      server.resume();
    }
    assert.equal(store.status, 'closed');
    const { err } = await expectRedisError(() => store.get('close-1'), 'STORE_CLOSED');
    assert.match(err.message, /closed/);
  });

  it('lets the process exit by itself after close()', async () => {
    const script = `
      const { RedisStore } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
      (async () => {
        const store = new RedisStore({ url: ${JSON.stringify(server.url)}, allowPlaintext: true, logger: null });
        await store.set('exit-1', { userId: 'u', updatedAt: new Date().toISOString() });
        await store.close();
      })();`;
    const started = Date.now();
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, 5000);
      child.on('exit', (status) => {
        clearTimeout(timer);
        resolve(status);
      });
    });
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 2000 + SLACK_MS, `exited after ${Date.now() - started} ms`);
  });
});
