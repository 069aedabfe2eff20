'use strict';
// bench/lib/latency-proxy.js and examples/latency_proxy.rs: the bench's
// network row stands on the delay the proxy really adds, so test it does.

const test = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore } = require('..');
const { startRedis } = require('../test-support');
const { startLatencyProxy, medianPingMs } = require('../bench/lib/latency-proxy');

test('the latency proxy holds each direction for its delay and relays a store\'s traffic intact', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const delayMs = 2;
  const proxy = await startLatencyProxy(server.port, delayMs);
  t.after(() => proxy.stop());
  // startLatencyProxy refuses a proxy adding under 90 %; a stuck one would add far more.
  assert.ok(proxy.addedMs >= delayMs * 0.9 && proxy.addedMs < delayMs + 5, `added ${proxy.addedMs} ms each way`);

  const store = new RedisStore({ url: proxy.url, allowPlaintext: true, keyPrefix: 'proxy-test:' });
  t.after(() => store.close());
  const record = { userId: 'u1', updatedAt: new Date().toISOString(), history: [{ role: 'user', content: 'é'.repeat(100_000) }] };
  await store.set('c1', record);
  const started = process.hrtime.bigint();
  assert.deepEqual(await store.get('c1'), record);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(elapsedMs >= 2 * delayMs * 0.9, `a get through the proxy took ${elapsedMs} ms`);

  // Stopping the proxy ends its process: its port no longer answers.
  await proxy.stop();
  await assert.rejects(medianPingMs(proxy.port), /ECONNREFUSED/);
});
