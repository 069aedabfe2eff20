'use strict';
// The targets of issue 14, checked against the measured medians. Every
// comparison is with the best figure any peer reached (`cell.best`: the most
// ops/s, the lowest latency and main-thread time), so ours must beat the
// ioredis store and the node-redis store each at its best.

/** At concurrency 1 ours must be no slower than the best peer... */
const SINGLE_CALL_THROUGHPUT = 1.0;
/** ...and at concurrency 64 this much faster, for every operation. */
const HIGH_CONCURRENCY_THROUGHPUT = 1.5;
/** Main-thread time per op at most this share of the best peer's... */
const BUSY_SHARE = 0.5;
/** ...or within this factor of the bare JSON work, whichever is larger. */
const FLOOR_FACTOR = 1.3;
/** Our GET at c=64 against redis-benchmark's GET. */
const CEILING_SHARE = 0.7;
/** listByUser with fields against the best peer's full list (64 KB records). */
const LIGHT_LIST_THROUGHPUT = 5;
const LIGHT_LIST_BUSY = 0.1;
const HIGH_CONCURRENCY = 64;

function target(cell, name, value, limit, pass, rule) {
  return { op: cell.op, size: cell.size, concurrency: cell.concurrency, name, value, limit, pass, rule };
}

function throughputRatio(cell) {
  return cell.ours.opsPerSec / cell.best.opsPerSec;
}

function throughputTarget(cell, minRatio) {
  const ratio = throughputRatio(cell);
  return target(cell, 'throughput', ratio, minRatio, ratio >= minRatio, `ops/s ≥ ${minRatio}× best peer`);
}

function latencyTarget(cell, key, name) {
  const ours = cell.ours[key];
  const limit = cell.best[key];
  return target(cell, name, ours, limit, ours <= limit, `${name} ≤ best peer ${name}`);
}

function busyTarget(cell) {
  const ours = cell.ours.busyUsPerOp;
  const share = BUSY_SHARE * cell.best.busyUsPerOp;
  const floor = Number.isFinite(cell.floorUs) ? FLOOR_FACTOR * cell.floorUs : 0;
  const limit = Math.max(share, floor);
  const rule = floor > share
    ? `µs/op ≤ ${FLOOR_FACTOR}× JSON floor (${cell.floorUs.toFixed(1)} µs)`
    : `µs/op ≤ ${BUSY_SHARE}× best peer`;
  return target(cell, 'main-thread', ours, limit, ours <= limit, rule);
}

function lightListTargets(cell) {
  const ratio = throughputRatio(cell);
  const busy = cell.ours.busyUsPerOp / cell.best.busyUsPerOp;
  return [
    target(cell, 'throughput', ratio, LIGHT_LIST_THROUGHPUT, ratio >= LIGHT_LIST_THROUGHPUT,
      `ops/s ≥ ${LIGHT_LIST_THROUGHPUT}× best peer's full list`),
    target(cell, 'main-thread', busy, LIGHT_LIST_BUSY, busy <= LIGHT_LIST_BUSY,
      `µs/op ≤ ${LIGHT_LIST_BUSY}× best peer's full list`),
  ];
}

function ceilingTarget(cell, ceiling) {
  const raw = ceiling?.find((c) => c.size === cell.size && c.concurrency === cell.concurrency);
  if (!raw) return [];
  const share = cell.ours.opsPerSec / raw.get.rps;
  return [target(cell, 'vs redis-benchmark', share, CEILING_SHARE, share >= CEILING_SHARE,
    `ops/s ≥ ${CEILING_SHARE * 100}% of redis-benchmark GET (${Math.round(raw.get.rps)}/s)`)];
}

/** Every target that applies to a cell. */
function targetsFor(cell, ceiling) {
  if (cell.op === 'listFields') return cell.size === '64k' ? lightListTargets(cell) : [];
  if (cell.concurrency === 1) {
    return [throughputTarget(cell, SINGLE_CALL_THROUGHPUT), latencyTarget(cell, 'p50Ms', 'p50')];
  }
  if (cell.concurrency !== HIGH_CONCURRENCY) return [];
  const out = [throughputTarget(cell, HIGH_CONCURRENCY_THROUGHPUT), busyTarget(cell), latencyTarget(cell, 'p99Ms', 'p99')];
  if (cell.op === 'get') out.push(...ceilingTarget(cell, ceiling));
  return out;
}

module.exports = { targetsFor };
