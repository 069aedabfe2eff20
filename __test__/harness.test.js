'use strict';

// Proves the test harness itself (test-support/): throwaway redis-servers
// (plain, password, ACL user, TLS, mutual TLS), fault injection
// (kill/restart, pause/resume), cleanup at exit, the ioredis reference store,
// and the shared helpers (polling, the RESP client, key layout, records).

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { z } = require('zod');

const {
  startRedis,
  freePort,
  generateCa,
  IoredisConversationStore,
  ioredisClient,
  pollUntil,
  sendCommands,
  serverPid,
  conversation,
  conversationKey,
  userIndexKey,
  parseKey,
  indexTtlSeconds,
  isoAtMinute,
  liveSdkObject,
  seededRandom,
  startProxy,
} = require('../test-support');

const servers = [];
const clients = [];

after(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
});

async function server(opts) {
  const s = await startRedis(opts);
  servers.push(s);
  return s;
}

/** A fail-fast ioredis client (errors kept in `c.errors`), disconnected after the file. */
function client(url, options = {}) {
  const c = ioredisClient(url, options);
  clients.push(c);
  return c;
}

function processGone(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'ESRCH';
  }
  // Still has a pid: only acceptable as a zombie waiting to be reaped.
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('redis-server harness', () => {
  it('freePort never returns 6379 and gives a bindable port', async () => {
    const port = await freePort();
    assert.ok(Number.isInteger(port) && port > 0 && port !== 6379);
  });

  it('a plain server answers PING via ioredis', async () => {
    const s = await server();
    assert.equal(s.host, '127.0.0.1');
    assert.notEqual(s.port, 6379);
    assert.equal(s.url, `redis://127.0.0.1:${s.port}`);
    assert.equal(s.tls, null);
    assert.ok(s.alive && s.pid > 0);
    assert.ok(fs.existsSync(s.logPath));
    const c = client(s.url);
    assert.equal(await c.ping(), 'PONG');
    assert.equal(await s.cli('PING'), 'PONG');
    // Persistence is off.
    assert.equal(await s.cli('CONFIG', 'GET', 'appendonly'), 'appendonly\nno');
  });

  it('a password server rejects no-auth and accepts the URL password', async () => {
    const s = await server({ password: 's3cr:t/pw' });
    assert.equal(s.url, `redis://:${encodeURIComponent('s3cr:t/pw')}@127.0.0.1:${s.port}`);
    const anonymous = client(`redis://127.0.0.1:${s.port}`, { enableReadyCheck: false });
    await assert.rejects(anonymous.ping(), /NOAUTH/);
    const c = client(s.url);
    assert.equal(await c.ping(), 'PONG');
    assert.equal(await s.cli('PING'), 'PONG');
  });

  it('an ACL user server authenticates as that user', async () => {
    const s = await server({ aclUser: { name: 'app', password: 'app-pw' } });
    assert.equal(s.url, `redis://app:app-pw@127.0.0.1:${s.port}`);
    const c = client(s.url);
    assert.equal(await c.call('ACL', 'WHOAMI'), 'app');
    await c.set('k', 'v');
    assert.equal(await c.get('k'), 'v');
    assert.equal(await s.cli('ACL', 'WHOAMI'), 'app');
    const wrong = client(`redis://app:nope@127.0.0.1:${s.port}`);
    await assert.rejects(wrong.connect());
    assert.match(String(wrong.errors[0]), /WRONGPASS|invalid username-password/);
  });

  it('a TLS server works with its CA and refuses an unrelated CA', async () => {
    const s = await server({ tls: true });
    assert.equal(s.url, `rediss://127.0.0.1:${s.port}`);
    for (const field of ['ca', 'cert', 'key', 'clientCert', 'clientKey']) {
      assert.match(s.tls[field], /^-----BEGIN /, field);
    }
    for (const field of ['caPath', 'certPath', 'keyPath', 'clientCertPath', 'clientKeyPath']) {
      assert.ok(fs.existsSync(s.tls[field]), field);
    }
    const c = client(s.url, { tls: { ca: s.tls.ca } });
    assert.equal(await c.ping(), 'PONG');
    assert.equal(await s.cli('PING'), 'PONG');

    const other = generateCa();
    assert.notEqual(other.ca, s.tls.ca);
    const untrusted = client(s.url, { tls: { ca: other.ca } });
    await assert.rejects(untrusted.connect());
    assert.match(String(untrusted.errors[0]), /self[- ]signed|unable to verify|certificate/i);
  });

  it('a requireClientCert server accepts a client cert and refuses none', async () => {
    const s = await server({ tls: { requireClientCert: true } });
    const c = client(s.url, {
      tls: { ca: s.tls.ca, cert: s.tls.clientCert, key: s.tls.clientKey },
    });
    assert.equal(await c.ping(), 'PONG');
    const noCert = client(s.url, { tls: { ca: s.tls.ca } });
    await assert.rejects(async () => {
      await noCert.connect();
      await noCert.ping();
    });
  });

  it('kill() then restart() brings the server back on the same port', async () => {
    const s = await server({ password: 'pw' });
    const c = client(s.url, {
      retryStrategy: () => 20,
      maxRetriesPerRequest: null,
      commandTimeout: 3000,
    });
    await c.set('before', '1');
    const { port, pid } = s;

    await s.kill();
    assert.equal(s.alive, false);
    await assert.rejects(s.cli('PING'));

    await s.restart();
    assert.equal(s.alive, true);
    assert.equal(s.port, port);
    assert.notEqual(s.pid, pid);
    // The same client reconnects; the data is gone (no persistence).
    assert.equal(await c.get('before'), null);
    assert.equal(await c.ping(), 'PONG');
  });

  it('pause() makes commands time out and resume() recovers', async () => {
    const s = await server();
    const c = client(s.url, { commandTimeout: 300 });
    assert.equal(await c.ping(), 'PONG');
    s.pause();
    assert.equal(s.alive, true);
    const started = Date.now();
    await assert.rejects(c.ping(), /Command timed out/);
    assert.ok(Date.now() - started < 2000);
    s.resume();
    assert.equal(await c.ping(), 'PONG');
  });

  it('stop() works on a paused server', async () => {
    const s = await server();
    s.pause();
    await s.stop();
    assert.equal(s.alive, false);
  });

  it('kills its servers when the process dies without stopping them', async () => {
    const script = `
      const { startRedis } = require(${JSON.stringify(path.join(__dirname, '..', 'test-support'))});
      startRedis().then((s) => {
        process.stdout.write(s.pid + ' ' + s.logPath + '\\n');
        throw new Error('crash on purpose');
      });
    `;
    const stdout = await new Promise((resolve) => {
      execFile(process.execPath, ['-e', script], { timeout: 15000 }, (err, out) => resolve(out));
    });
    const [pidText, logPath] = stdout.trim().split(' ');
    const pid = Number(pidText);
    assert.ok(pid > 0, `child printed ${JSON.stringify(stdout)}`);
    await pollUntil(() => processGone(pid), { timeoutMs: 3000, what: `redis pid ${pid} to die` });
    assert.equal(fs.existsSync(logPath), false, 'tmpdir removed at exit');
  });
});

describe('IoredisConversationStore (reference store)', () => {
  const TTL = 600;
  const PREFIX = 'rcs-test:';
  const schema = z.object({
    externalId: z.string(),
    userId: z.string(),
    tenantId: z.string(),
    history: z.array(z.any()).default([]),
    status: z.string().default('active'),
    createdAt: z.string(),
    updatedAt: z.string(),
    metadata: z.record(z.any()).optional(),
  });

  /** A record as a chat server hands it over: with its live SDK object. */
  const handedOver = (id, userId, updatedAt) => conversation(id, userId, { sdkConversationRef: liveSdkObject(), updatedAt });

  it('round-trips set, get, listByUser (newest first), delete and TTLs', async () => {
    const s = await server();
    const redis = client(s.url, { keyPrefix: PREFIX });
    const store = new IoredisConversationStore(redis, { ttlSeconds: TTL, schema });

    await store.set('c1', handedOver('c1', 'u1', '2024-01-01T10:00:00.000Z'));
    await store.set('c2', handedOver('c2', 'u1', '2024-01-01T12:00:00.000Z'));
    await store.set('c3', handedOver('c3', 'u1', '2024-01-01T11:00:00.000Z'));
    await store.set('c4', handedOver('c4', 'u2', '2024-01-02T00:00:00.000Z'));

    // Layout: prefixed keys, JSON without sdkConversationRef, index scored by updatedAt.
    const { sdkConversationRef, ...persisted } = handedOver('c1', 'u1', '2024-01-01T10:00:00.000Z');
    assert.ok(sdkConversationRef);
    assert.equal(await s.cli('GET', `${PREFIX}conv:c1`), JSON.stringify(persisted));
    assert.equal(
      Number(await s.cli('ZSCORE', `${PREFIX}user:u1:conversations`, 'c2')),
      Date.parse('2024-01-01T12:00:00.000Z'),
    );

    // TTLs on both keys.
    const ttl = Number(await s.cli('TTL', `${PREFIX}conv:c1`));
    assert.ok(ttl > TTL - 5 && ttl <= TTL, `record TTL ${ttl}`);
    const pttl = Number(await s.cli('PTTL', `${PREFIX}user:u1:conversations`));
    const indexTtlMs = (TTL + 3600) * 1000;
    assert.ok(pttl > indexTtlMs - 5000 && pttl <= indexTtlMs, `index PTTL ${pttl}`);

    assert.deepEqual(await store.get('c1'), persisted);
    assert.equal(await store.get('missing'), undefined);

    const list = await store.listByUser('u1');
    assert.deepEqual(list.map((c) => c.externalId), ['c2', 'c3', 'c1']);
    assert.deepEqual((await store.listByUser('u2')).map((c) => c.externalId), ['c4']);
    assert.deepEqual(await store.listByUser('nobody'), []);

    await store.delete('c3');
    assert.equal(await store.get('c3'), undefined);
    assert.equal(await s.cli('ZSCORE', `${PREFIX}user:u1:conversations`, 'c3'), '');
    assert.deepEqual((await store.listByUser('u1')).map((c) => c.externalId), ['c2', 'c1']);
    await store.delete('c3'); // idempotent
  });

  it('keeps the original semantics: schema defaults on read, no index pruning', async () => {
    const s = await server();
    const redis = client(s.url, { keyPrefix: PREFIX });
    const store = new IoredisConversationStore(redis, { ttlSeconds: TTL, schema });
    const plain = new IoredisConversationStore(redis, { ttlSeconds: TTL });

    const { status, ...old } = handedOver('old', 'u1', '2024-01-01T00:00:00.000Z');
    assert.equal(status, 'active');
    await store.set('old', old);
    assert.equal((await plain.get('old')).status, undefined);
    assert.equal((await store.get('old')).status, 'active');

    // A vanished record is skipped by listByUser but stays in the index.
    await store.set('gone', handedOver('gone', 'u1', '2024-01-03T00:00:00.000Z'));
    await s.cli('DEL', `${PREFIX}conv:gone`);
    assert.deepEqual((await store.listByUser('u1')).map((c) => c.externalId), ['old']);
    assert.equal(await s.cli('ZCARD', `${PREFIX}user:u1:conversations`), '2');
  });
});

describe('shared helpers', () => {
  it('pollUntil resolves the first truthy value, and fails after the deadline naming what it awaited', async () => {
    let calls = 0;
    assert.equal(await pollUntil(() => ++calls >= 3 && 'ready', { intervalMs: 1 }), 'ready');
    assert.equal(calls, 3);

    const started = Date.now();
    await assert.rejects(
      pollUntil(() => 0, { timeoutMs: 100, intervalMs: 10, what: () => 'the answer' }),
      /timed out after 100 ms waiting for the answer; last: 0/,
    );
    assert.ok(Date.now() - started >= 100);
  });

  it('pollUntil stops at the first error, unless told to retry (an AssertionError always stops it)', async () => {
    const boom = () => {
      throw new Error('not yet');
    };
    await assert.rejects(pollUntil(boom, { timeoutMs: 1000 }), /^Error: not yet$/);
    await assert.rejects(pollUntil(boom, { timeoutMs: 50, retryErrors: true }), /waiting for condition; last: not yet/);
    let calls = 0;
    const failing = () => {
      calls += 1;
      assert.fail('wrong');
    };
    await assert.rejects(pollUntil(failing, { timeoutMs: 1000, retryErrors: true }), assert.AssertionError);
    assert.equal(calls, 1);
  });

  it('the RESP client: replies in order, error replies as values, the pid probe, refused connections', async () => {
    const s = await server({ password: 'resp-pw' });
    const target = { port: s.port, auth: ['resp-pw'] };
    const [pong, wrongArity, echoed] = await sendCommands(target, [['PING'], ['INCR', 'no-such-command-key', 'x'], ['ECHO', 'héllo']]);
    assert.equal(pong, 'PONG');
    assert.ok(wrongArity instanceof Error && wrongArity.redisError, String(wrongArity));
    assert.equal(echoed, 'héllo');
    await assert.rejects(sendCommands({ port: s.port, auth: ['wrong'] }, [['PING']]), /AUTH .* failed/);
    assert.equal(await serverPid(target, 1000), s.pid);
    assert.equal(await serverPid({ port: s.port }, 1000), null, 'NOAUTH is not an answer');
    await s.stop();
    assert.equal(await serverPid(target, 1000), null, 'a refused connection is not an answer');
  });

  it('the key layout: keys with and without a prefix, read back, and no mistaken prefix', () => {
    assert.equal(conversationKey('c1'), 'conv:c1');
    assert.equal(userIndexKey('u:1', 'app:'), 'app:user:u:1:conversations');
    assert.deepEqual(parseKey('app:user:u:1:conversations', 'app:'), { kind: 'index', userId: 'u:1' });
    assert.deepEqual(parseKey('app:conv:a\nb', 'app:'), { kind: 'record', id: 'a\nb' });
    assert.equal(parseKey('other:conv:c1', 'app:'), null);
    assert.equal(parseKey('app:config', 'app:'), null);
    assert.throws(() => ['c1'].map(conversationKey), TypeError);
    assert.equal(indexTtlSeconds(600), 4200);
  });

  it('records: the builder takes overrides, the PRNG repeats itself for a seed', () => {
    const record = conversation('c1', 'u1', { updatedAt: isoAtMinute(5), status: undefined });
    assert.equal(record.externalId, 'c1');
    assert.equal(record.userId, 'u1');
    assert.equal(record.updatedAt, '2024-03-01T12:05:00.000Z');
    assert.ok(Date.parse(record.createdAt) < Date.parse(record.updatedAt));
    assert.ok('status' in record && record.status === undefined);
    assert.throws(() => JSON.stringify({ ref: liveSdkObject() }), /never be serialised/);

    const a = seededRandom(42);
    const b = seededRandom(42);
    const first = Array.from({ length: 5 }, () => a());
    assert.deepEqual(Array.from({ length: 5 }, () => b()), first);
    assert.notDeepEqual(Array.from({ length: 5 }, seededRandom(43)), first);
    for (let i = 0; i < 100; i += 1) {
      const n = a.int(7);
      assert.ok(Number.isInteger(n) && n >= 0 && n < 7);
    }
  });
});

describe('tcp proxy', () => {
  const proxies = [];
  after(() => Promise.all(proxies.map((proxy) => proxy.close())));

  /** A raw connection through the proxy that can send commands one at a time. */
  function rawClient(port) {
    const net = require('node:net');
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk;
    });
    // The proxy's close() resets it: expected, not a test failure.
    socket.on('error', () => {});
    return {
      socket,
      received: () => received,
      async send(line) {
        const before = received.length;
        socket.write(`${line}\r\n`);
        await pollUntil(() => received.length > before && received.endsWith('\r\n'), { what: `a reply to ${line}` });
        return received.slice(before).trim();
      },
    };
  }

  it('pipes to its target, moves only new connections on switchTo, and ends everything on close', async () => {
    const [a, b] = await Promise.all([startRedis(), startRedis()]);
    servers.push(a, b);
    const proxy = await startProxy({ target: a });
    proxies.push(proxy);
    assert.match(proxy.url(), /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await serverPid({ port: proxy.port }), a.pid);
    const old = rawClient(proxy.port);
    assert.match(await old.send('INFO server'), new RegExp(`process_id:${a.pid}\\b`));
    proxy.switchTo(b);
    assert.equal(await serverPid({ port: proxy.port }), b.pid, 'a new connection reaches the new target');
    assert.match(await old.send('INFO server'), new RegExp(`process_id:${a.pid}\\b`), 'an open one stays');
    assert.equal(proxy.connectionsTo(a), 1);
    // A server that closes its side closes the client's too.
    await a.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    await pollUntil(() => old.socket.destroyed || old.socket.readableEnded, { what: 'the client side to end' });
    await pollUntil(() => proxy.connectionsTo(a) === 0, { what: 'the pair to be gone' });
    const open = rawClient(proxy.port);
    await open.send('PING');
    await proxy.close();
    await pollUntil(() => open.socket.destroyed || open.socket.readableEnded, { what: 'close() to end piped connections' });
    await assert.rejects(sendCommands({ port: proxy.port }, [['PING']]), /ECONNREFUSED/);
  });

  it('adds delayMs in each direction, keeping the order of the bytes', async () => {
    const server = await startRedis();
    servers.push(server);
    const proxy = await startProxy({ target: server, delayMs: 150 });
    proxies.push(proxy);
    const client = rawClient(proxy.port);
    const started = Date.now();
    assert.equal(await client.send('PING'), '+PONG');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 290, `a round trip through 150 ms each way took ${elapsed} ms`);
    proxy.delayMs = 0;
    // Many commands in one burst, the delay lowered mid-stream: replies in order.
    const before = client.received().length;
    const commands = Array.from({ length: 50 }, (_, i) => `ECHO m${i}`);
    client.socket.write(commands.map((c) => `${c}\r\n`).join(''));
    client.socket.write('ECHO last\r\n');
    await pollUntil(() => client.received().endsWith('last\r\n'), { what: 'the last echo' });
    const reply = client.received().slice(before);
    const echoed = [...reply.matchAll(/m\d+|last/g)].map(([word]) => word);
    assert.deepEqual(echoed, [...commands.map((c) => c.split(' ')[1]), 'last']);
    client.socket.destroy();
  });
});
