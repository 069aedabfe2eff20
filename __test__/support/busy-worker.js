'use strict';

// A worker_threads worker that keeps a RedisStore busy: `loops` chains of
// calls, each starting its next call when the last one settles, so about
// `loops` calls are always in flight. It tells its parent 'busy' once they
// run; the parent then terminates it mid-flight.
// workerData: { root, url, loops, waitForConnection }

const { parentPort, workerData } = require('node:worker_threads');

const { RedisStore } = require(workerData.root);

const store = new RedisStore({
  url: workerData.url,
  allowPlaintext: true,
  logger: null,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});

function conversation(index) {
  return { userId: `u${index % 5}`, updatedAt: '2024-01-01T00:00:00.000Z', history: [{ role: 'user', content: `hi ${index}` }] };
}

function keepBusy(loop, step) {
  const id = `w${loop}`;
  const calls = [
    () => store.set(id, conversation(loop)),
    () => store.get(id),
    () => store.listByUser(`u${loop % 5}`),
  ];
  calls[step % calls.length]().then(
    () => keepBusy(loop, step + 1),
    () => keepBusy(loop, step + 1),
  );
}

async function main() {
  // With a server that answers, start once connected, so calls are on the wire.
  if (workerData.waitForConnection) await store.ping();
  for (let loop = 0; loop < workerData.loops; loop++) keepBusy(loop, 0);
  parentPort.postMessage('busy');
}

main().catch((err) => parentPort.postMessage(`failed: ${err.stack}`));
