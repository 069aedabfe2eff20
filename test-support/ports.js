'use strict';

// Loopback ports for throwaway servers. Everything test-support starts binds
// 127.0.0.1 only, and never 6379: a developer's own Redis lives there.

const net = require('node:net');

const LOOPBACK = '127.0.0.1';
/** The developer's own Redis lives here: never hand it out. */
const FORBIDDEN_PORT = 6379;

/**
 * Ports owned by a live (or stopped but restartable) server handle. freePort()
 * never returns them, so a restart() can always take its old port back.
 */
const reservedPorts = new Set();

/**
 * Resolves a port that was free on 127.0.0.1 a moment ago: binds port 0,
 * reads the port the kernel chose, closes. Never 6379, never a reserved port,
 * never one in `avoid` (ports the caller picked but has not bound yet).
 * @param {{ avoid?: Set<number> }} [opts]
 * @returns {Promise<number>}
 */
async function freePort({ avoid } = {}) {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, LOOPBACK, () => {
        const { port: chosen } = srv.address();
        srv.close(() => resolve(chosen));
      });
    });
    if (port !== FORBIDDEN_PORT && !reservedPorts.has(port) && !(avoid && avoid.has(port))) return port;
  }
}

module.exports = { LOOPBACK, FORBIDDEN_PORT, freePort, reservedPorts };
