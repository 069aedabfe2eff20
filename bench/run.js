#!/usr/bin/env node
'use strict';
// `npm run bench`: our RedisStore against its peers, the original ioredis
// store and the same store on node-redis, on one redis-server this process
// spawns (loopback, no persistence), in rounds of rotating order on identical
// workloads; plus redis-benchmark's raw GET/SET on the same server. Prints a
// table with the targets (against the best peer figure) and writes
// bench/results/latest.{json,md} and bench/results/throughput.svg; a full
// run then measures the cluster line (bench/cluster.js) and the cost of
// waitReplicas (bench/durability.js) and copies the tables into README.md.
//
//   node bench/run.js                     full run (5 rounds per row, a few minutes)
//   node bench/run.js --quick             1 short round per row: a smoke check
//   node bench/run.js --ops set,get --sizes 4k --concurrency 64 --rounds 3
//   node bench/run.js --no-ceiling        skip redis-benchmark
//   node bench/run.js --memory            then run bench/memory.js (1M operations; slow)
//   node bench/run.js --ascii             records of ASCII text only (default: some non-ASCII, as real chats)
//   node bench/run.js --via-proxy 0.5     every store reaches Redis through a TCP proxy (examples/latency_proxy.rs,
//                                         its own process) that holds each chunk 0.5 ms each way: a network between them
//
// Runs that leave anything out (--quick, --ops, --sizes, --concurrency,
// --rounds, --no-ceiling, --via-proxy) write bench/results/partial.* instead of latest.*,
// so a smoke check never replaces the published numbers (--out NAME to choose).

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { startRedis } = require('../test-support');
const { SIZES, useAsciiText } = require('./lib/records');
const { runPool, summarize, medianSummary, median, collector, timePerCall } = require('./lib/measure');
const { openStores, bestOfPeers, STORE_NAMES } = require('./lib/stores');
const { WORKLOADS, OP_ORDER, setupSize, checkStores, floorSink } = require('./lib/workloads');
const { measureCeiling } = require('./lib/ceiling');
const { updateReadme } = require('./lib/readme');
const { targetsFor } = require('./lib/targets');
const report = require('./lib/report');
const { throughputChart } = require('./lib/chart');
const { buildIdentity, machine } = require('./lib/identity');
const { startLatencyProxy } = require('./lib/latency-proxy');

const RESULTS_DIR = path.join(__dirname, 'results');
const CONCURRENCIES = [1, 64];
const DEFAULT_ROUNDS = 5;

/** Timing of one row, full run and --quick. */
const PLAN = {
  full: { roundSeconds: { 1: 0.6, 64: 1.5 }, warmupMs: 500, floorMs: 150 },
  quick: { roundSeconds: { 1: 0.2, 64: 0.4 }, warmupMs: 200, floorMs: 50 },
};
/** Fewest operations per round (p99 needs a sample), and most. */
const MIN_OPS = { 1: 50, 64: 3 * 64 };
const MAX_OPS = 200_000;
/** Operations a time-bounded warm-up may reach. */
const WARMUP_LIMIT = 200_000;
/** Redis memory the delete rows may seed at once. */
const MAX_SEED_BYTES = 256 * 1024 * 1024;
const WARMUP_SEED_BYTES = 16 * 1024 * 1024;

const OP_ALIASES = { listbyuser: 'list', fields: 'listFields', listfields: 'listFields', 'list-fields': 'listFields', del: 'delete' };

function usage(message) {
  console.error(`${message}\nusage: node bench/run.js [--quick] [--ops ${OP_ORDER.join(',')}] ` +
    `[--sizes ${Object.keys(SIZES).join(',')}] [--concurrency 1,64] [--rounds N] [--no-ceiling] [--memory] [--ascii] ` +
    '[--via-proxy MS] [--out NAME]');
  process.exit(2);
}

function listArg(value, allowed, name) {
  const items = String(value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) usage(`--${name} needs a value`);
  for (const item of items) if (!allowed.includes(item)) usage(`--${name}: unknown value ${JSON.stringify(item)}`);
  return items;
}

function parseArgs(argv) {
  const opts = { quick: false, ops: OP_ORDER, sizes: Object.keys(SIZES), concurrencies: CONCURRENCIES,
    rounds: null, ceiling: true, memory: false, ascii: false, out: null, partial: false, proxyDelayMs: null };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick': opts.quick = true; opts.partial = true; break;
      case '--ops':
        opts.ops = listArg(value(), [...OP_ORDER, ...Object.keys(OP_ALIASES)], 'ops')
          .map((op) => OP_ALIASES[op.toLowerCase()] ?? op);
        opts.partial = true;
        break;
      case '--sizes': opts.sizes = listArg(value(), Object.keys(SIZES), 'sizes'); opts.partial = true; break;
      case '--concurrency':
        opts.concurrencies = listArg(value(), ['1', '64'], 'concurrency').map(Number);
        opts.partial = true;
        break;
      case '--rounds': {
        opts.rounds = Number(value());
        if (!Number.isInteger(opts.rounds) || opts.rounds < 1) usage('--rounds needs a whole number ≥ 1');
        opts.partial = opts.partial || opts.rounds !== DEFAULT_ROUNDS;
        break;
      }
      case '--no-ceiling': opts.ceiling = false; opts.partial = true; break;
      case '--memory': opts.memory = true; break;
      case '--ascii': opts.ascii = true; opts.partial = true; break;
      case '--via-proxy':
        opts.proxyDelayMs = Number(value());
        if (!(opts.proxyDelayMs > 0 && opts.proxyDelayMs <= 100)) usage('--via-proxy needs milliseconds over 0 and up to 100 (e.g. 0.5)');
        // redis-benchmark would go around the proxy: no ceiling then.
        opts.ceiling = false;
        opts.partial = true;
        break;
      case '--out': opts.out = value(); break;
      case '--help': case '-h': usage('');
      // falls through (usage exits)
      default: usage(`unknown flag ${argv[i]}`);
    }
  }
  opts.rounds ??= opts.quick ? 1 : DEFAULT_ROUNDS;
  opts.plan = opts.quick ? PLAN.quick : PLAN.full;
  opts.out ??= opts.partial ? 'partial' : 'latest';
  opts.ops = OP_ORDER.filter((op) => opts.ops.includes(op));
  return opts;
}

const gc = collector();
const tick = () => new Promise((resolve) => setImmediate(resolve));
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** A run of a workload on one store; seeding before and cleaning after stay off the clock. */
async function timedRun(ctx, workload, storeName, store, { concurrency, limit, durationMs }) {
  const prepared = await workload.prepare(ctx, storeName, store, limit);
  gc();
  await tick();
  const run = await runPool({ op: prepared.op, concurrency, limit, durationMs });
  await prepared.finish?.(run.ops);
  return run;
}

/** Operations per round: about `roundSeconds` at the two stores' mean warm-up rate. */
async function calibrate(ctx, workload, stores, concurrency, opts) {
  const seedLimit = workload.name === 'delete' ? Math.floor(WARMUP_SEED_BYTES / ctx.size.bytes) : WARMUP_LIMIT;
  const rates = [];
  for (const name of STORE_NAMES) {
    const run = await timedRun(ctx, workload, name, stores[name],
      { concurrency, limit: seedLimit, durationMs: opts.plan.warmupMs });
    rates.push((run.ops / run.wallMs) * 1000);
  }
  const maxOps = workload.name === 'delete' ? Math.floor(MAX_SEED_BYTES / ctx.size.bytes) : MAX_OPS;
  const meanRate = rates.reduce((a, b) => a + b, 0) / rates.length;
  return Math.round(clamp(meanRate * opts.plan.roundSeconds[concurrency], MIN_OPS[concurrency], maxOps));
}

function ratios(ours, peer) {
  const out = {};
  for (const key of ['opsPerSec', 'p50Ms', 'p99Ms', 'busyUsPerOp', 'mainCpuUsPerOp', 'processCpuUsPerOp']) out[key] = ours[key] / peer[key];
  return out;
}

/** Round `round`'s order: each store leads in turn, so none always runs first (or last). */
function roundOrder(round) {
  return STORE_NAMES.map((_, k) => STORE_NAMES[(k + round) % STORE_NAMES.length]);
}

/** One row: warm-up, then `rounds` rounds in rotating order, medians; ratios against the best peer figure. */
async function measureCell(ctx, workload, stores, concurrency, opts) {
  const ops = await calibrate(ctx, workload, stores, concurrency, opts);
  const floorFn = workload.floor?.(ctx);
  const perStore = Object.fromEntries(STORE_NAMES.map((name) => [name, []]));
  const floors = [];
  for (let round = 0; round < opts.rounds; round++) {
    if (floorFn) floors.push(timePerCall(floorFn, opts.plan.floorMs));
    for (const name of roundOrder(round)) {
      const run = await timedRun(ctx, workload, name, stores[name], { concurrency, limit: ops });
      perStore[name].push(summarize(run));
    }
  }
  floorSink();
  const cell = {
    op: workload.name,
    size: ctx.size.name,
    concurrency,
    opsPerRound: ops,
    ...Object.fromEntries(STORE_NAMES.map((name) => [name, medianSummary(perStore[name])])),
    floorUs: floorFn ? median(floors) : null,
    floorKind: workload.floorKind,
    rounds: perStore,
  };
  cell.best = bestOfPeers(cell);
  cell.ratios = ratios(cell.ours, cell.best);
  cell.targets = targetsFor(cell, null);
  return cell;
}

async function redisVersion(admin) {
  const info = await admin.info('server');
  return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
}

function environment(opts, redis) {
  return {
    build: buildIdentity(),
    date: new Date().toISOString(),
    ...machine(),
    ioredis: require('ioredis/package.json').version,
    nodeRedis: require('redis/package.json').version,
    redisVersion: redis,
    rounds: opts.rounds,
    quick: opts.quick,
    text: opts.ascii ? 'ascii' : 'mixed (mostly ASCII, some non-ASCII words as in real chats)',
    plan: opts.plan,
    argv: process.argv.slice(2),
    proxyDelayMs: opts.proxyDelayMs,
  };
}

async function measureStores(url, opts) {
  const cells = [];
  const opened = await openStores(url);
  try {
    const meta = environment(opts, await redisVersion(opened.admin));
    for (const [index, sizeName] of opts.sizes.entries()) {
      await opened.admin.flushall();
      const ctx = await setupSize(SIZES[sizeName], opened.admin, 1000 * (index + 1));
      await checkStores(ctx, opened.stores);
      const meanBytes = ctx.pool.reduce((sum, e) => sum + Buffer.byteLength(e.json), 0) / ctx.pool.length;
      console.error(`# ${sizeName} records: ${Math.round(meanBytes)} bytes of JSON on average, ` +
        `${SIZES[sizeName].messages} messages`);
      for (const op of opts.ops) {
        const workload = WORKLOADS[op];
        if (workload.sizes && !workload.sizes.includes(sizeName)) continue;
        for (const concurrency of opts.concurrencies) {
          const cell = await measureCell(ctx, workload, opened.stores, concurrency, opts);
          console.error(report.cellLine(cell));
          cells.push(cell);
        }
      }
    }
    await opened.admin.flushall();
    return { meta, cells };
  } finally {
    await opened.close();
  }
}

function writeResults(results, name) {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const files = [];
  const write = (file, content) => {
    fs.writeFileSync(path.join(RESULTS_DIR, file), content);
    files.push(path.join('bench', 'results', file));
  };
  write(`${name}.json`, `${JSON.stringify(results, null, 2)}\n`);
  write(`${name}.md`, report.markdown(results));
  const svg = throughputChart(results.cells, results.meta);
  if (svg) write(name === 'latest' ? 'throughput.svg' : `${name}-throughput.svg`, svg);
  return files;
}

function printResults(results) {
  console.log(`\n${report.textTable(results.cells)}\n`);
  console.log(`${report.textTable(results.cells, report.CPU_COLUMNS)}\n`);
  if (results.ceiling.length) console.log(`${report.ceilingLines(results.ceiling).join('\n')}\n`);
  const passed = results.targets.filter((t) => t.pass).length;
  console.log(`Targets (issue 14): ${passed} of ${results.targets.length} met`);
  console.log(report.targetLines(results.targets).join('\n'));
}

function runClusterBench() {
  console.error('\n# cluster: node bench/cluster.js');
  const result = spawnSync(process.execPath, [path.join(__dirname, 'cluster.js')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return result.status ?? 1;
}

function runDurabilityBench() {
  console.error('\n# durability: node bench/durability.js');
  const result = spawnSync(process.execPath, [path.join(__dirname, 'durability.js')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return result.status ?? 1;
}

/** The network line's delay each way: Redis in the same cloud region. */
const NETWORK_DELAY_MS = 0.5;

/** Measures the network line: set, get and listByUser of 4 KB records through the proxy. */
function runNetworkBench(rounds) {
  console.error(`\n# network: node bench/run.js --via-proxy ${NETWORK_DELAY_MS} --ops set,get,list --sizes 4k --out network`);
  const result = spawnSync(process.execPath, [__filename, '--via-proxy', String(NETWORK_DELAY_MS), '--ops', 'set,get,list', '--sizes', '4k',
    '--rounds', String(rounds), '--out', 'network'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return result.status ?? 1;
}

function runMemoryBench() {
  console.error('\n# memory: node --expose-gc bench/memory.js');
  const result = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'memory.js')], { stdio: 'inherit' });
  return result.status ?? 1;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  useAsciiText(opts.ascii);
  const started = Date.now();
  const server = await startRedis();
  const proxy = opts.proxyDelayMs === null ? null : await startLatencyProxy(server.port, opts.proxyDelayMs);
  console.error(`# redis-server pid ${server.pid} on ${server.url}` +
    `${proxy ? `, reached through a proxy at ${proxy.url} (${opts.proxyDelayMs} ms each way, ${proxy.addedMs.toFixed(3)} ms measured)` : ''}; ${opts.rounds} round(s) per row`);
  let results;
  try {
    const { meta, cells } = await measureStores(proxy?.url ?? server.url, opts);
    if (proxy) meta.proxyAddedMs = Number(proxy.addedMs.toFixed(3));
    const ceiling = opts.ceiling
      ? await measureCeiling({
        port: server.port,
        sizes: opts.sizes.map((s) => SIZES[s]),
        concurrencies: opts.concurrencies,
        rounds: opts.rounds,
        quick: opts.quick,
        onResult: (entry) => console.error(report.ceilingLines([entry])[0]),
      })
      : [];
    for (const cell of cells) cell.targets = targetsFor(cell, ceiling);
    meta.durationSeconds = Math.round((Date.now() - started) / 1000);
    results = { meta, cells, ceiling, targets: cells.flatMap((cell) => cell.targets) };
  } finally {
    await proxy?.stop();
    await server.stop();
  }
  printResults(results);
  const written = writeResults(results, opts.out);
  if (opts.out === 'latest') {
    // A full run publishes: the cluster and durability lines, then the README's copy of all.
    if (runClusterBench() === 0) written.push('bench/results/cluster.{json,md}');
    if (runDurabilityBench() === 0) written.push('bench/results/durability.{json,md}');
    if (runNetworkBench(opts.rounds) === 0) written.push('bench/results/network.{json,md}');
    written.push(updateReadme());
  }
  console.log(`\nwrote ${written.join(', ')} (${results.meta.durationSeconds} s)`);
  if (opts.memory) process.exitCode = runMemoryBench();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
