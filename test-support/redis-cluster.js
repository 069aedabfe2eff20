'use strict';

// Throwaway Redis Cluster (3 primaries + 3 replicas by default) for tests.
//
// Every node is a redis-server started through startRedis() (127.0.0.1 only,
// never 6379, persistence off, killed by pid at exit), so each node is an
// ordinary RedisServer handle with kill/restart/pause/resume/cli. The cluster
// is formed with `redis-cli --cluster create` and is ready (cluster_state:ok
// on every node, all 16384 slots served, every replica in sync with its
// primary) when startCluster() resolves.
//
//   const { startCluster } = require('../test-support');
//   const cluster = await startCluster({ tls: true });
//   new Redis.Cluster([{ host: '127.0.0.1', port: cluster.nodes[0].port }],
//     { redisOptions: { tls: { ca: cluster.tls.ca } } });
//   const { killed } = await cluster.killPrimaryOf('conv:1');
//   await cluster.waitForFailover(killed);
//   await cluster.stop();
//
// API (RedisCluster):
//   nodes, seedUrl, seedUrls, tls, ports, timings
//   primaries() → [{ handle, port, slots: [[start, end], ...], nodeId }]
//   nodeForKey(key) → handle;  keySlot(key) → number
//   keysPerPrimary(pattern = '*') → Map port → count
//   clusterNodes() → parsed CLUSTER NODES (each with its handle)
//   snapshot() / isOk(snapshot) / waitForState('ok' | predicate(snapshot), timeoutMs = 20000)
//   waitForReplicasInSync(timeoutMs, expected = 0)
//   killPrimaryOf(key) → { killed, replica }
//   waitForFailover(killed, timeoutMs = 15000) → { promoted, elapsedMs }
//   command(handle, ...args) / commands(handle, [...], [...]) — one-shot RESP, TLS/auth handled
//   stop()
//
// Besides the cluster flags, every node gets:
//   --cluster-port <free port>        the bus port is chosen explicitly (the
//                                     default, port + 10000, may be taken or > 65535)
//   --repl-diskless-sync-delay 0      replicas sync at once instead of after 5 s
//   --cluster-replica-validity-factor 0   a replica may always be promoted,
//                                     however stale (makes failover deterministic)
//   --tls-client-cert-file/-key-file  (TLS) the client certificate for the node's
//                                     own outgoing bus/replication links: the bus
//                                     always demands a client certificate, and the
//                                     server certificate is serverAuth only

const { execFile } = require('node:child_process');

const { LOOPBACK: HOST, freePort } = require('./ports');
const { pollUntil } = require('./poll');
const { sendCommands } = require('./resp');
const { startRedis, generateCerts } = require('./redis-server');

const TOTAL_SLOTS = 16384;
const FORM_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 100;
const START_ATTEMPTS = 5;

// ---------------------------------------------------------------------------
// Parsing CLUSTER INFO / CLUSTER NODES
// ---------------------------------------------------------------------------

/** `key:value` lines → object (numbers where numeric). */
function parseInfo(text) {
  const out = {};
  for (const line of String(text).split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0 || line.startsWith('#')) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1).trim();
    out[key] = /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return out;
}

/**
 * CLUSTER NODES text → [{ nodeId, host, port, busPort, flags: string[],
 * masterId (or null), linkState, slots: [[start, end], ...], myself }].
 * Importing/migrating markers (`[slot->-id]`) are skipped.
 */
function parseClusterNodes(text) {
  const nodes = [];
  for (const line of String(text).split(/\r?\n/)) {
    if (!line.trim()) continue;
    const [nodeId, addr, flagText, master, , , , linkState, ...slotFields] = line.trim().split(/\s+/);
    const m = /^(.*):(\d+)@(\d+)/.exec(addr);
    const flags = flagText.split(',');
    const slots = [];
    for (const field of slotFields) {
      if (field.startsWith('[')) continue;
      const [start, end = start] = field.split('-').map(Number);
      slots.push([start, end]);
    }
    slots.sort((a, b) => a[0] - b[0]);
    nodes.push({
      nodeId,
      host: m ? m[1] : '',
      port: m ? Number(m[2]) : 0,
      busPort: m ? Number(m[3]) : 0,
      flags,
      masterId: master === '-' ? null : master,
      linkState,
      slots,
      myself: flags.includes('myself'),
    });
  }
  return nodes;
}

function isFailed(node) {
  return node.flags.includes('fail') || node.flags.includes('noaddr');
}

function slotCount(slots) {
  return slots.reduce((n, [a, b]) => n + (b - a + 1), 0);
}

// ---------------------------------------------------------------------------
// The cluster handle
// ---------------------------------------------------------------------------

/** A running cluster; create with `startCluster()`. */
class RedisCluster {
  /** @private */
  constructor({ nodes, tls, password }) {
    /** The RedisServer handles, in start order. */
    this.nodes = nodes;
    this._tlsMaterial = tls;
    this._password = password;
    /** killed handle → { nodeId, slots, replicaIds } recorded by killPrimaryOf(). */
    this._killed = new Map();
  }

  /** The shared TLS material (same shape as a RedisServer handle's `tls`), or null. */
  get tls() {
    return this.nodes[0].tls;
  }

  /** One node's URL (redis:// or rediss://, with the password if any). */
  get seedUrl() {
    return this.seedUrls[0];
  }

  /** Every node's URL (first the live ones). */
  get seedUrls() {
    const live = this.nodes.filter((n) => n.alive);
    const dead = this.nodes.filter((n) => !n.alive);
    return [...live, ...dead].map((n) => n.url);
  }

  /** Ports of every node. */
  get ports() {
    return this.nodes.map((n) => n.port);
  }

  handleForPort(port) {
    return this.nodes.find((n) => n.port === port) ?? null;
  }

  /**
   * Sends commands pipelined to one node over a fresh connection; resolves
   * the replies (error replies as Error values, not rejections).
   * @param {import('./redis-server').RedisServer} handle
   * @param {...Array<string|number>} commands e.g. command(node, ['CLUSTER', 'INFO'])
   */
  commands(handle, ...commands) {
    const auth = this._password ? [this._password] : null;
    return sendCommands({ port: handle.port, tls: this._tlsMaterial, auth }, commands);
  }

  /** One command to one node; rejects on an error reply. */
  async command(handle, ...args) {
    const [reply] = await this.commands(handle, args);
    if (reply instanceof Error) throw reply;
    return reply;
  }

  /** Runs `fn(handle)` against the live nodes in turn until one succeeds. */
  async _askLiveNode(fn) {
    let lastError = new Error('no live cluster node');
    for (const handle of this.nodes) {
      if (!handle.alive) continue;
      try {
        return await fn(handle);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** CLUSTER NODES as seen by a live node, parsed, each with its `handle`. */
  async clusterNodes() {
    const text = await this._askLiveNode((h) => this.command(h, 'CLUSTER', 'NODES'));
    return parseClusterNodes(text).map((n) => ({ ...n, handle: this.handleForPort(n.port) }));
  }

  /**
   * The primaries a live node knows, not flagged as failed, sorted by first slot:
   * [{ handle, port, slots: [[start, end], ...], nodeId }].
   */
  async primaries() {
    const nodes = await this.clusterNodes();
    return nodes
      // A master without slots serves no data (e.g. a replica that gossip
      // still shows as master just after the cluster formed).
      .filter((n) => n.flags.includes('master') && !isFailed(n) && n.slots.length > 0)
      .sort((a, b) => (a.slots[0]?.[0] ?? Infinity) - (b.slots[0]?.[0] ?? Infinity))
      .map((n) => ({ handle: n.handle, port: n.port, slots: n.slots, nodeId: n.nodeId }));
  }

  /** CLUSTER KEYSLOT key. */
  async keySlot(key) {
    return this._askLiveNode((h) => this.command(h, 'CLUSTER', 'KEYSLOT', key));
  }

  /** The handle of the (non-failed) primary serving the key's slot. */
  async nodeForKey(key) {
    const slot = await this.keySlot(key);
    const owner = (await this.primaries()).find((p) => p.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no live primary serves slot ${slot} (key ${JSON.stringify(key)})`);
    return owner.handle;
  }

  /**
   * Map port → number of keys matching `pattern` on each primary
   * (DBSIZE for '*', SCAN ... MATCH otherwise).
   */
  async keysPerPrimary(pattern = '*') {
    const result = new Map();
    for (const { handle, port } of await this.primaries()) {
      if (pattern === '*') {
        result.set(port, await this.command(handle, 'DBSIZE'));
        continue;
      }
      let cursor = '0';
      let count = 0;
      do {
        const [next, keys] = await this.command(handle, 'SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        count += keys.length;
      } while (cursor !== '0');
      result.set(port, count);
    }
    return result;
  }

  /**
   * Asks every live node for CLUSTER INFO and CLUSTER NODES.
   * @returns {Promise<{ live: Array<{ handle, port, info: object|null, nodes: object[]|null, error: Error|null }>,
   *   dead: object[] }>}
   */
  async snapshot() {
    const liveHandles = this.nodes.filter((n) => n.alive);
    const live = await Promise.all(
      liveHandles.map(async (handle) => {
        try {
          const [info, nodes] = await this.commands(handle, ['CLUSTER', 'INFO'], ['CLUSTER', 'NODES']);
          if (info instanceof Error) throw info;
          if (nodes instanceof Error) throw nodes;
          return { handle, port: handle.port, info: parseInfo(info), nodes: parseClusterNodes(nodes), error: null };
        } catch (error) {
          return { handle, port: handle.port, info: null, nodes: null, error };
        }
      }),
    );
    return { live, dead: this.nodes.filter((n) => !n.alive) };
  }

  /**
   * The 'ok' state: every live node answers, says cluster_state:ok with all
   * 16384 slots assigned and ok, knows every node, and sees every slot served
   * by a live (not failed) primary.
   */
  isOk(snap) {
    if (snap.live.length === 0) return false;
    for (const n of snap.live) {
      if (!n.info) return false;
      const { info } = n;
      if (info.cluster_state !== 'ok') return false;
      if (info.cluster_slots_assigned !== TOTAL_SLOTS || info.cluster_slots_ok !== TOTAL_SLOTS) return false;
      if (info.cluster_known_nodes < this.nodes.length) return false;
      const served = n.nodes
        .filter((x) => x.flags.includes('master') && !isFailed(x) && !x.flags.includes('fail?'))
        .reduce((sum, x) => sum + slotCount(x.slots), 0);
      if (served !== TOTAL_SLOTS) return false;
    }
    return true;
  }

  /**
   * Polls snapshot() until `predicate(snapshot)` (may be async) is truthy, or
   * 'ok' (see isOk). Rejects after `timeoutMs` with the last snapshot's summary.
   * @returns the last snapshot
   */
  async waitForState(predicate = 'ok', timeoutMs = FORM_TIMEOUT_MS) {
    const test = predicate === 'ok' ? (s) => this.isOk(s) : predicate;
    if (typeof test !== 'function') throw new TypeError(`waitForState: predicate must be 'ok' or a function`);
    let snap;
    const summary = () => snap.live
      .map((n) => (n.info
        ? `${n.port}: ${n.info.cluster_state} assigned=${n.info.cluster_slots_assigned} ok=${n.info.cluster_slots_ok} known=${n.info.cluster_known_nodes}`
        : `${n.port}: ${n.error && n.error.message}`))
      .join('; ');
    await pollUntil(async () => {
      snap = await this.snapshot();
      return test(snap);
    }, { timeoutMs, intervalMs: POLL_INTERVAL_MS, what: () => `the expected cluster state (${summary()})` });
    return snap;
  }

  /**
   * Resolves once at least `expected` replicas of slot-serving primaries appear
   * in CLUSTER NODES and
   * every replica reports master_link_status:up (its initial sync is done).
   * Right after `--cluster create` a node's view can still show a fresh
   * replica as a slot-less master: counting them keeps that from passing.
   */
  async waitForReplicasInSync(timeoutMs = FORM_TIMEOUT_MS, expected = 0) {
    await pollUntil(async () => {
      const nodes = await this.clusterNodes();
      const replicas = nodes.filter((n) => n.flags.includes('slave') && !isFailed(n) && n.handle && n.handle.alive);
      const primaries = new Set(nodes.filter((n) => n.flags.includes('master') && n.slots.length > 0).map((n) => n.nodeId));
      if (replicas.filter((r) => primaries.has(r.masterId)).length < expected) return false;
      const states = await Promise.all(
        replicas.map((r) => this.command(r.handle, 'INFO', 'replication').then(parseInfo, () => ({}))),
      );
      return states.every((s) => s.master_link_status === 'up');
    }, { timeoutMs, intervalMs: POLL_INTERVAL_MS, what: `${expected} replicas, every one in sync` });
  }

  /**
   * Hands the slot of `key`, which must hold no key, to another primary the
   * way a resharding tool does (IMPORTING on the destination, MIGRATING on
   * the source, then NODE on the destination, the source and the others),
   * and resolves once every live node reports the new owner. A client that
   * read the slot map before then still sends the slot to the source, which
   * answers MOVED. Resolves { slot, from, to } (handles).
   */
  async moveEmptySlotOf(key) {
    const slot = await this.keySlot(key);
    const primaries = await this.primaries();
    const source = primaries.find((p) => p.slots.some(([a, b]) => slot >= a && slot <= b));
    const destination = primaries.find((p) => p !== source);
    if (!source || !destination) throw new Error(`moveEmptySlotOf: no source or destination for slot ${slot}`);
    const held = await this.command(source.handle, 'CLUSTER', 'COUNTKEYSINSLOT', slot);
    if (held !== 0) throw new Error(`moveEmptySlotOf: slot ${slot} (key ${JSON.stringify(key)}) holds ${held} keys`);
    await this.command(destination.handle, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.nodeId);
    await this.command(source.handle, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', destination.nodeId);
    for (const primary of [destination, source, ...primaries.filter((p) => p !== source && p !== destination)]) {
      await this.command(primary.handle, 'CLUSTER', 'SETSLOT', slot, 'NODE', destination.nodeId);
    }
    await pollUntil(async () => {
      const views = await Promise.all(
        this.nodes.filter((n) => n.alive).map((n) => this.command(n, 'CLUSTER', 'NODES').then(parseClusterNodes)),
      );
      return views.every((nodes) => nodes.some((n) => n.nodeId === destination.nodeId
        && n.slots.some(([a, b]) => slot >= a && slot <= b)));
    }, { timeoutMs: FORM_TIMEOUT_MS, intervalMs: POLL_INTERVAL_MS, what: `every node to see slot ${slot} on ${destination.port}` });
    return { slot, from: source.handle, to: destination.handle };
  }

  /**
   * SIGKILLs the primary serving `key`'s slot. Resolves { killed, replica }:
   * the killed handle and the handle of (one of) its replicas.
   */
  async killPrimaryOf(key) {
    const slot = await this.keySlot(key);
    const nodes = await this.clusterNodes();
    const primary = nodes.find((n) => n.flags.includes('master') && !isFailed(n)
      && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!primary || !primary.handle) throw new Error(`no live primary serves slot ${slot}`);
    const replicas = nodes.filter((n) => n.masterId === primary.nodeId && !isFailed(n) && n.handle);
    this._killed.set(primary.handle, {
      nodeId: primary.nodeId,
      slots: primary.slots,
      replicaIds: replicas.map((r) => r.nodeId),
    });
    await primary.handle.kill();
    return { killed: primary.handle, replica: replicas[0] ? replicas[0].handle : null };
  }

  /**
   * Resolves once the killed node is flagged as failed, one of its former
   * replicas (when known from killPrimaryOf) is a primary serving all its
   * former slots, and the cluster is 'ok' again on every live node.
   * @returns {Promise<{ promoted: RedisServer|null, elapsedMs: number }>}
   */
  async waitForFailover(killedHandle, timeoutMs = 15_000) {
    const started = Date.now();
    let record = this._killed.get(killedHandle);
    if (!record) {
      const self = (await this.clusterNodes()).find((n) => n.port === killedHandle.port);
      if (!self) throw new Error(`port ${killedHandle.port} is not a known cluster node`);
      record = { nodeId: self.nodeId, slots: null, replicaIds: null };
    }
    let promoted = null;
    await this.waitForState((snap) => {
      if (!this.isOk(snap)) return false;
      for (const n of snap.live) {
        const old = n.nodes.find((x) => x.nodeId === record.nodeId);
        if (old && !old.flags.includes('fail') && old.slots.length > 0) return false;
        if (record.slots) {
          // Every former slot is served by a former replica, now a primary.
          for (const [a] of record.slots) {
            const owner = n.nodes.find((x) => x.flags.includes('master') && !isFailed(x)
              && x.slots.some(([s, e]) => a >= s && a <= e));
            if (!owner || (record.replicaIds.length && !record.replicaIds.includes(owner.nodeId))) return false;
            promoted = this.handleForPort(owner.port);
          }
        }
      }
      return true;
    }, timeoutMs);
    return { promoted, elapsedMs: Date.now() - started };
  }

  /** Stops every node (graceful, SIGKILL after 3 s). */
  async stop() {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}

// ---------------------------------------------------------------------------
// Starting a cluster
// ---------------------------------------------------------------------------

/** A free port that no other node of this cluster has picked yet. */
async function freshPort(taken) {
  const port = await freePort({ avoid: taken });
  taken.add(port);
  return port;
}

async function startNode({ tls, certs, password }, taken) {
  for (let attempt = 1; ; attempt++) {
    const port = await freshPort(taken);
    const busPort = await freshPort(taken);
    const extraArgs = [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', '1000',
      '--cluster-port', String(busPort),
      '--cluster-replica-validity-factor', '0',
      '--appendonly', 'no',
      '--save', '',
      '--repl-diskless-sync', 'yes',
      '--repl-diskless-sync-delay', '0',
    ];
    if (tls) {
      extraArgs.push(
        '--tls-cluster', 'yes',
        '--tls-replication', 'yes',
        '--tls-client-cert-file', certs.clientCertPath,
        '--tls-client-key-file', certs.clientKeyPath,
      );
    }
    if (password) extraArgs.push('--masterauth', password);
    try {
      return await startRedis({ port, tls: tls || false, certs: certs ?? undefined, password, extraArgs });
    } catch (err) {
      // The client or bus port was grabbed between freePort() and the bind.
      if (err.code !== 'EADDRINUSE' || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

function runCli(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\nredis-cli ${args.join(' ')}\n${stdout}\n${stderr}`;
        reject(err);
      } else {
        resolve(stdout);
      }
    });
  });
}

/**
 * Starts primaries × (1 + replicasPerPrimary) nodes, forms the cluster with
 * `redis-cli --cluster create`, and resolves once it is 'ok' everywhere and
 * every replica is in sync.
 * @param {object} [opts]
 * @param {boolean | { requireClientCert?: boolean }} [opts.tls] TLS for clients, the bus and
 *   replication; one CA (and one server + one client certificate) for all nodes
 * @param {number} [opts.primaries] default 3 (redis-cli needs at least 3)
 * @param {number} [opts.replicasPerPrimary] default 1
 * @param {string} [opts.password] requirepass + masterauth on every node
 * @returns {Promise<RedisCluster>}
 */
async function startCluster({ tls = false, primaries = 3, replicasPerPrimary = 1, password } = {}) {
  if (primaries < 3) throw new Error('redis-cli --cluster create needs at least 3 primaries');
  const count = primaries * (1 + replicasPerPrimary);
  const t0 = Date.now();
  const timings = {};
  const certs = tls ? generateCerts() : null;
  const taken = new Set();
  const settled = await Promise.allSettled(
    Array.from({ length: count }, () => startNode({ tls, certs, password }, taken)),
  );
  const nodes = settled.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failure = settled.find((r) => r.status === 'rejected');
  if (failure) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw failure.reason;
  }
  timings.nodesMs = Date.now() - t0;
  const cluster = new RedisCluster({ nodes, tls: certs, password });
  try {
    const cliArgs = ['--cluster', 'create', ...nodes.map((n) => `${HOST}:${n.port}`),
      '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes'];
    if (tls) cliArgs.push('--tls', '--cacert', certs.caPath, '--cert', certs.clientCertPath, '--key', certs.clientKeyPath);
    if (password) cliArgs.push('-a', password, '--no-auth-warning');
    await runCli(cliArgs, FORM_TIMEOUT_MS);
    timings.createMs = Date.now() - t0;
    await cluster.waitForState('ok', FORM_TIMEOUT_MS);
    timings.okMs = Date.now() - t0;
    await cluster.waitForReplicasInSync(FORM_TIMEOUT_MS, primaries * replicasPerPrimary);
    timings.syncedMs = Date.now() - t0;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  /** Cumulative ms since the call: nodes up, redis-cli done, 'ok', replicas synced. */
  cluster.timings = timings;
  return cluster;
}

module.exports = { startCluster, RedisCluster, parseClusterNodes, parseInfo };
