'use strict';
// A TCP proxy in its own process, so that its work is not on the measured
// stores' event loop: `node proxy-child.js <target port> <delay ms>` prints
// `{"port":N}` once listening and runs until stdin closes (its parent ended).
// Node timers are millisecond-grained, so a delay is at least 1 ms.

const { startProxy } = require('../../test-support');

async function main() {
  const [targetPort, delayMs] = process.argv.slice(2).map(Number);
  const proxy = await startProxy({ target: targetPort, delayMs });
  process.stdout.write(`${JSON.stringify({ port: proxy.port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => proxy.close().finally(() => process.exit(0)));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
