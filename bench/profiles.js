#!/usr/bin/env node
'use strict';
// `npm run bench:profiles`: where each operation's time goes. For every
// operation (set, get, listByUser, delete) at 4 KB and 64 KB, concurrency 64
// and 1, runs bench/profile.js alone under `perf record` (cpu-clock samples
// with call stacks), and charges each sample of the measured phase to a
// thread (the main JS thread, the store's tokio worker, V8/libuv helpers,
// redis-server) and a cost category (bench/lib/perf-profile.js). Each row is
// CPU µs per operation; Redis's own time per operation comes from INFO
// commandstats. A peer (node-redis by default) runs the same rows for
// comparison. Writes bench/results/profiles.{json,md} and copies the tables
// into README.md ("Where the time goes").
//
//   node bench/profiles.js                         all rows (about 5 minutes)
//   node bench/profiles.js --ops get --sizes 4k --concurrency 64 --peer none
//                                                  a few rows: writes profiles-partial.* and leaves README.md alone
//   node bench/profiles.js --seconds 4 --warmup 1  measured and warm-up seconds per row
//   node bench/profiles.js --rewrite               no measuring: profiles.md and README.md again from profiles.json
//
// Needs Linux `perf` and the right to use it (root, or perf_event_paranoid ≤ 1).
// Node's perf map and log files go to a temporary directory (and /tmp/perf-<pid>.map,
// which V8 always writes there); both are removed after each row.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { once } = require('node:events');
const { parseArgs } = require('node:util');

const { PERF_SCRIPT_FIELDS, GROUPS, summarizeThreads, groupThreads, ranked, linesOf } = require('./lib/perf-profile');
const { buildIdentity, machine } = require('./lib/identity');
const { updateReadme } = require('./lib/readme');
const { OP_LABELS } = require('./lib/report');
const { STORE_LABELS, PEER_NAMES } = require('./lib/stores');

const RESULTS_DIR = path.join(__dirname, 'results');
const PROFILE_JS = path.join(__dirname, 'profile.js');
const ALL = { ops: ['set', 'get', 'list', 'delete'], sizes: ['4k', '64k'], concurrency: ['64', '1'] };
/** Categories per thread shown in the markdown table (the JSON has all). */
const TOP_CATEGORIES = 5;

function usage(message) {
  console.error(`${message}\nusage: node bench/profiles.js [--ops ${ALL.ops.join(',')}] [--sizes ${ALL.sizes.join(',')}] ` +
    `[--concurrency ${ALL.concurrency.join(',')}] [--seconds 4] [--warmup 1] [--peer ${PEER_NAMES.join('|')}|none] ` +
    '[--frequency 1999] [--out NAME] [--rewrite]');
  process.exit(2);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        ops: { type: 'string' },
        sizes: { type: 'string' },
        concurrency: { type: 'string' },
        seconds: { type: 'string', default: '4' },
        warmup: { type: 'string', default: '1' },
        peer: { type: 'string', default: 'nodeRedis' },
        frequency: { type: 'string', default: '1999' },
        out: { type: 'string' },
        rewrite: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    usage(err.message);
  }
  const list = (name) => {
    const items = (parsed[name] ?? ALL[name].join(',')).split(',').map((s) => s.trim()).filter(Boolean);
    for (const item of items) if (!ALL[name].includes(item)) usage(`--${name}: unknown value ${JSON.stringify(item)}`);
    return ALL[name].filter((item) => items.includes(item));
  };
  const number = (name) => {
    const value = Number(parsed[name]);
    if (!(value > 0)) usage(`--${name} needs a positive number`);
    return value;
  };
  if (parsed.peer !== 'none' && !PEER_NAMES.includes(parsed.peer)) usage(`--peer: unknown store ${parsed.peer}`);
  const opts = {
    ops: list('ops'),
    sizes: list('sizes'),
    concurrencies: list('concurrency').map(Number),
    seconds: number('seconds'),
    warmup: number('warmup'),
    peer: parsed.peer === 'none' ? null : parsed.peer,
    frequency: number('frequency'),
    rewrite: parsed.rewrite,
  };
  // A run that leaves rows out never replaces the published profiles.
  const partial = ['ops', 'sizes', 'concurrency'].some((name) => parsed[name] !== undefined) || opts.peer === null;
  opts.out = parsed.out ?? (partial ? 'profiles-partial' : 'profiles');
  return opts;
}

function checkPerf() {
  const probe = spawnSync('perf', ['record', '-q', '-e', 'cpu-clock', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    console.error('bench/profiles.js needs Linux `perf` and the right to record (root, or ' +
      `/proc/sys/kernel/perf_event_paranoid ≤ 1): ${probe.error?.message ?? probe.stderr.trim()}`);
    process.exit(1);
  }
}

/**
 * The store's categories need the addon's function names: a stripped build
 * (what `node scripts/build.js` makes by default) would count all of the
 * tokio worker's time as "other".
 */
function checkSymbols() {
  const { localAddonPath, hostPlatform } = require('../scripts/platform.js');
  const addon = localAddonPath(hostPlatform());
  if (!fs.readFileSync(addon).includes('.symtab')) {
    console.error(`bench/profiles.js needs the addon's symbols, and ${path.basename(addon)} is stripped: ` +
      'run `node scripts/build.js --force --symbols` (npm run bench:profiles does it for you)');
    process.exit(1);
  }
}

/** Waits for a child; rejects with its stderr if it fails. */
async function finished(child, what, stderr) {
  const [code, signal] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${what} failed (${signal ?? `exit ${code}`}): ${stderr().trim().slice(-2000)}`);
}

function collect(stream) {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    text += chunk;
  });
  return () => text;
}

/** Removes V8's perf map of a profiled process (V8 writes it to /tmp whatever the cwd). */
function removePerfMap(pid) {
  if (Number.isInteger(pid)) fs.rmSync(path.join('/tmp', `perf-${pid}.map`), { force: true });
}

/** One row: profile.js under perf record, then its measured window summarized from perf script. */
async function profileRow(row, opts, dir, index) {
  const data = path.join(dir, `${index}.data`);
  const json = path.join(dir, `${index}.json`);
  const args = ['record', '-q', '-k', 'CLOCK_MONOTONIC', '-e', 'cpu-clock', '-F', String(opts.frequency), '-g', '-o', data, '--',
    process.execPath, '--perf-basic-prof', PROFILE_JS, '--store', row.store, '--op', row.op, '--size', row.size,
    '--concurrency', String(row.concurrency), '--seconds', String(opts.seconds), '--warmup', String(opts.warmup), '--json', json];
  let measured = null;
  try {
    const record = spawn('perf', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = collect(record.stdout);
    const err = collect(record.stderr);
    try {
      await finished(record, `perf record (${row.store} ${row.op} ${row.size} c=${row.concurrency})`, () => out() + err());
    } finally {
      measured = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : null;
    }
    if (!measured?.window) throw new Error(`profile.js wrote no measurement:\n${out()}${err()}`);
    const script = spawn('perf', ['script', '-i', data, '-F', PERF_SCRIPT_FIELDS], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const scriptErr = collect(script.stderr);
    const exited = finished(script, 'perf script', scriptErr);
    exited.catch(() => {}); // awaited below, once its output is read
    const threads = await summarizeThreads(linesOf(script.stdout), {
      from: Number(measured.window.startNs) / 1e9,
      to: Number(measured.window.endNs) / 1e9,
    });
    await exited;
    return rowResult(row, measured, groupThreads(threads, { nodePid: measured.pid, redisPid: measured.redisPid }));
  } finally {
    removePerfMap(measured?.pid);
    fs.rmSync(data, { force: true });
    fs.rmSync(json, { force: true });
  }
}

const round1 = (value) => Math.round(value * 10) / 10;

/** What a row keeps: figures per operation, by thread group and category. */
function rowResult(row, measured, groups) {
  const ops = measured.ops;
  const usPerOp = (weightNs) => weightNs / 1000 / ops;
  const threads = {};
  for (const [key] of GROUPS) {
    const group = groups[key];
    const entry = { usPerOp: usPerOp(group.weight), samples: group.samples, threads: group.threads.map((t) => t.comm) };
    if (key === 'main' || key === 'tokio') {
      entry.categories = ranked(group.categories, group.weight)
        .map(({ name, share }) => ({ name, usPerOp: share * entry.usPerOp, share }));
    } else {
      entry.topLeaves = ranked(group.leaves, group.weight).slice(0, 8)
        .map(({ name, share }) => ({ name, usPerOp: share * entry.usPerOp, share }));
    }
    threads[key] = entry;
  }
  const commands = measured.commandStats.map(({ name, calls, usec }) => ({
    name, callsPerOp: calls / ops, usPerCall: usec / calls, usPerOp: usec / ops,
  }));
  return {
    ...row,
    ops,
    seconds: measured.wallMs / 1000,
    opsPerSec: measured.opsPerSec,
    p50Ms: measured.p50Ms,
    p99Ms: measured.p99Ms,
    mainCpuUsPerOpSchedstat: measured.mainCpuUsPerOp,
    processCpuUsPerOp: measured.processCpuUsPerOp,
    threads,
    redisCommands: { usPerOp: commands.reduce((sum, c) => sum + c.usPerOp, 0), commands },
  };
}

const fmtUs = (v) => (!Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

function markdownTable(header, body, keyColumns) {
  const escape = (cell) => String(cell).replace(/\|/g, '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${header.map((_, i) => (i < keyColumns ? '---' : '---:')).join(' | ')} |`,
    ...body.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n');
}

const rowKey = (r) => [OP_LABELS[r.op], r.size, String(r.concurrency), STORE_LABELS[r.store]];

/** The heaviest categories of a thread, `name µs` each. */
function topCategories(thread) {
  if (!thread?.categories || thread.usPerOp < 0.05) return '–';
  return thread.categories.slice(0, TOP_CATEGORIES).filter((c) => c.share >= 0.02)
    .map((c) => `${c.name} ${fmtUs(c.usPerOp)}`).join('; ');
}

function redisCommandsCell(r) {
  return r.redisCommands.commands.filter((c) => c.callsPerOp >= 0.01).sort((a, b) => b.usPerOp - a.usPerOp)
    .map((c) => `${c.name.toUpperCase()} ${c.callsPerOp.toFixed(c.callsPerOp >= 0.95 ? 0 : 2)}× ${fmtUs(c.usPerCall)}`).join(', ');
}

function markdown({ meta, rows }) {
  const command = `node bench/profiles.js${meta.argv.length ? ` ${meta.argv.join(' ')}` : ''}`;
  const groupLabel = Object.fromEntries(GROUPS);
  const threadTable = markdownTable(
    ['operation', 'size', 'c', 'store', 'ops/s', groupLabel.main, '(schedstat)', groupLabel.tokio, groupLabel.helpers,
      groupLabel.redis, 'Redis commands (commandstats)', 'total', 'commands: calls/op × µs/call'],
    rows.map((r) => {
      const t = r.threads;
      const total = t.main.usPerOp + t.tokio.usPerOp + t.helpers.usPerOp + t.redis.usPerOp;
      return [...rowKey(r), String(Math.round(r.opsPerSec)), fmtUs(t.main.usPerOp), fmtUs(r.mainCpuUsPerOpSchedstat),
        r.store === 'ours' ? fmtUs(t.tokio.usPerOp) : '–', fmtUs(t.helpers.usPerOp), fmtUs(t.redis.usPerOp),
        fmtUs(r.redisCommands.usPerOp), fmtUs(total), redisCommandsCell(r)];
    }),
    4,
  );
  const categoryTable = markdownTable(
    ['operation', 'size', 'c', 'store', `${groupLabel.main}: top categories, µs/op`, `${groupLabel.tokio}: top categories, µs/op`],
    rows.map((r) => [...rowKey(r), topCategories(r.threads.main), r.store === 'ours' ? topCategories(r.threads.tokio) : '–']),
    6,
  );
  return [
    '<!-- generated by `npm run bench:profiles` (bench/profiles.js); do not edit by hand -->',
    `\`${command}\`: each row is one run of \`bench/profile.js\` (${meta.warmup} s warm-up, ${meta.seconds} s measured) under ` +
      `\`perf record -e cpu-clock -F ${meta.frequency} -g\`; only samples of the measured phase count. ` +
      `${meta.node}, ${meta.cpu} (${meta.cores} cores, load average ${meta.loadAverage.toFixed(2)} before the run), ` +
      `redis-server ${meta.redisVersion} on loopback, node-redis ${meta.nodeRedis}, ${meta.date.slice(0, 10)}; ` +
      `addon ${meta.build.addonSha256} (git ${meta.build.gitHead}${meta.build.gitDirty.length ? ', uncommitted changes' : ''}); ` +
      `${meta.durationSeconds} s in all.`,
    '',
    'CPU µs per operation, by thread (from the samples; "(schedstat)" is the main thread\'s CPU time as the kernel counts it, ' +
      'a check on the sampling). "Redis commands" is Redis\'s own time inside the commands (`INFO commandstats`); the rest of ' +
      'redis-server\'s is its event loop and socket I/O. Redis times a command by the clock, so a command preempted on a ' +
      'busy machine counts its wait too, and the column can exceed redis-server\'s CPU. "total" is the four threads\' sum.',
    '',
    threadTable,
    '',
    'Where the main JS thread\'s and the store worker\'s time goes: the heaviest cost categories of each (the first frame, ' +
      'leaf first, that a rule of `bench/lib/perf-profile.js` recognizes, so kernel, libc and V8 runtime time counts for the ' +
      'caller that caused it; JS counts by its file: the store\'s `index.js`, the peer, the bench loop). "strings into JS" is ' +
      'V8 building JS strings from bytes (ours: the record text handed over through Node-API; the peers: `Buffer` to string). ' +
      '"malloc/free/memcpy (caller unknown)" is libc time whose caller is not on the stack (the addon is built without frame ' +
      'pointers).',
    '',
    categoryTable,
    '',
  ].join('\n');
}

function redisVersion() {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return /v=(\S+)/.exec(result.stdout ?? '')?.[1] ?? 'unknown';
}

function printRow(r) {
  const t = r.threads;
  console.error(`${OP_LABELS[r.op].padEnd(10)} ${r.size.padEnd(3)} c=${String(r.concurrency).padEnd(2)} ${r.store.padEnd(9)} ` +
    `${String(Math.round(r.opsPerSec)).padStart(6)} ops/s  µs/op: main ${fmtUs(t.main.usPerOp)} ` +
    `(schedstat ${fmtUs(r.mainCpuUsPerOpSchedstat)}), tokio ${fmtUs(t.tokio.usPerOp)}, helpers ${fmtUs(t.helpers.usPerOp)}, ` +
    `redis-server ${fmtUs(t.redis.usPerOp)} (commands ${fmtUs(r.redisCommands.usPerOp)})`);
}

async function main() {
  const opts = options();
  if (opts.rewrite) {
    publish(JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, `${opts.out}.json`), 'utf8')), opts.out);
    return;
  }
  checkPerf();
  checkSymbols();
  const started = Date.now();
  const meta = {
    argv: process.argv.slice(2),
    build: buildIdentity(),
    date: new Date().toISOString(),
    ...machine(),
    loadAverage: os.loadavg()[0],
    redisVersion: redisVersion(),
    nodeRedis: require('redis/package.json').version,
    seconds: opts.seconds,
    warmup: opts.warmup,
    frequency: opts.frequency,
  };
  const plan = [];
  for (const op of opts.ops) {
    for (const size of opts.sizes) {
      for (const concurrency of opts.concurrencies) {
        for (const store of ['ours', ...(opts.peer ? [opts.peer] : [])]) plan.push({ op, size, concurrency, store });
      }
    }
  }
  console.error(`# ${plan.length} rows, ${opts.warmup} + ${opts.seconds} s each, perf at ${opts.frequency} Hz`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcs-profiles-'));
  const rows = [];
  try {
    for (const [index, row] of plan.entries()) {
      const result = await profileRow(row, opts, dir, index);
      printRow(result);
      rows.push(result);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  meta.durationSeconds = Math.round((Date.now() - started) / 1000);
  const results = { meta, rows };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, `${opts.out}.json`), `${JSON.stringify(results, roundedJson, 2)}\n`);
  publish(results, opts.out, `bench/results/${opts.out}.json`);
}

/** Writes the markdown page (and, for the published profiles, README.md's copy). */
function publish(results, out, ...written) {
  fs.writeFileSync(path.join(RESULTS_DIR, `${out}.md`), markdown(results));
  written.push(`bench/results/${out}.md`);
  if (out === 'profiles') written.push(updateReadme('profiles'));
  console.log(`\n${markdown(results)}\nwrote ${written.join(', ')} (${results.meta.durationSeconds} s)`);
}

/** µs figures in the JSON to 0.1 µs and shares to 0.1 %: the sampling is not finer. */
function roundedJson(key, value) {
  if (typeof value !== 'number' || Number.isInteger(value)) return value;
  if (key === 'share') return Math.round(value * 1000) / 1000;
  if (/^us|UsPerOp|usPerOp$/.test(key)) return round1(value);
  if (key === 'opsPerSec') return Math.round(value);
  return value;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
