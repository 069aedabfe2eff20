'use strict';

// A loopback TCP proxy standing in for an endpoint in front of Redis (a
// managed service's DNS name, a load balancer): each connection it accepts is
// piped to the target of the moment. switchTo() changes the target for NEW
// connections only; connections already piped stay on their old target, as
// they do behind a real endpoint during a failover.
//
//   const proxy = await startProxy({ target: primary });
//   new RedisStore({ url: proxy.url, allowPlaintext: true });
//   proxy.switchTo(replica);   // later connections reach the replica
//   await proxy.close();       // ends the listener and every piped connection
//
// `delayMs` holds each chunk that long in each direction (order kept) to add
// latency; it can be changed at any time (`proxy.delayMs = 50`).

const net = require('node:net');

const { LOOPBACK, freePort } = require('./ports');

/** `{ host, port }` of a target given as a server handle, `{ port }`, or a port. */
function endpoint(target) {
  if (typeof target === 'number') return { host: LOOPBACK, port: target };
  if (!target || !Number.isInteger(target.port)) throw new TypeError('target must be a port or have a numeric port');
  return { host: target.host ?? LOOPBACK, port: target.port };
}

/**
 * One direction of a piped connection: forwards `from`'s bytes to `to`,
 * holding each chunk `delay()` ms. A chunk is never released before the one
 * ahead of it, so a shorter delay set mid-stream cannot reorder bytes.
 */
class Direction {
  constructor(from, to, delay) {
    this.to = to;
    this.delay = delay;
    /** Chunks held back, each with the time it may go. */
    this.queue = [];
    this.timer = null;
    this.lastRelease = 0;
    this.ended = false;
    from.on('data', (chunk) => this.push(chunk));
    from.on('end', () => this.finish());
  }

  /** The source is done: pass on what is held, then end the destination. */
  finish() {
    this.ended = true;
    this.flush();
  }

  push(chunk) {
    const at = Math.max(Date.now() + this.delay(), this.lastRelease);
    this.lastRelease = at;
    this.queue.push({ at, chunk });
    this.flush();
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0].at <= now) {
      if (!this.to.destroyed) this.to.write(this.queue.shift().chunk);
      else this.queue.shift();
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.flush(), this.queue[0].at - now);
    } else if (this.ended && !this.to.destroyed && !this.to.writableEnded) {
      this.to.end();
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.queue = [];
  }
}

class TcpProxy {
  /** Use startProxy(). */
  constructor({ target, delayMs = 0 }) {
    this.target = endpoint(target);
    this.delayMs = delayMs;
    this.host = LOOPBACK;
    this.port = undefined;
    /** Live piped connections: { client, upstream, target }. */
    this.pairs = new Set();
    this.server = net.createServer((client) => this.pipe(client));
  }

  /** `redis://127.0.0.1:<port>` (`scheme` for TLS: the proxy does not care what it carries). */
  url(scheme = 'redis') {
    return `${scheme}://${this.host}:${this.port}`;
  }

  /** Piped connections now open, per target port. */
  connectionsTo(target) {
    const { port } = endpoint(target);
    let count = 0;
    for (const pair of this.pairs) if (pair.target.port === port) count += 1;
    return count;
  }

  /** New connections go to `target` from now on; open ones stay where they are. */
  switchTo(target) {
    this.target = endpoint(target);
  }

  /** Cuts every piped connection (both sides reset), as a failing endpoint would. */
  destroyConnections() {
    for (const pair of this.pairs) this.end(pair, { reset: true });
  }

  async listen() {
    this.port = await freePort();
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this;
  }

  pipe(client) {
    const target = this.target;
    const upstream = net.connect(target.port, target.host);
    const delay = () => this.delayMs;
    const pair = { client, upstream, target, directions: [] };
    pair.directions = [new Direction(client, upstream, delay), new Direction(upstream, client, delay)];
    this.pairs.add(pair);
    let closed = 0;
    [client, upstream].forEach((socket, index) => {
      socket.setNoDelay(true);
      // A failing side (refused, reset) takes the other down with it.
      socket.on('error', () => this.end(pair, { reset: true }));
      // A side that closed cleanly: what it sent still goes through, then
      // the other side is ended; the pair is gone once both are closed.
      socket.on('close', () => {
        closed += 1;
        if (closed === 2) this.end(pair);
        else pair.directions[index].finish();
      });
    });
  }

  end(pair, { reset = false } = {}) {
    if (!this.pairs.delete(pair)) return;
    for (const direction of pair.directions) direction.stop();
    for (const socket of [pair.client, pair.upstream]) {
      if (reset && typeof socket.resetAndDestroy === 'function' && !socket.destroyed && !socket.connecting) {
        socket.resetAndDestroy();
      } else {
        socket.destroy();
      }
    }
  }

  /** Stops listening and ends every connection it piped. */
  async close() {
    this.destroyConnections();
    if (!this.server.listening) return;
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A proxy listening on a free loopback port, piping to `target` (a server
 * handle, `{ host, port }`, or a port).
 * @param {{ target: object | number, delayMs?: number }} opts
 * @returns {Promise<TcpProxy>}
 */
function startProxy(opts) {
  return new TcpProxy(opts).listen();
}

module.exports = { startProxy, TcpProxy };
