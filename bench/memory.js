#!/usr/bin/env node
'use strict';
// Issue 4, item 4: RSS after 1,000,000 mixed operations stays within 10 % of
// RSS after the first 100,000.
//
//   node --expose-gc bench/memory.js [--ops 1000000] [--store ours|ioredis]
//
// Mixed set/get/listByUser/delete at concurrency 64 on 4 KB records, over a
// bounded key space (10,000 ids, 200 users) so Redis memory stays small. RSS
// is sampled after a full GC (when run with --expose-gc) after the first
// 100,000 operations, at every further 100,000, and at the end. Exits 1 when
// the end is above 1.1 × the first sample.

const { startRedis, seededRandom } = require('../test-support');
const { SIZES, makeConversations, seededUuid } = require('./lib/records');
const { openStores } = require('./lib/stores');

const DEFAULT_OPS = 1_000_000;
const FIRST_SAMPLE = 100_000;
const SAMPLE_EVERY = 100_000;
const CONCURRENCY = 64;
const ID_SPACE = 10_000;
const USERS = 200;
const TEMPLATES = 256;
const MAX_GROWTH = 1.1;
/** Cumulative shares of the operation mix: get 45 %, set 35 %, delete 15 %, listByUser 5 %. */
const MIX = [['get', 0.45], ['set', 0.8], ['delete', 0.95], ['list', 1]];
const MB = 1024 * 1024;

function parseArgs(argv) {
  const opts = { ops: DEFAULT_OPS, store: 'ours' };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--ops') opts.ops = Number(argv[i + 1]);
    else if (argv[i] === '--store') opts.store = argv[i + 1];
    else throw new Error(`unknown flag ${argv[i]} (flags: --ops N, --store ours|ioredis)`);
  }
  if (!Number.isInteger(opts.ops) || opts.ops < FIRST_SAMPLE) throw new Error(`--ops must be at least ${FIRST_SAMPLE}`);
  return opts;
}

/** The operation number `i` does, drawn from a seeded PRNG (same sequence every run). */
function makeWorkload(store) {
  const users = Array.from({ length: USERS }, (_, k) => `mem-user-${k}`);
  const idRandom = seededRandom(7);
  const ids = Array.from({ length: ID_SPACE }, () => seededUuid(idRandom));
  const templates = makeConversations(SIZES['4k'], { count: TEMPLATES, users: ['x'], seed: 11 }).map((e) => e.record);
  const rand = seededRandom(42);
  const clock = Date.parse('2024-06-01T00:00:00.000Z');
  return (i) => {
    const slot = Math.floor(rand() * ID_SPACE);
    const id = ids[slot];
    const userId = users[slot % USERS];
    const roll = rand();
    const kind = MIX.find(([, upTo]) => roll < upTo)[0];
    switch (kind) {
      case 'get': return store.get(id);
      case 'set': return store.set(id, {
        ...templates[i % TEMPLATES], externalId: id, userId, updatedAt: new Date(clock + i).toISOString(),
      });
      case 'delete': return store.delete(id);
      default: return store.listByUser(userId);
    }
  };
}

/** Runs operations [from, to) with CONCURRENCY in flight; no per-operation bookkeeping. */
async function runRange(op, from, to) {
  let next = from;
  async function worker() {
    while (next < to) await op(next++);
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

function sample() {
  if (typeof global.gc === 'function') global.gc();
  return process.memoryUsage();
}

const mb = (bytes) => `${(bytes / MB).toFixed(1)} MB`;

async function redisMemory(admin) {
  return Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1] ?? NaN);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (typeof global.gc !== 'function') console.error('# note: run with --expose-gc for a GC before each sample');
  const server = await startRedis();
  const opened = await openStores(server.url);
  let failed = false;
  try {
    const op = makeWorkload(opened.stores[opts.store]);
    const started = Date.now();
    let done = 0;
    let first = null;
    let last = null;
    while (done < opts.ops) {
      const to = Math.min(opts.ops, done + (done === 0 ? FIRST_SAMPLE : SAMPLE_EVERY));
      await runRange(op, done, to);
      done = to;
      last = sample();
      first ??= last;
      console.log(`${String(done).padStart(9)} ops  rss ${mb(last.rss).padStart(9)}  heapUsed ${mb(last.heapUsed).padStart(8)}  ` +
        `external ${mb(last.external).padStart(8)}  redis ${mb(await redisMemory(opened.admin))}  ` +
        `(${((done / (Date.now() - started)) * 1000).toFixed(0)} ops/s)`);
    }
    const ratio = last.rss / first.rss;
    failed = ratio > MAX_GROWTH;
    console.log(`\n${opts.store}: RSS after ${FIRST_SAMPLE.toLocaleString('en-US')} ops ${mb(first.rss)}, after ` +
      `${opts.ops.toLocaleString('en-US')} ops ${mb(last.rss)}: ${ratio.toFixed(3)}× ` +
      `(${failed ? 'FAIL' : 'PASS'}: target ≤ ${MAX_GROWTH}×) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await opened.close();
    await server.stop();
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
