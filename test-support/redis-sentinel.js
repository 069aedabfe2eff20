'use strict';

// A Redis Sentinel set on loopback: one primary, one replica and three
// `redis-server --sentinel` processes watching them, with a short
// down-after-milliseconds and failover-timeout so that a failover takes a few
// seconds. Built on startRedis (each process is a RedisServer handle: kill,
// stop, cli), sendCommands and pollUntil.
//
//   const { startSentinels } = require('../test-support');
//   const set = await startSentinels();
//   new RedisStore({ sentinels: set.sentinelUrls, sentinelName: set.name, allowPlaintext: true });
//   await set.failover();            // SENTINEL FAILOVER, resolves on the new primary
//   await set.stop();

const { startRedis } = require('./redis-server');
const { sendCommands } = require('./resp');
const { pollUntil } = require('./poll');
const { LOOPBACK } = require('./ports');

const DEFAULT_NAME = 'mymaster';

/** A flat [k1, v1, k2, v2, ...] reply as an object. */
function fields(reply) {
  const out = {};
  for (let i = 0; i + 1 < reply.length; i += 2) out[reply[i]] = reply[i + 1];
  return out;
}

/** `role:master` / `role:slave`, from INFO replication text. */
function infoField(info, name) {
  return new RegExp(`^${name}:(.*)\\r?$`, 'm').exec(info)?.[1]?.trim();
}

class RedisSentinelSet {
  /** @private */
  constructor(name, servers, sentinels, timing) {
    this.name = name;
    /** The data servers (RedisServer), in start order: first was the primary. */
    this.servers = servers;
    /** The sentinels (RedisServer handles started with --sentinel). */
    this.sentinels = sentinels;
    this.downAfterMs = timing.downAfterMs;
    this.failoverTimeoutMs = timing.failoverTimeoutMs;
    /** The data servers' password, or undefined. */
    this.password = timing.password;
  }

  /** redis:// URLs of every sentinel, dead or alive. */
  get sentinelUrls() {
    return this.sentinels.map((sentinel) => `redis://${LOOPBACK}:${sentinel.port}`);
  }

  /** One command to one live sentinel after another; the first answer. */
  async ask(command) {
    let last;
    for (const sentinel of this.sentinels.filter((s) => s.alive)) {
      try {
        const [reply] = await sendCommands({ port: sentinel.port }, [command], 2_000);
        if (!(reply instanceof Error)) return reply;
        last = reply;
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no sentinel answered ${command.join(' ')}: ${last?.message ?? 'none alive'}`);
  }

  /** The server the sentinels name as the primary now. */
  async primary() {
    const [, port] = await this.ask(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name]);
    const server = this.servers.find((s) => s.port === Number(port));
    if (!server) throw new Error(`the sentinels name port ${port}, which is not one of this set's servers`);
    return server;
  }

  /** How sendCommands reaches a data server. */
  target(server) {
    return { port: server.port, auth: this.password ? [this.password] : null };
  }

  /** The data server's own view: 'master' or 'slave'. */
  async role(server) {
    const [info] = await sendCommands(this.target(server), [['INFO', 'replication']], 2_000);
    return infoField(String(info), 'role');
  }

  /**
   * Waits until every live sentinel names the same primary, that server says
   * it is a master, every other live data server replicates it with the link
   * up, and (unless `quick`) each live sentinel sees the others (which an
   * election after a primary's death needs; sentinels find each other within
   * about 2 s) and the replicas. Resolves the primary.
   */
  async settled({ timeoutMs = 20_000, quick = false } = {}) {
    const liveSentinels = () => this.sentinels.filter((s) => s.alive);
    const liveServers = () => this.servers.filter((s) => s.alive);
    return pollUntil(
      async () => {
        const views = await Promise.all(
          liveSentinels().map(async (sentinel) => {
            const [master, replicas] = await sendCommands(
              { port: sentinel.port },
              [['SENTINEL', 'MASTER', this.name], ['SENTINEL', 'REPLICAS', this.name]],
              2_000,
            );
            if (master instanceof Error || replicas instanceof Error) return null;
            return { master: fields(master), replicas: replicas.map(fields) };
          }),
        );
        if (views.some((view) => !view)) return false;
        const ports = new Set(views.map((view) => view.master.port));
        if (ports.size !== 1) return false;
        const primary = this.servers.find((s) => s.port === Number([...ports][0]));
        if (!primary?.alive || (await this.role(primary)) !== 'master') return false;
        if (views.some((view) => !/^master$/.test(view.master.flags))) return false;
        if (quick) return primary;
        const others = liveSentinels().length - 1;
        if (views.some((view) => Number(view.master['num-other-sentinels']) < others)) return false;
        for (const server of liveServers().filter((s) => s !== primary)) {
          const [info] = await sendCommands(this.target(server), [['INFO', 'replication']], 2_000);
          if (infoField(String(info), 'master_port') !== String(primary.port)) return false;
          if (infoField(String(info), 'master_link_status') !== 'up') return false;
          const known = (view) =>
            view.replicas.some((r) => Number(r.port) === server.port && !/s_down|disconnected/.test(r.flags));
          if (!views.every(known)) return false;
        }
        return primary;
      },
      { timeoutMs, intervalMs: 100, retryErrors: true, what: `sentinel set ${this.name} to settle` },
    );
  }

  /**
   * Waits until the sentinels name a primary other than `previous` and that
   * server answers ROLE as a master; resolves it.
   */
  async promotedFrom(previous, { timeoutMs = 30_000 } = {}) {
    return pollUntil(
      async () => {
        const primary = await this.primary();
        return primary !== previous && (await this.role(primary)) === 'master' ? primary : false;
      },
      { timeoutMs, intervalMs: 50, retryErrors: true, what: `a new primary of ${this.name} (other than port ${previous.port})` },
    );
  }

  /** `SENTINEL FAILOVER <name>`; resolves the old primary at once (see promotedFrom). */
  async failover() {
    const old = await this.primary();
    const reply = await this.ask(['SENTINEL', 'FAILOVER', this.name]);
    if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER answered ${reply}`);
    return old;
  }

  async stop() {
    await Promise.all([...this.sentinels, ...this.servers].map((p) => p.stop()));
  }
}

/**
 * Starts a primary, a replica of it, and three sentinels (quorum 2) on free
 * loopback ports, and waits until the set has settled (sentinels see each
 * other and the replica; with `quick`, only until they name the primary).
 * @param {object} [opts]
 * @param {boolean} [opts.quick] default false
 * @param {string} [opts.password] requirepass (and masterauth) of the data servers; the
 *   sentinels themselves need none
 * @param {string} [opts.name] the master group name, default 'mymaster'
 * @param {number} [opts.downAfterMs] default 1000
 * @param {number} [opts.failoverTimeoutMs] default 3000
 * @returns {Promise<RedisSentinelSet>}
 */
async function startSentinels({ name = DEFAULT_NAME, downAfterMs = 1000, failoverTimeoutMs = 3000, quick = false, password } = {}) {
  const started = [];
  try {
    const auth = password ? { password, extraArgs: ['--masterauth', password] } : {};
    const primary = await startRedis(auth);
    started.push(primary);
    const replica = await startRedis({ ...auth, extraArgs: [...(auth.extraArgs ?? []), '--replicaof', LOOPBACK, String(primary.port)] });
    started.push(replica);
    const configText = [
      `sentinel monitor ${name} ${LOOPBACK} ${primary.port} 2`,
      ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n');
    const sentinels = await Promise.all(
      [0, 1, 2].map(() => startRedis({ configText, extraArgs: ['--sentinel'] })),
    );
    started.push(...sentinels);
    const set = new RedisSentinelSet(name, [primary, replica], sentinels, { downAfterMs, failoverTimeoutMs, password });
    await set.settled({ quick });
    return set;
  } catch (err) {
    await Promise.all(started.map((p) => p.stop()));
    throw err;
  }
}

module.exports = { startSentinels, RedisSentinelSet };
