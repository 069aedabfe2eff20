'use strict';
// The raw ceiling: redis-benchmark GET and SET against the same server, with
// the same value size and concurrency as the store measurements.

const { execFile } = require('node:child_process');
const { median } = require('./measure');

/** Requests per redis-benchmark run, chosen for about a second each on a small machine. */
function requestCount(sizeBytes, concurrency, quick) {
  const base = concurrency === 1 ? 15_000 : 40_000;
  const scaled = sizeBytes > 16 * 1024 ? base / 4 : base;
  return Math.round(quick ? scaled / 4 : scaled);
}

function runOnce(port, sizeBytes, concurrency, requests) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', 'set,get', '-d', String(sizeBytes),
    '-c', String(concurrency), '-n', String(requests), '-q', '--csv'];
  return new Promise((resolve, reject) => {
    execFile('redis-benchmark', args, { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n${stderr}`;
        reject(err);
      } else {
        resolve(parseCsv(stdout));
      }
    });
  });
}

/** `"test","rps",...,"p50_latency_ms",...` lines into `{ SET: { rps, p50Ms, p99Ms }, GET: ... }`. */
function parseCsv(text) {
  const rows = text.trim().split('\n').map((line) => line.split(',').map((cell) => cell.replace(/^"|"$/g, '')));
  const [header, ...body] = rows;
  const column = (name) => header.indexOf(name);
  const out = {};
  for (const row of body) {
    out[row[0]] = {
      rps: Number(row[column('rps')]),
      p50Ms: Number(row[column('p50_latency_ms')]),
      p99Ms: Number(row[column('p99_latency_ms')]),
    };
  }
  return out;
}

/**
 * Runs each (size, concurrency) `rounds` times, interleaved, and keeps the
 * median of each figure.
 */
async function measureCeiling({ port, sizes, concurrencies, rounds, quick, onResult }) {
  const samples = new Map();
  for (let round = 0; round < rounds; round++) {
    for (const size of sizes) {
      for (const concurrency of concurrencies) {
        const key = `${size.name}/${concurrency}`;
        const result = await runOnce(port, size.bytes, concurrency, requestCount(size.bytes, concurrency, quick));
        if (!samples.has(key)) samples.set(key, { size: size.name, concurrency, runs: [] });
        samples.get(key).runs.push(result);
      }
    }
  }
  const out = [];
  for (const { size, concurrency, runs } of samples.values()) {
    const entry = { size, concurrency, rounds: runs };
    for (const test of ['SET', 'GET']) {
      entry[test.toLowerCase()] = {
        rps: median(runs.map((r) => r[test]?.rps)),
        p50Ms: median(runs.map((r) => r[test]?.p50Ms)),
        p99Ms: median(runs.map((r) => r[test]?.p99Ms)),
      };
    }
    out.push(entry);
    onResult?.(entry);
  }
  return out;
}

module.exports = { measureCeiling, parseCsv };
