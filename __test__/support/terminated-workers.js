'use strict';

// Child process of __test__/worker-threads.test.js: starts workers that keep
// a RedisStore busy (support/busy-worker.js) and terminates each one while
// its calls are in flight. With --counts the main thread loads the addon too
// and reports what stays alive natively: calls not yet settled or abandoned
// and RedisStores not yet dropped, at each termination and once drained.
// Prints one JSON line, then returns: the process must exit by itself.
// Usage: node terminated-workers.js <redis url> <rounds> <answering|hung> [--counts]

const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');

const [url, rounds, server] = process.argv.slice(2);
const withCounts = process.argv.includes('--counts');
const root = path.resolve(__dirname, '..', '..');
const DRAIN_DEADLINE_MS = 15_000;
const POLL_MS = 20;

const liveCounts = withCounts ? require(path.join(root, 'redis-conversation-store.node'))._liveCounts : null;

async function drained() {
  const started = Date.now();
  for (;;) {
    const counts = liveCounts();
    if ((counts.calls === 0 && counts.redisStores === 0) || Date.now() - started > DRAIN_DEADLINE_MS) {
      return { ...counts, ms: Date.now() - started };
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function main() {
  const atTermination = [];
  const exitCodes = [];
  for (let round = 0; round < Number(rounds); round++) {
    const worker = new Worker(path.join(__dirname, 'busy-worker.js'), {
      workerData: { root, url, loops: 40, waitForConnection: server === 'answering' },
    });
    const [message] = await once(worker, 'message');
    if (message !== 'busy') throw new Error(`worker: ${message}`);
    if (liveCounts) atTermination.push(liveCounts());
    exitCodes.push(await worker.terminate());
  }
  const result = { exitCodes, atTermination };
  if (liveCounts) result.drained = await drained();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
