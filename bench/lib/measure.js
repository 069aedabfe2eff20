'use strict';
// Running N store calls with a fixed number in flight, and what one run
// measures: wall time, per-call latency, and main-thread busy time from the
// event loop's utilization (`performance.eventLoopUtilization()` deltas).

const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const v8 = require('node:v8');
const vm = require('node:vm');

const SCHEDSTAT = '/proc/thread-self/schedstat';
const HAS_SCHEDSTAT = fs.existsSync(SCHEDSTAT);

/**
 * CPU time this (the main) thread has run, in ms, or NaN where Linux does not
 * tell. Event-loop utilization counts wall time, so a main thread that the OS
 * preempts (2 cores shared with redis-server and the store's worker threads)
 * looks busier than it is; this shows the difference.
 */
function mainThreadCpuMs() {
  return mainThreadSched().cpuMs;
}

/** The main thread's on-CPU time and its time runnable but waiting for a core (run-queue wait), in ms. */
function mainThreadSched() {
  if (!HAS_SCHEDSTAT) return { cpuMs: NaN, waitMs: NaN };
  const [cpu, wait] = fs.readFileSync(SCHEDSTAT, 'utf8').split(' ');
  return { cpuMs: Number(cpu) / 1e6, waitMs: Number(wait) / 1e6 };
}

/** CPU time of the whole process (every thread), in ms. */
function processCpuMs() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Runs `op(i)` for i = 0, 1, ... keeping `concurrency` calls in flight, until
 * `limit` calls were issued or `durationMs` has passed (no new call starts
 * after that; calls in flight finish).
 * @returns {Promise<{ ops, wallMs, activeMs, mainCpuMs, processCpuMs, latencies: Float64Array }>}
 */
async function runPool({ op, concurrency, limit, durationMs = Infinity }) {
  const latencies = new Float64Array(limit);
  let issued = 0;
  const cpuStart = { main: mainThreadSched(), process: processCpuMs() };
  const eluStart = performance.eventLoopUtilization();
  const start = performance.now();
  const deadline = start + durationMs;

  async function worker() {
    while (issued < limit && (durationMs === Infinity || performance.now() < deadline)) {
      const i = issued++;
      const t0 = performance.now();
      await op(i);
      latencies[i] = performance.now() - t0;
    }
  }

  const workers = [];
  for (let w = 0; w < Math.min(concurrency, limit); w++) workers.push(worker());
  await Promise.all(workers);
  const wallMs = performance.now() - start;
  const { active } = performance.eventLoopUtilization(eluStart);
  const mainEnd = mainThreadSched();
  return {
    ops: issued,
    wallMs,
    activeMs: active,
    mainCpuMs: mainEnd.cpuMs - cpuStart.main.cpuMs,
    mainWaitMs: mainEnd.waitMs - cpuStart.main.waitMs,
    processCpuMs: processCpuMs() - cpuStart.process,
    latencies: latencies.subarray(0, issued),
  };
}

/** The q-quantile (0..1) of a sample, nearest rank. */
function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

function median(values) {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** What the report keeps of one run. */
function summarize(run) {
  return {
    ops: run.ops,
    wallMs: run.wallMs,
    opsPerSec: (run.ops / run.wallMs) * 1000,
    p50Ms: quantile(run.latencies, 0.5),
    p99Ms: quantile(run.latencies, 0.99),
    busyUsPerOp: (run.activeMs * 1000) / run.ops,
    utilization: run.activeMs / run.wallMs,
    mainCpuUsPerOp: (run.mainCpuMs * 1000) / run.ops,
    mainRunQueueUsPerOp: (run.mainWaitMs * 1000) / run.ops,
    processCpuUsPerOp: (run.processCpuMs * 1000) / run.ops,
  };
}

/** Medians of each metric over rounds. */
function medianSummary(rounds) {
  const keys = ['opsPerSec', 'p50Ms', 'p99Ms', 'busyUsPerOp', 'utilization', 'mainCpuUsPerOp', 'mainRunQueueUsPerOp', 'processCpuUsPerOp'];
  const out = {};
  for (const key of keys) out[key] = median(rounds.map((round) => round[key]));
  out.ops = rounds.reduce((sum, round) => sum + round.ops, 0);
  return out;
}

/**
 * A full garbage collection between measurements, so one store's garbage is
 * not collected on the other's clock. Uses `global.gc` when Node runs with
 * --expose-gc, otherwise enables it at run time.
 */
function collector() {
  if (typeof global.gc === 'function') return global.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

/** Time per call of `fn(i)` on this thread, in µs, over about `durationMs`. */
function timePerCall(fn, durationMs) {
  const BATCH = 8;
  let calls = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  let now = start;
  while (now < deadline) {
    for (let b = 0; b < BATCH; b++) fn(calls++);
    now = performance.now();
  }
  return ((now - start) * 1000) / calls;
}

module.exports = { mainThreadSched, mainThreadCpuMs, processCpuMs, runPool, quantile, median, summarize, medianSummary, collector, timePerCall };
