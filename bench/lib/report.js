'use strict';
// The results as a terminal table, a markdown page and a JSON document.

const { STORE_NAMES, STORE_LABELS } = require('./stores');

const OP_LABELS = {
  set: 'set',
  get: 'get',
  list: 'listByUser',
  listFields: 'listByUser fields*',
  delete: 'delete',
};

const fmt = {
  rate: (v) => (Number.isFinite(v) ? Math.round(v).toString() : '–'),
  ms: (v) => (!Number.isFinite(v) ? '–' : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)),
  us: (v) => (!Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1)),
  ratio: (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–'),
};

const SHORT_TARGET = { throughput: 'thr', 'main-thread': 'cpu', p50: 'p50', p99: 'p99', 'vs redis-benchmark': 'ceil' };

function targetMarks(targets) {
  return targets.map((t) => `${SHORT_TARGET[t.name]} ${t.pass ? 'PASS' : 'FAIL'}`).join(', ');
}

/** One column per store for a summary figure: `ours`, then each peer. */
function perStore(title, key, format) {
  return STORE_NAMES.map((name) => [`${title} ${STORE_LABELS[name]}`, (c) => format(c[name][key])]);
}

const ROW_KEY = [
  ['operation', (c) => OP_LABELS[c.op]],
  ['size', (c) => c.size],
  ['c', (c) => String(c.concurrency)],
];

// Ratios are ours ÷ the best peer figure (see stores.js bestOfPeers).
const COLUMNS = [
  ...ROW_KEY,
  ...perStore('ops/s', 'opsPerSec', fmt.rate),
  ['ops/s ratio', (c) => fmt.ratio(c.ratios.opsPerSec)],
  ...perStore('p50 ms', 'p50Ms', fmt.ms),
  ['p50 ratio', (c) => fmt.ratio(c.ratios.p50Ms)],
  ...perStore('p99 ms', 'p99Ms', fmt.ms),
  ['p99 ratio', (c) => fmt.ratio(c.ratios.p99Ms)],
  ...perStore('main µs/op', 'busyUsPerOp', fmt.us),
  ['main ratio', (c) => fmt.ratio(c.ratios.busyUsPerOp)],
  ['JSON floor µs', (c) => (c.floorUs == null ? '–' : fmt.us(c.floorUs))],
  ['targets', (c) => targetMarks(c.targets)],
];

/** CPU time per operation: what the event-loop figure cannot tell apart (work vs. waiting for a core). */
const CPU_COLUMNS = [
  ...ROW_KEY,
  ...perStore('main busy µs/op', 'busyUsPerOp', fmt.us),
  ...perStore('main CPU µs/op', 'mainCpuUsPerOp', fmt.us),
  ...perStore('main waiting for a core µs/op', 'mainRunQueueUsPerOp', fmt.us),
  ['main CPU ratio', (c) => fmt.ratio(c.ratios.mainCpuUsPerOp)],
  ...perStore('process CPU µs/op', 'processCpuUsPerOp', fmt.us),
  ['process CPU ratio', (c) => fmt.ratio(c.ratios.processCpuUsPerOp)],
];

function rows(cells, columns = COLUMNS) {
  return cells.map((cell) => columns.map(([, get]) => get(cell)));
}

/** A plain fixed-width table for the terminal. */
function textTable(cells, columns = COLUMNS) {
  const header = columns.map(([title]) => title);
  const body = rows(cells, columns);
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((row) => row[i].length)));
  const line = (row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** One row for the terminal, printed as soon as a cell is measured. */
function cellLine(cell) {
  const each = (key, format) => STORE_NAMES.map((name) => format(cell[name][key])).join('/');
  return `${OP_LABELS[cell.op].padEnd(18)} ${cell.size.padEnd(4)} c=${String(cell.concurrency).padEnd(3)} ` +
    `ops/s ${each('opsPerSec', fmt.rate)} (${fmt.ratio(cell.ratios.opsPerSec)} of best peer)  ` +
    `p50 ${each('p50Ms', fmt.ms)} ms  p99 ${each('p99Ms', fmt.ms)} ms  main ${each('busyUsPerOp', fmt.us)} µs/op  ` +
    `floor ${cell.floorUs == null ? '–' : fmt.us(cell.floorUs)} µs  ` +
    `process CPU ${each('processCpuUsPerOp', fmt.us)} µs/op  ${targetMarks(cell.targets)}`;
}

/** A target's measured value and its limit, as words. */
function targetValue(t) {
  if (t.name === 'p50' || t.name === 'p99') return `${fmt.ms(t.value)} ms (best peer ${fmt.ms(t.limit)} ms)`;
  if (t.name === 'main-thread' && t.op !== 'listFields') return `${fmt.us(t.value)} µs (limit ${fmt.us(t.limit)} µs)`;
  return `${fmt.ratio(t.value)} (need ${t.name === 'main-thread' ? '≤' : '≥'} ${fmt.ratio(t.limit)})`;
}

function targetLines(targets) {
  return targets.map((t) => `${t.pass ? 'PASS' : 'FAIL'}  ${OP_LABELS[t.op]} ${t.size} c=${t.concurrency}  ` +
    `${t.name}: ${targetValue(t)}  [${t.rule}]`);
}

function ceilingLines(ceiling) {
  return ceiling.map((c) => `redis-benchmark ${c.size} c=${c.concurrency}: SET ${fmt.rate(c.set.rps)}/s ` +
    `(p50 ${fmt.ms(c.set.p50Ms)} ms, p99 ${fmt.ms(c.set.p99Ms)} ms)  GET ${fmt.rate(c.get.rps)}/s ` +
    `(p50 ${fmt.ms(c.get.p50Ms)} ms, p99 ${fmt.ms(c.get.p99Ms)} ms)`);
}

function markdownTable(header, body) {
  const escape = (cell) => String(cell).replace(/\|/g, '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${header.map((_, i) => (i < 3 ? '---' : '---:')).join(' | ')} |`,
    ...body.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n');
}

function markdown(results) {
  const { meta, cells, ceiling, targets } = results;
  const passed = targets.filter((t) => t.pass).length;
  const parts = [
    '<!-- generated by `npm run bench` (bench/run.js); do not edit by hand -->',
    `Medians of ${meta.rounds} rounds per row (the stores take turns to run first); ${meta.node}, ${meta.cpu} (${meta.cores} cores), ` +
      `redis-server ${meta.redisVersion} on loopback, ioredis ${meta.ioredis}, node-redis ${meta.nodeRedis}, ${meta.date.slice(0, 10)}; ` +
      `addon ${meta.build.addonSha256} (git ${meta.build.gitHead}${meta.build.gitDirty.length ? ', uncommitted changes' : ''}).` +
      (meta.proxyDelayMs == null ? ''
        : ` **Through a network**: every store reaches Redis through a TCP proxy (examples/latency_proxy.rs, its own process) ` +
          `that holds each chunk ${meta.proxyDelayMs} ms each way (${meta.proxyAddedMs ?? '?'} ms measured with PINGs), ` +
          'as Redis in the same cloud region would.'),
    '',
    markdownTable(COLUMNS.map(([title]) => title), rows(cells)),
    '',
    'Peers: the original ioredis store and the same store written on node-redis (`test-support/`); each ratio is ours ÷ the ' +
      'best figure either peer reached. ' +
      '\\* `listByUser(user, { fields: [...] })` (ours) against the full `listByUser` (the peers\' only listing). ' +
      '"main µs/op" is main-thread busy time per operation (event-loop utilization × wall time ÷ operations); ' +
      '"JSON floor" is the bare `JSON.stringify` (set) / `JSON.parse` (get, 50× for a list) of the same records.',
  ];
  parts.push('', 'CPU time per operation (main thread: on-CPU time of the event-loop thread, from Linux schedstat; ' +
    'process: every thread, including the native store\'s worker threads, libuv and V8 helpers). ' +
    'The event-loop figure above counts wall time, so it also includes time the main thread was runnable but waiting for a core ' +
    '(run-queue wait, from schedstat: this machine has 2 cores for the main thread, the store\'s worker thread and redis-server).', '',
  markdownTable(CPU_COLUMNS.map(([title]) => title), rows(cells, CPU_COLUMNS)));
  if (ceiling.length) {
    parts.push('', 'Raw ceiling on the same server (`redis-benchmark -t set,get`, same value size and concurrency):', '',
      markdownTable(['size', 'c', 'SET ops/s', 'SET p99 ms', 'GET ops/s', 'GET p99 ms'],
        ceiling.map((c) => [c.size, String(c.concurrency), fmt.rate(c.set.rps), fmt.ms(c.set.p99Ms),
          fmt.rate(c.get.rps), fmt.ms(c.get.p99Ms)])));
  }
  parts.push('', `Targets (issue 14): ${passed} of ${targets.length} met.`, '',
    markdownTable(['result', 'operation', 'size', 'c', 'target', 'measured', 'rule'],
      targets.map((t) => [t.pass ? 'PASS' : 'FAIL', OP_LABELS[t.op], t.size, String(t.concurrency), t.name,
        targetValue(t), t.rule])));
  parts.push('');
  return parts.join('\n');
}

module.exports = { CPU_COLUMNS, textTable, cellLine, targetLines, ceilingLines, markdown, OP_LABELS };
