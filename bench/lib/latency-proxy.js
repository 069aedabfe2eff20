'use strict';
// The bench's network: examples/latency_proxy.rs (a Rust TCP proxy that holds
// every chunk a fixed delay each way) in its own process, built on first use
// (its tests: `cargo test --example latency_proxy`),
// and a check of the delay it really adds, measured with PINGs.

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');
const { once } = require('node:events');
const readline = require('node:readline');

const ROOT = path.join(__dirname, '..', '..');
const SOURCE = path.join(ROOT, 'examples', 'latency_proxy.rs');
const BINARY = path.join(ROOT, 'target', 'bench', process.platform === 'win32' ? 'latency_proxy.exe' : 'latency_proxy');
const PINGS = 400;
/** The proxy must add at least this share of the delay asked for, or the run stops. */
const MIN_SHARE = 0.9;

/**
 * The proxy uses std alone, so rustc builds it in seconds; `cargo build
 * --example` would first build the whole store with its dependencies.
 */
function buildProxy() {
  const fresh = fs.existsSync(BINARY) && fs.statSync(BINARY).mtimeMs >= fs.statSync(SOURCE).mtimeMs;
  if (fresh) return BINARY;
  fs.mkdirSync(path.dirname(BINARY), { recursive: true });
  const built = spawnSync('rustc', ['--edition', '2021', '-O', '-o', BINARY, SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0) throw new Error(`rustc examples/latency_proxy.rs failed (${built.error?.message ?? `status ${built.status}`})`);
  return BINARY;
}

/** Median milliseconds of `PINGS` sequential PINGs on a fresh connection to `port`. */
async function medianPingMs(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const times = [];
  try {
    for (let i = 0; i < PINGS; i++) {
      const started = process.hrtime.bigint();
      socket.write('PING\r\n');
      let reply = '';
      while (!reply.endsWith('\r\n')) reply += (await once(socket, 'data'))[0].toString('latin1');
      if (reply !== '+PONG\r\n') throw new Error(`unexpected PING reply ${JSON.stringify(reply)}`);
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  } finally {
    socket.destroy();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * Starts a proxy to 127.0.0.1:`targetPort` holding each chunk `delayMs`
 * each way; `{ url, port, addedMs, stop }`, where `addedMs` is the median
 * delay measured each way. Throws when the proxy adds under 90 % of it.
 */
async function startLatencyProxy(targetPort, delayMs) {
  const child = spawn(buildProxy(), [String(targetPort), String(Math.round(delayMs * 1000))],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const stop = async () => {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  };
  try {
    const [line] = await Promise.race([
      once(readline.createInterface({ input: child.stdout }), 'line'),
      once(child, 'exit').then(([code]) => { throw new Error(`latency_proxy exited (${code}) before listening`); }),
    ]);
    const { port } = JSON.parse(line);
    const direct = await medianPingMs(targetPort);
    const proxied = await medianPingMs(port);
    const addedMs = (proxied - direct) / 2;
    if (addedMs < delayMs * MIN_SHARE) {
      throw new Error(`the proxy adds ${addedMs.toFixed(3)} ms each way, under ${delayMs} ms: the network rows would flatter every store`);
    }
    return { url: `redis://127.0.0.1:${port}`, port, addedMs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

module.exports = { startLatencyProxy, medianPingMs };
