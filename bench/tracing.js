#!/usr/bin/env node
'use strict';
// What tracing costs: `get` of a 1 KB record at concurrency 64 on a
// RedisStore (a redis-server this process spawns), with nobody subscribed to
// `redis-conversation-store:operation` and with a subscriber (five no-op
// handlers), in alternating rounds. The figure that matters is the main
// thread's CPU per call (what the app's event loop pays), which load on
// other cores disturbs far less than throughput.
//
//   node bench/tracing.js [--rounds 7] [--seconds 1.5] [--base index-before.js] [--memory]
//
// --memory measures a MemoryStore instead, which answers at once on the main
// thread: what is left is the npm face's own cost per call, with no Redis,
// socket or tokio thread to blur it.
//
// --base FILE adds a row for another build of the npm face (e.g. the index.js
// of the commit before tracing, saved next to this repo's index.js), on the
// same native addon: the cost of the whole per-call wrapper.

const diagnosticsChannel = require('node:diagnostics_channel');
const path = require('node:path');

const { startRedis } = require('../test-support');
const { runPool, median } = require('./lib/measure');

const CONCURRENCY = 64;

function argument(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : process.argv[at + 1];
}

async function main() {
  const rounds = Number(argument('rounds', 7));
  const seconds = Number(argument('seconds', 1.5));
  const base = argument('base', undefined);
  const memory = process.argv.includes('--memory');
  const server = memory ? undefined : await startRedis();
  const record = { userId: 'bench-user', updatedAt: new Date().toISOString(), history: [{ role: 'user', content: 'x'.repeat(1000) }] };
  const faces = [['index.js', require('..')]];
  if (base) faces.push([path.basename(base), require(path.resolve(base))]);
  const stores = faces.map(([name, face]) => [
    name,
    memory ? new face.MemoryStore({ logger: null }) : new face.RedisStore({ url: server.url, allowPlaintext: true, logger: null }),
  ]);
  for (const [, store] of stores) await store.set('bench-1', record);

  const channel = diagnosticsChannel.tracingChannel('redis-conversation-store:operation');
  const noop = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
  const rows = new Map();
  const measure = async (label, store) => {
    const run = await runPool({ op: () => store.get('bench-1'), concurrency: CONCURRENCY, limit: 1_000_000, durationMs: seconds * 1000 });
    if (!rows.has(label)) rows.set(label, { cpu: [], rate: [] });
    rows.get(label).cpu.push((run.mainCpuMs * 1000) / run.ops);
    rows.get(label).rate.push(run.ops / (run.wallMs / 1000));
  };
  const plan = stores.map(([name, store]) => () => measure(`${name}, no subscriber`, store));
  plan.push(async () => {
    channel.subscribe(noop);
    await measure('index.js, a subscriber', stores[0][1]);
    channel.unsubscribe(noop);
  });
  // Warm-up, then rounds that rotate the order of the rows, so that drift on
  // a shared machine and each row's after-effects (GC) hit every row alike.
  for (const [, store] of stores) await runPool({ op: () => store.get('bench-1'), concurrency: CONCURRENCY, limit: 20_000, durationMs: 500 });
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < plan.length; i++) await plan[(round + i) % plan.length]();
  }
  for (const [, store] of stores) await store.close();
  await server?.stop();

  console.log(`${memory ? 'MemoryStore' : 'RedisStore'} get, 1 KB record, concurrency ${CONCURRENCY}, ${rounds} rounds of ${seconds} s (medians)`);
  console.log('| row | main-thread CPU per call (µs) | calls/s |');
  console.log('| --- | ---: | ---: |');
  for (const [label, { cpu, rate }] of rows) {
    console.log(`| ${label} | ${median(cpu).toFixed(2)} | ${Math.round(median(rate))} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
