#!/usr/bin/env node
'use strict';
// One workload on one store for a fixed time, for profilers:
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.js --store ours --op get --size 4k --concurrency 64
//   perf record -e cpu-clock -F 999 -g -- node --perf-basic-prof bench/profile.js --store ours --op list
//
// Prints ops/s and the main-thread figures of the run (same measurement as run.js).
// Flags: --store ours|ioredis|nodeRedis --op set|get|list|listFields|delete --size 4k|64k
// --concurrency N --seconds S --warmup S --ascii 1
// --delay-ms D: every store reaches Redis through the bench's latency proxy,
// which holds each chunk D ms each way (as run.js's network rows do)
// --json FILE: also writes the measured phase as JSON, with its window on
// CLOCK_MONOTONIC (for `perf record -k CLOCK_MONOTONIC`), this process's and
// redis-server's pids, and Redis's commandstats (bench/profiles.js reads it).

const fs = require('node:fs');

const { startRedis } = require('../test-support');
const { startLatencyProxy } = require('./lib/latency-proxy');
const { SIZES, useAsciiText } = require('./lib/records');
const { runPool, summarize, collector } = require('./lib/measure');
const { openStores } = require('./lib/stores');
const { WORKLOADS, setupSize } = require('./lib/workloads');

const DEFAULTS = { store: 'ours', op: 'get', size: '4k', concurrency: 64, seconds: 8, warmup: 1, ascii: 0, json: '', 'delay-ms': 0 };
/** The most records a delete run seeds (it seeds what its warm-up rate needs, up to this). */
const DELETE_SEED_BYTES = 512 * 1024 * 1024;
/** Records a delete warm-up seeds: it may run out before its time is up. */
const DELETE_WARMUP_BYTES = 64 * 1024 * 1024;
/** Seeded records per expected deletion (the measured phase may run faster than the warm-up). */
const DELETE_HEADROOM = 2;

function parseArgs(argv) {
  const opts = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in DEFAULTS)) throw new Error(`unknown flag ${argv[i]}`);
    opts[key] = typeof DEFAULTS[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

/** Redis's own time per command (server CPU inside the command): `[{ name, calls, usec }]`. */
function commandStats(info) {
  return [...info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)]
    .map(([, name, calls, usec]) => ({ name, calls: Number(calls), usec: Number(usec) }))
    .filter(({ name }) => name !== 'config' && name !== 'info');
}

function printCommandStats(stats, ops) {
  for (const { name, calls, usec } of stats) {
    console.log(`  redis ${name}: ${calls} calls, ${(usec / calls).toFixed(1)} µs/call, ` +
      `${(usec / ops).toFixed(1)} µs per store operation`);
  }
}

/** Operations a delete phase seeds: what the warm-up's rate reaches in `seconds`, with headroom. */
function deleteLimit(size, seconds, warmupRate, concurrency) {
  const most = Math.floor(DELETE_SEED_BYTES / size.bytes);
  if (warmupRate === null) return Math.min(most, Math.floor(DELETE_WARMUP_BYTES / size.bytes));
  return Math.min(most, Math.ceil(warmupRate * seconds * DELETE_HEADROOM) + concurrency);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  useAsciiText(Boolean(opts.ascii));
  const workload = WORKLOADS[opts.op];
  const size = SIZES[opts.size];
  if (!workload || !size) throw new Error(`unknown --op ${opts.op} or --size ${opts.size}`);
  // The pid first, so a caller can clean up after this process (perf map files) even if it fails.
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ pid: process.pid })}\n`);
  const server = await startRedis();
  const proxy = opts['delay-ms'] > 0 ? await startLatencyProxy(server.port, opts['delay-ms']) : null;
  if (proxy) console.log(`through a proxy adding ${proxy.addedMs.toFixed(3)} ms each way (measured)`);
  const opened = await openStores(proxy?.url ?? server.url);
  try {
    const ctx = await setupSize(size, opened.admin, 1000);
    const store = opened.stores[opts.store];
    if (!store) throw new Error(`unknown --store ${opts.store}`);
    const gc = collector();
    let warmupRate = null;
    for (const [phase, seconds] of [['warmup', opts.warmup], ['measure', opts.seconds]]) {
      const limit = opts.op === 'delete' ? deleteLimit(size, seconds, warmupRate, opts.concurrency) : 10_000_000;
      const prepared = await workload.prepare(ctx, opts.store, store, limit);
      if (phase === 'measure') await opened.admin.config('RESETSTAT');
      gc();
      const startNs = process.hrtime.bigint();
      const run = await runPool({ op: prepared.op, concurrency: opts.concurrency, limit, durationMs: seconds * 1000 });
      const endNs = process.hrtime.bigint();
      // Before finish(): a delete run's check and clean-up are commands too.
      const info = phase === 'measure' ? await opened.admin.info('commandstats') : '';
      await prepared.finish?.(run.ops);
      const s = summarize(run);
      warmupRate ??= s.opsPerSec;
      console.log(`${phase}: ${opts.store} ${opts.op} ${opts.size} c=${opts.concurrency}: ${Math.round(s.opsPerSec)} ops/s, ` +
        `p50 ${s.p50Ms.toFixed(3)} ms, p99 ${s.p99Ms.toFixed(3)} ms, main busy ${s.busyUsPerOp.toFixed(1)} µs/op ` +
        `(ELU ${(s.utilization * 100).toFixed(0)}%), main CPU ${s.mainCpuUsPerOp.toFixed(1)} µs/op, ` +
        `main run-queue wait ${s.mainRunQueueUsPerOp.toFixed(1)} µs/op, ` +
        `process CPU ${s.processCpuUsPerOp.toFixed(1)} µs/op`);
      if (phase !== 'measure') continue;
      const stats = commandStats(info);
      printCommandStats(stats, run.ops);
      if (opts.json) {
        const measured = { ...opts, ...s, window: { startNs: String(startNs), endNs: String(endNs) },
          pid: process.pid, redisPid: server.pid, commandStats: stats };
        fs.writeFileSync(opts.json, `${JSON.stringify(measured, null, 2)}\n`);
      }
    }
  } finally {
    await opened.close();
    await proxy?.stop();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
