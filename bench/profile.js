#!/usr/bin/env node
'use strict';
// One workload on one store for a fixed time, for profilers:
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.js --store ours --op get --size 4k --concurrency 64
//   perf record -e cpu-clock -F 999 -g -- node --perf-basic-prof bench/profile.js --store ours --op list
//
// Prints ops/s and the main-thread figures of the run (same measurement as run.js).
// Flags: --store ours|ioredis --op set|get|list|listFields|delete --size 4k|64k
// --concurrency N --seconds S --warmup S --ascii 1

const { startRedis } = require('../test-support');
const { SIZES, useAsciiText } = require('./lib/records');
const { runPool, summarize, collector } = require('./lib/measure');
const { openStores } = require('./lib/stores');
const { WORKLOADS, setupSize } = require('./lib/workloads');

const DEFAULTS = { store: 'ours', op: 'get', size: '4k', concurrency: 64, seconds: 8, warmup: 1, ascii: 0 };
/** Enough seeded records for a time-bounded delete run. */
const DELETE_SEED_BYTES = 512 * 1024 * 1024;

function parseArgs(argv) {
  const opts = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in DEFAULTS)) throw new Error(`unknown flag ${argv[i]}`);
    opts[key] = typeof DEFAULTS[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

/** Redis's own time per command (server CPU inside the command), and per store operation. */
function printCommandStats(info, ops) {
  for (const [, name, calls, usec] of info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)) {
    if (name === 'config' || name === 'info') continue;
    console.log(`  redis ${name}: ${calls} calls, ${(usec / calls).toFixed(1)} µs/call, ` +
      `${(usec / ops).toFixed(1)} µs per store operation`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  useAsciiText(Boolean(opts.ascii));
  const workload = WORKLOADS[opts.op];
  const size = SIZES[opts.size];
  if (!workload || !size) throw new Error(`unknown --op ${opts.op} or --size ${opts.size}`);
  const server = await startRedis();
  const opened = await openStores(server.url);
  try {
    const ctx = await setupSize(size, opened.admin, 1000);
    const store = opened.stores[opts.store];
    const limit = opts.op === 'delete' ? Math.floor(DELETE_SEED_BYTES / size.bytes) : 10_000_000;
    const gc = collector();
    for (const [phase, seconds] of [['warmup', opts.warmup], ['measure', opts.seconds]]) {
      if (phase === 'measure') await opened.admin.config('RESETSTAT');
      const prepared = await workload.prepare(ctx, opts.store, store, limit);
      gc();
      const run = await runPool({ op: prepared.op, concurrency: opts.concurrency, limit, durationMs: seconds * 1000 });
      await prepared.finish?.(run.ops);
      const s = summarize(run);
      console.log(`${phase}: ${opts.store} ${opts.op} ${opts.size} c=${opts.concurrency}: ${Math.round(s.opsPerSec)} ops/s, ` +
        `p50 ${s.p50Ms.toFixed(3)} ms, p99 ${s.p99Ms.toFixed(3)} ms, main busy ${s.busyUsPerOp.toFixed(1)} µs/op ` +
        `(ELU ${(s.utilization * 100).toFixed(0)}%), main CPU ${s.mainCpuUsPerOp.toFixed(1)} µs/op, ` +
        `main run-queue wait ${s.mainRunQueueUsPerOp.toFixed(1)} µs/op, ` +
        `process CPU ${s.processCpuUsPerOp.toFixed(1)} µs/op`);
      if (phase === 'measure') printCommandStats(await opened.admin.info('commandstats'), run.ops);
    }
  } finally {
    await opened.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
