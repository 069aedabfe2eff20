#!/usr/bin/env node
// Soak: many operations while Redis is killed and restarted several times.
// Afterwards every acknowledged write must be readable, every failed call
// must have been a RedisError, and RSS must have stayed flat.
//
//   node --expose-gc scripts/soak.js [--seconds 60] [--restarts 5] [--concurrency 32]
//
// The server runs with appendfsync always, so what Redis acknowledged
// survives SIGKILL: a lost write would be the store's fault, not Redis's.
//
// "Lost" is judged as linearizability does: concurrent writes to one id may
// apply in either order, but the value read at the end must not come from a
// write that had already settled before some acknowledged write was issued.
'use strict';

const { parseArgs } = require('node:util');
const { startRedis, pollUntil, delay, conversation } = require('../test-support');
const { RedisStore, isRedisError } = require('..');

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    restarts: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
    ids: { type: 'string', default: '2000' },
  },
});
const DURATION_MS = Number(args.seconds) * 1000;
const RESTARTS = Number(args.restarts);
const CONCURRENCY = Number(args.concurrency);
const ID_SPACE = Number(args.ids);

const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1);

async function main() {
  const server = await startRedis({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const store = new RedisStore({
    url: server.url,
    allowPlaintext: true,
    commandTimeoutMs: 1000,
    connectTimeoutMs: 1000,
    reconnectMaxDelayMs: 500,
    logger: null,
  });

  // A logical clock: ticks at every call and every settlement.
  let clock = 0;
  // id → the latest clock at which an acknowledged set() of it was issued.
  const acknowledged = new Map();
  // id → the last writes' [version, clock when its set() settled]; a bounded
  // window (more than the writes one id can have in flight), so that the
  // soak's own bookkeeping does not grow with the run and blur the RSS check.
  const settledAt = new Map();
  const SETTLED_WINDOW = 16;
  const noteSettled = (id, v, at) => {
    const recent = settledAt.get(id) ?? [];
    recent.push([v, at]);
    if (recent.length > SETTLED_WINDOW) recent.shift();
    settledAt.set(id, recent);
  };
  const failures = new Map();
  const notRedisErrors = [];
  let ok = 0;
  let version = 0;
  let running = true;

  async function worker() {
    while (running) {
      const id = `soak-${Math.floor(Math.random() * ID_SPACE)}`;
      const roll = Math.random();
      try {
        if (roll < 0.5) {
          const v = ++version;
          const issuedAt = ++clock;
          try {
            await store.set(id, conversation(id, `user-${v % 20}`, {
              updatedAt: new Date().toISOString(),
              version: v,
              history: [{ role: 'user', content: 'x'.repeat(200) }],
            }));
          } finally {
            noteSettled(id, v, ++clock);
          }
          if ((acknowledged.get(id) ?? 0) < issuedAt) acknowledged.set(id, issuedAt);
        } else if (roll < 0.9) {
          await store.get(id);
        } else {
          await store.listByUser(`user-${Math.floor(Math.random() * 20)}`, { limit: 10 });
        }
        ok += 1;
      } catch (err) {
        failures.set(err.code, (failures.get(err.code) ?? 0) + 1);
        if (!isRedisError(err)) notRedisErrors.push(err);
        // As a server would: the next request comes later, not in a hot loop.
        await delay(5);
      }
    }
  }

  const started = Date.now();
  const workers = Array.from({ length: CONCURRENCY }, worker);
  const rss = [];
  const recoveries = [];
  const heap = [];
  const sampler = setInterval(() => {
    // With --expose-gc (as `npm run soak` runs it), sample live memory, not garbage.
    global.gc?.();
    const usage = process.memoryUsage();
    rss.push(usage.rss);
    heap.push(usage.heapUsed + usage.external);
  }, 1000);

  for (let i = 0; i < RESTARTS; i += 1) {
    // The workload's own schedule: run a while, then take the server away for a moment.
    await delay(DURATION_MS / (RESTARTS + 1));
    await server.kill();
    await delay(300);
    const restartedAt = Date.now();
    await server.restart();
    await pollUntil(() => store.status === 'ready', { timeoutMs: 30_000, intervalMs: 10, what: 'the store to reconnect' });
    recoveries.push(Date.now() - restartedAt);
  }
  await delay(Math.max(0, started + DURATION_MS - Date.now()));
  running = false;
  await Promise.all(workers);
  clearInterval(sampler);

  // Every acknowledged write is readable, at its version or a later one.
  let lost = 0;
  for (const [id, lastIssued] of acknowledged) {
    const record = await store.get(id);
    const settled = record && settledAt.get(id)?.find(([v]) => v === record.version)?.[1];
    // Not in the window: many later writes settled after it, so it is stale.
    if (!record || settled === undefined || settled < lastIssued) {
      lost += 1;
      console.error(`lost: ${id}: read ${record ? `version ${record.version}` : 'nothing'}, older than an acknowledged write`);
    }
  }
  await store.close();
  await server.stop();

  const failed = [...failures.values()].reduce((a, b) => a + b, 0);
  // RSS climbs while allocators and V8 size themselves (about 30 s here),
  // then holds: compare the end with a third of the way in.
  const warm = Math.max(0, Math.floor(rss.length / 3) - 1);
  const early = rss[warm];
  const late = rss[rss.length - 1];
  const report = {
    seconds: (Date.now() - started) / 1000,
    restarts: RESTARTS,
    operations: ok + failed,
    succeeded: ok,
    failed,
    failedByCode: Object.fromEntries(failures),
    failedNotRedisError: notRedisErrors.length,
    acknowledgedIds: acknowledged.size,
    lostAcknowledgedWrites: lost,
    recoveryMs: recoveries,
    rssMbAfterWarmUp: mb(early),
    rssMbAtEnd: mb(late),
    rssMbMax: mb(Math.max(...rss)),
    rssMbEvery10s: rss.filter((_, i) => i % 10 === 9).map(mb).join(' '),
    jsHeapAndExternalMbAfterWarmUp: mb(heap[warm]),
    jsHeapAndExternalMbAtEnd: mb(heap[heap.length - 1]),
    rssGrowth: `${(((late - early) / early) * 100).toFixed(1)} %`,
  };
  console.log(JSON.stringify(report, null, 2));
  const flat = late <= early * 1.1;
  if (lost > 0 || notRedisErrors.length > 0 || !flat) {
    if (notRedisErrors.length) console.error(notRedisErrors.slice(0, 3));
    console.error('soak: FAILED');
    process.exit(1);
  }
  console.log('soak: OK');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
