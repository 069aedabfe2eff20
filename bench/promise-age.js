#!/usr/bin/env node
'use strict';
// Why listing at high concurrency costs every promise-based store more main
// thread per page, shown without Redis or any store: plain JavaScript.
//
//   node bench/promise-age.js [--concurrency 16,24,32,64] [--rounds 3] [--seconds 2]
//
// N callers each wait their turn (one per event-loop turn, first come first
// served, as replies come back from a server) and then get a page of 50
// records of the bench's 4 KB conversations, parsed with JSON.parse. Two ways
// to hand the page over:
//
// - `call-time`: the page settles the promise the caller got when its call
//   started, as `await store.listByUser(...)` does with any store.
// - `fresh`: the turn settles that promise with nothing, and the page comes
//   through a promise made at that moment (no API can do this: it shows the
//   cause).
//
// A promise made when the call started and settled N pages later has lived
// through V8's scavenges once N pages' allocation outgrows the young
// generation (16 MB semi-spaces by default; a 4 KB page parses into about
// half a megabyte), so it sits in the old generation. The page it is settled
// with is then referenced from an old object; a scavenge cannot tell that the
// promise is dead (only a full collection can), so it copies the page and
// promotes it, every page. Each run is its own process (a fresh heap); the
// rounds alternate the modes, and the table gives medians.

const { spawnSync } = require('node:child_process');
const { PerformanceObserver, constants } = require('node:perf_hooks');

const { SIZES, makeConversations } = require('./lib/records');
const { median } = require('./lib/measure');

const MODES = ['call-time', 'fresh'];
const PAGE_RECORDS = 50;

function child(concurrency, mode, seconds) {
  const texts = makeConversations(SIZES['4k'], { count: PAGE_RECORDS, users: ['lister'], seed: 1 }).map((entry) => entry.json);
  const parsePage = () => texts.map((text) => JSON.parse(text));
  const gc = { scavengeMs: 0, fullCollections: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.scavengeMs += entry.duration;
      if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.fullCollections++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  const waiting = [];
  const nextTurn = () => {
    const settle = waiting.shift();
    if (settle === undefined) return;
    settle();
    setImmediate(nextTurn);
  };
  const turn = () => new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 1) setImmediate(nextTurn);
  });
  const listAtCallTime = async () => {
    await turn();
    return parsePage();
  };

  let pages = 0;
  const deadline = Date.now() + seconds * 1000;
  async function caller() {
    while (Date.now() < deadline) {
      if (mode === 'call-time') {
        await listAtCallTime();
      } else {
        await turn();
        await Promise.resolve().then(parsePage);
      }
      pages++;
    }
  }
  const started = performance.now();
  Promise.all(Array.from({ length: concurrency }, caller)).then(() => {
    const wallMs = performance.now() - started;
    // The observer's entries arrive asynchronously: report after they have.
    setImmediate(() => {
      observer.disconnect();
      process.stdout.write(JSON.stringify({
        pagesPerSec: pages / (wallMs / 1000),
        scavengeUsPerPage: (gc.scavengeMs * 1000) / pages,
        fullCollectionsPer1000Pages: (gc.fullCollections * 1000) / pages,
      }));
    });
  });
}

function parseArgs(argv) {
  const opts = { concurrency: [16, 24, 32, 64], rounds: 3, seconds: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--concurrency') opts.concurrency = value.split(',').map(Number);
    else if (flag === '--rounds') opts.rounds = Number(value);
    else if (flag === '--seconds') opts.seconds = Number(value);
    else throw new Error(`unknown flag ${flag} (--concurrency 16,24,32,64 --rounds 3 --seconds 2)`);
  }
  const valid = opts.concurrency.every((c) => Number.isInteger(c) && c > 0) && Number.isInteger(opts.rounds) && opts.rounds > 0 && opts.seconds > 0;
  if (!valid) throw new Error('--concurrency takes whole numbers above 0, --rounds a whole number above 0, --seconds a number above 0');
  return opts;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  console.log(`v8 ${process.versions.v8}, ${opts.rounds} round(s) of ${opts.seconds} s per cell, medians`);
  console.log('| callers | page settles | pages/s | scavenge µs per page | full collections per 1,000 pages |');
  console.log('| ---: | --- | ---: | ---: | ---: |');
  for (const concurrency of opts.concurrency) {
    const runs = Object.fromEntries(MODES.map((mode) => [mode, []]));
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? MODES : [...MODES].reverse();
      for (const mode of order) {
        const run = spawnSync(process.execPath, [__filename, '--child', String(concurrency), mode, String(opts.seconds)], { encoding: 'utf8' });
        if (run.status !== 0) throw new Error(`child (${concurrency}, ${mode}) failed: ${run.stderr}`);
        runs[mode].push(JSON.parse(run.stdout));
      }
    }
    for (const mode of MODES) {
      const of = (field) => median(runs[mode].map((run) => run[field]));
      const label = mode === 'call-time' ? 'the promise made at the call' : 'a promise made then';
      console.log(`| ${concurrency} | ${label} | ${Math.round(of('pagesPerSec'))} | ${Math.round(of('scavengeUsPerPage'))} | ${of('fullCollectionsPer1000Pages').toFixed(1)} |`);
    }
  }
}

if (process.argv[2] === '--child') {
  child(Number(process.argv[3]), process.argv[4], Number(process.argv[5]));
} else {
  main();
}
