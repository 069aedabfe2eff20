'use strict';
// The targets of issue 4, checked against the measured medians.

/** Minimum throughput ratio (ours / ioredis) at concurrency 64. */
const THROUGHPUT_TARGETS = { set: 1.5, list: 1.5, get: 1.2, delete: 1.2 };
/** Main-thread time per op at most this share of the baseline's... */
const BUSY_SHARE = 0.5;
/** ...unless the bare JSON work is above this share of the baseline's time: then within this factor of it. */
const FLOOR_SHARE = 0.5;
const FLOOR_FACTOR = 1.2;
/** Our GET at c=64 against redis-benchmark's GET. */
const CEILING_SHARE = 0.7;
/** listByUser with fields against the baseline's full list (64 KB records). */
const LIGHT_LIST_THROUGHPUT = 5;
const LIGHT_LIST_BUSY = 0.1;
const HIGH_CONCURRENCY = 64;

function target(cell, name, value, limit, pass, rule) {
  return { op: cell.op, size: cell.size, concurrency: cell.concurrency, name, value, limit, pass, rule };
}

function throughputRatio(cell) {
  return cell.ours.opsPerSec / cell.ioredis.opsPerSec;
}

function busyTarget(cell) {
  const baseline = cell.ioredis.busyUsPerOp;
  const ours = cell.ours.busyUsPerOp;
  if (Number.isFinite(cell.floorUs) && cell.floorUs > FLOOR_SHARE * baseline) {
    const limit = FLOOR_FACTOR * cell.floorUs;
    return target(cell, 'main-thread', ours, limit, ours <= limit,
      `µs/op ≤ ${FLOOR_FACTOR}× JSON floor (${cell.floorUs.toFixed(1)} µs)`);
  }
  const limit = BUSY_SHARE * baseline;
  return target(cell, 'main-thread', ours, limit, ours <= limit, `µs/op ≤ ${BUSY_SHARE}× ioredis`);
}

function highConcurrencyTargets(cell) {
  const out = [];
  const minRatio = THROUGHPUT_TARGETS[cell.op];
  const ratio = throughputRatio(cell);
  out.push(target(cell, 'throughput', ratio, minRatio, ratio >= minRatio, `ops/s ≥ ${minRatio}× ioredis`));
  out.push(busyTarget(cell));
  out.push(target(cell, 'p99', cell.ours.p99Ms, cell.ioredis.p99Ms, cell.ours.p99Ms <= cell.ioredis.p99Ms,
    'p99 ≤ ioredis p99'));
  return out;
}

function lightListTargets(cell) {
  const ratio = throughputRatio(cell);
  const busy = cell.ours.busyUsPerOp / cell.ioredis.busyUsPerOp;
  return [
    target(cell, 'throughput', ratio, LIGHT_LIST_THROUGHPUT, ratio >= LIGHT_LIST_THROUGHPUT,
      `ops/s ≥ ${LIGHT_LIST_THROUGHPUT}× ioredis full list`),
    target(cell, 'main-thread', busy, LIGHT_LIST_BUSY, busy <= LIGHT_LIST_BUSY,
      `µs/op ≤ ${LIGHT_LIST_BUSY}× ioredis full list`),
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
    const ratio = throughputRatio(cell);
    return [target(cell, 'throughput', ratio, 1, ratio >= 1, 'c=1: ops/s ≥ ioredis')];
  }
  if (cell.concurrency !== HIGH_CONCURRENCY) return [];
  const out = highConcurrencyTargets(cell);
  if (cell.op === 'get') out.push(...ceilingTarget(cell, ceiling));
  return out;
}

module.exports = { targetsFor };
