'use strict';

// What each call costs one Redis server: the commands it runs (INFO
// commandstats, which counts the commands a script calls too) and the reads
// the server makes from its clients (INFO stats total_reads_processed: one
// per round trip here). The benchmark rests on these: `set` is one script
// (a record up to 8 KB) or one MULTI/EXEC round trip (larger: its bytes
// never pass through Lua), `get` one GET, `delete` one script, `listByUser`
// two round trips, and calls made together share their reads. A change of
// code shape must not add a step unnoticed.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore } = require('..');
const { startRedis, conversation, pollUntil } = require('../test-support');

let server;
let store;
/** The reads that measuring costs by itself (redis-cli's own commands). */
let measuringReads = 0;

before(async () => {
  server = await startRedis();
  // No heartbeat PING during the test: only the calls measured reach Redis.
  store = new RedisStore({ url: server.url, allowPlaintext: true, heartbeatIntervalMs: 3_600_000, logger: null });
  await store.ping();
  measuringReads = (await serverStats(async () => {})).reads;
});

after(async () => {
  await store?.close();
  await server?.stop();
});

/** The commands run and the reads made by the server while `call` ran. */
async function serverStats(call) {
  await server.cli('CONFIG', 'RESETSTAT');
  await call();
  const info = await server.cli('INFO', 'stats', 'commandstats');
  const commands = {};
  for (const [, name, calls] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    // CONFIG RESETSTAT itself is counted after the reset.
    if (name !== 'config|resetstat') commands[name] = Number(calls);
  }
  const stat = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1]);
  // Every key a command looked up: one per MGET key, one for the index.
  const keysRead = stat('keyspace_hits') + stat('keyspace_misses');
  return { commands, reads: stat('total_reads_processed'), keysRead };
}

/** The commands and round trips `call` costs the server. */
async function costOf(call) {
  const { commands, reads } = await serverStats(call);
  return { commands, roundTrips: reads - measuringReads };
}

// userId first, before any array or object: the owner lookup inside the
// scripts then settles from the record's first kilobyte (GETRANGE) alone.
const record = (id, userId) => ({ userId, ...conversation(id, userId) });

describe('the cost of each call on one server', () => {
  it('set of a record up to 8 KB: one script, one round trip', async () => {
    assert.deepEqual(await costOf(() => store.set('w1', record('w1', 'u1'))), {
      // GETRANGE and EXISTS: the owner check inside the script, on a new record.
      commands: { evalsha: 1, getrange: 1, exists: 1, set: 1, zadd: 1, expire: 1 },
      roundTrips: 1,
    });
  });

  it('set of a larger record: one MULTI/EXEC round trip, the record outside Lua', async () => {
    const large = { ...record('w2', 'u1'), history: [{ role: 'user', content: 'x'.repeat(9000) }] };
    assert.deepEqual(await costOf(() => store.set('w2', large)), {
      commands: { multi: 1, eval: 1, getrange: 1, exists: 1, set: 1, zadd: 1, expire: 1, exec: 1 },
      roundTrips: 1,
    });
    await store.delete('w2');
  });

  it('get: one GET', async () => {
    assert.deepEqual(await costOf(() => store.get('w1')), { commands: { get: 1 }, roundTrips: 1 });
  });

  it('listByUser: a window of the index, then one MGET', async () => {
    assert.deepEqual(await costOf(() => store.listByUser('u1')), {
      commands: { zrevrange: 1, mget: 1 },
      roundTrips: 2,
    });
  });

  describe('listByUser of a user with more conversations than the page', () => {
    const ids = Array.from({ length: 30 }, (_, i) => `many-${String(i).padStart(2, '0')}`);
    const iso = (minute) => new Date(Date.UTC(2024, 0, 1, 0, minute)).toISOString();

    before(async () => {
      // many-29 is the newest.
      for (const [i, id] of ids.entries()) await store.set(id, { ...record(id, 'u9'), updatedAt: iso(i) });
    });

    after(async () => {
      for (const id of ids) await store.delete(id);
    });

    it("reads the index window and only the page's records", async () => {
      let page;
      const { commands, keysRead } = await serverStats(async () => {
        page = await store.listByUser('u9', { limit: 10 });
      });
      assert.deepEqual(page.map((c) => c.externalId), ids.slice(20).reverse());
      assert.deepEqual(commands, { zrevrange: 1, mget: 1 });
      assert.equal(keysRead, 1 + 10, 'the index, then the 10 records of the page');
    });

    it('reads replacements for stale entries only, in one more MGET', async () => {
      const gone = ['many-28', 'many-25', 'many-21'];
      for (const id of gone) await server.cli('DEL', `conv:${id}`); // their index entries stay, stale
      let page;
      const { commands } = await serverStats(async () => {
        page = await store.listByUser('u9', { limit: 10 });
      });
      const expected = ids.filter((id) => !gone.includes(id)).slice(-10).reverse();
      assert.deepEqual(page.map((c) => c.externalId), expected);
      // The pruning that follows in the background may count its own commands.
      assert.deepEqual({ zrevrange: commands.zrevrange, mget: commands.mget }, { zrevrange: 1, mget: 2 });
      await pollUntil(async () => (await server.cli('ZCARD', 'user:u9:conversations')) === '27', {
        what: 'the stale entries pruned',
      });
    });
  });

  it('delete: one script', async () => {
    assert.deepEqual(await costOf(() => store.delete('w1')), {
      commands: { evalsha: 1, getrange: 1, zrem: 1, del: 1 },
      roundTrips: 1,
    });
  });

  // Calls run in one task (src/driver.rs), so that the commands of the calls
  // a batch of replies starts go out in one write, and Redis reads many per
  // read. Measured on 64 loops of `get` each: one read per 18 to 26 calls;
  // with a task per call, a write went out per command and Redis read 2 to
  // 7 per read.
  it('64 calls at a time: Redis reads their commands many per read', async () => {
    await store.set('w4', record('w4', 'u1'));
    const calls = 4000;
    let left = calls;
    const loop = async () => {
      while (left-- > 0) await store.get('w4');
    };
    const { roundTrips } = await costOf(() => Promise.all(Array.from({ length: 64 }, loop)));
    assert.ok(roundTrips / calls <= 0.12, `${roundTrips} reads for ${calls} calls`);
    await store.delete('w4');
  });

  it('after SCRIPT FLUSH, a script call reloads its script and goes through', async () => {
    await server.cli('SCRIPT', 'FLUSH');
    const { commands } = await costOf(() => store.set('w3', record('w3', 'u1')));
    // The EVALSHA that met NOSCRIPT wrote nothing; the one after the reload wrote it all.
    assert.deepEqual(commands, { evalsha: 2, 'script|load': 1, getrange: 1, exists: 1, set: 1, zadd: 1, expire: 1 });
    assert.equal(JSON.parse(await server.cli('GET', 'conv:w3')).externalId, 'w3');
    assert.notEqual(await server.cli('ZSCORE', 'user:u1:conversations', 'w3'), '');
    await server.cli('SCRIPT', 'FLUSH');
    await store.delete('w3');
    assert.equal(await server.cli('EXISTS', 'conv:w3'), '0');
    assert.equal(await server.cli('ZSCORE', 'user:u1:conversations', 'w3'), '');
  });
});
