'use strict';

// A seeded, concurrent random workload (set with random users and ids, owner
// changes, short TTLs, deletes, listings), then the store's invariants:
//
//   Redis layout (checked on an atomic snapshot of every key with the prefix):
//   - every index member's record is gone (expired/deleted) or is owned by
//     that index's user;
//   - every existing record's id is in its own user's index, scored by its
//     updatedAt, and in no other user's index;
//   - every record and index has a TTL.
//   Through the API (both stores):
//   - a listing only ever holds the user's own records, newest first, at most
//     `limit` of them;
//   - each live record is listed exactly once, under its owner.
//
// With short TTLs one thing is inherent to the layout: a record that expires
// leaves its id in its owner's index (the index outlives its records), and if
// the id is later written for another user, that stale entry names a record
// the old user no longer owns. The store cannot see it at write time; it must
// never list it (listByUser prunes it). The mixed-TTL check allows exactly
// those entries: the last write of the id for that user was a short-TTL write
// that could have expired before the id's next operation. Operations on one id
// are serialised there (other ids still run 32 at a time) so that "next
// operation" is well defined.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore, MemoryStore } = require('..');
const { startRedis, ioredisClient, seededRandom, parseKey, pollUntil } = require('../test-support');

const OPS = 3000;
const CONCURRENCY = 32;
const USERS = ['u0', 'u1', 'u2', 'u3'];
const ID_COUNT = 40;
const SHORT_TTL_MS = 1000;
const BASE_TIME = Date.parse('2024-01-01T00:00:00.000Z');

let srv;
let redis;
const stores = [];
let prefixCounter = 0;

before(async () => {
  srv = await startRedis();
  redis = ioredisClient(srv.url);
  await redis.connect();
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  if (redis) redis.disconnect();
  if (srv) await srv.stop();
});

/**
 * The operations of a workload. Each id has a usual owner that sets keep
 * most of the time, so that both stable records and owner changes occur.
 */
function workload(seed, count, { shortShare = 0, listShare = 0.3 } = {}) {
  const rng = seededRandom(seed);
  const usualOwner = new Map();
  const ops = [];
  for (let n = 0; n < count; n++) {
    const roll = rng();
    const id = `c${rng.int(ID_COUNT)}`;
    const setShare = (1 - listShare) * 0.8;
    if (roll < setShare) {
      if (!usualOwner.has(id) || rng() < 0.3) usualOwner.set(id, rng.pick(USERS));
      const user = usualOwner.get(id);
      const record = {
        externalId: id,
        userId: user,
        tenantId: 'tenant-1',
        history: [{ role: 'user', content: `op ${n}` }],
        status: 'active',
        op: n,
      };
      if (rng() >= 0.1) record.updatedAt = new Date(BASE_TIME + rng.int(1e9)).toISOString();
      ops.push({ kind: 'set', id, user, record, short: rng() < shortShare });
    } else if (roll < 1 - listShare) {
      ops.push({ kind: 'delete', id });
    } else {
      ops.push({ kind: 'list', user: rng.pick(USERS), limit: 1 + rng.int(60) });
    }
  }
  return ops;
}

/** Runs `tasks` (functions returning promises) with at most `concurrency` in flight. */
async function pool(tasks, concurrency) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      await task();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const scoreOf = (record) => (record.updatedAt === undefined ? Infinity : Date.parse(record.updatedAt));

/** What every listing must satisfy on its own. */
function checkListing(user, limit, listed, problems, where) {
  if (listed.length > limit) problems.push(`${where}: ${listed.length} records for limit ${limit}`);
  const seen = new Set();
  for (const [i, record] of listed.entries()) {
    if (record.userId !== user) {
      problems.push(`${where}: listByUser(${user}) returned ${record.externalId} owned by ${record.userId}`);
    }
    if (seen.has(record.externalId)) problems.push(`${where}: ${record.externalId} listed twice for ${user}`);
    seen.add(record.externalId);
    if (i > 0 && scoreOf(record) !== Infinity && scoreOf(listed[i - 1]) < scoreOf(record)) {
      problems.push(`${where}: listByUser(${user}) not newest first at ${record.externalId}`);
    }
  }
}

/**
 * Runs the operations against `stores` ({ long, short }) with the given
 * concurrency. With `serialiseIds`, operations on one id never overlap, and
 * each id's history (kind, user, short, start and end time) is recorded.
 */
async function run(ops, { long, short }, { serialiseIds = false } = {}) {
  const problems = [];
  const history = new Map();
  const locks = new Map();
  const counts = { set: 0, shortSet: 0, delete: 0, list: 0 };

  const exec = async (op) => {
    const entry = { kind: op.kind, user: op.user, short: Boolean(op.short), start: Date.now(), end: 0 };
    if (op.kind === 'set') {
      await (op.short ? short : long).set(op.id, op.record);
      counts.set++;
      if (op.short) counts.shortSet++;
    } else if (op.kind === 'delete') {
      await long.delete(op.id);
      counts.delete++;
    } else {
      const listed = await long.listByUser(op.user, { limit: op.limit });
      checkListing(op.user, op.limit, listed, problems, 'during the workload');
      counts.list++;
      return;
    }
    entry.end = Date.now();
    if (!history.has(op.id)) history.set(op.id, []);
    history.get(op.id).push(entry);
  };

  const tasks = ops.map((op) => () => {
    if (!serialiseIds || op.kind === 'list') return exec(op);
    const previous = locks.get(op.id) ?? Promise.resolve();
    const current = previous.then(() => exec(op));
    locks.set(op.id, current.catch(() => {}));
    return current;
  });
  await pool(tasks, CONCURRENCY);
  return { problems, history, counts };
}

/** Every key under `prefix`, read in one atomic step (no expiry in between). */
async function snapshot(prefix) {
  const rows = await redis.eval(
    `
    local out = {}
    for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
      local kind = redis.call('TYPE', key).ok
      local ttl = redis.call('PTTL', key)
      if kind == 'string' then
        out[#out + 1] = { key, kind, ttl, redis.call('GET', key) }
      elseif kind == 'zset' then
        out[#out + 1] = { key, kind, ttl, redis.call('ZRANGE', key, 0, -1, 'WITHSCORES') }
      else
        out[#out + 1] = { key, kind, ttl, false }
      end
    end
    return out
    `,
    0,
    prefix,
  );
  const records = new Map(); // id -> { record, ttl }
  const indexes = new Map(); // user -> Map(id -> score)
  const other = [];
  for (const [key, kind, ttl, value] of rows) {
    const named = parseKey(key, prefix);
    if (kind === 'string' && named?.kind === 'record') {
      records.set(named.id, { record: JSON.parse(value), ttl });
    } else if (kind === 'zset' && named?.kind === 'index') {
      const members = new Map();
      for (let i = 0; i < value.length; i += 2) members.set(value[i], Number(value[i + 1]));
      indexes.set(named.userId, { members, ttl });
    } else {
      other.push(`${key} (${kind})`);
    }
  }
  return { records, indexes, other };
}

/**
 * The layout invariants on a snapshot. `tolerated(user, id)` says whether a
 * foreign entry (id in user's index, record owned by someone else) is one
 * the layout cannot avoid (see the top of the file).
 */
function checkLayout({ records, indexes, other }, tolerated = () => false) {
  const problems = [];
  if (other.length) problems.push(`unexpected keys: ${other.join(', ')}`);
  for (const [user, { members, ttl }] of indexes) {
    if (!(ttl > 0)) problems.push(`index of ${user} has no TTL (${ttl})`);
    for (const id of members.keys()) {
      const stored = records.get(id);
      if (stored && stored.record.userId !== user && !tolerated(user, id)) {
        problems.push(`index of ${user} holds ${id}, whose record belongs to ${stored.record.userId}`);
      }
    }
  }
  for (const [id, { record, ttl }] of records) {
    if (!(ttl > 0)) problems.push(`record ${id} has no TTL (${ttl})`);
    const own = indexes.get(record.userId);
    if (!own || !own.members.has(id)) {
      problems.push(`record ${id} (owner ${record.userId}) is missing from its owner's index`);
    } else if (record.updatedAt !== undefined && own.members.get(id) !== Date.parse(record.updatedAt)) {
      problems.push(`record ${id}: index score ${own.members.get(id)} is not its updatedAt ${record.updatedAt}`);
    }
  }
  return problems;
}

/**
 * The API-level invariants: list every user (all pages), then read every id.
 * Records only expire after the workload, never come back, so a record live
 * at the later get() was live during the listings and must be in its
 * owner's listing, exactly once.
 */
async function checkThroughApi(store) {
  const problems = [];
  const listedUnder = new Map();
  const listedRecord = new Map();
  for (const user of USERS) {
    const listed = await store.listByUser(user, { limit: 1000 });
    checkListing(user, 1000, listed, problems, 'after the workload');
    for (const record of listed) {
      if (listedUnder.has(record.externalId)) {
        problems.push(`${record.externalId} listed under ${listedUnder.get(record.externalId)} and ${user}`);
      }
      listedUnder.set(record.externalId, user);
      listedRecord.set(record.externalId, record);
    }
  }
  let live = 0;
  for (let n = 0; n < ID_COUNT; n++) {
    const id = `c${n}`;
    const record = await store.get(id);
    if (record === undefined) continue;
    live++;
    if (listedUnder.get(id) !== record.userId) {
      problems.push(`live record ${id} (owner ${record.userId}) listed under ${listedUnder.get(id) ?? 'nobody'}`);
    } else {
      assert.deepEqual(listedRecord.get(id), record, `listing and get agree on ${id}`);
    }
  }
  return { problems, live };
}

/** The expected listing of each user from a snapshot: owned records, ZREVRANGE order. */
function expectedListings({ records, indexes }) {
  const expected = new Map(USERS.map((user) => [user, []]));
  for (const [id, { record }] of records) {
    const score = indexes.get(record.userId)?.members.get(id);
    expected.get(record.userId)?.push({ id, score });
  }
  for (const list of expected.values()) {
    list.sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }
  return new Map([...expected].map(([user, list]) => [user, list.map((e) => e.id)]));
}

function redisStores(extra = {}) {
  const keyPrefix = `inv${++prefixCounter}:`;
  const options = { url: srv.url, allowPlaintext: true, keyPrefix, logger: null, ...extra };
  const long = new RedisStore(options);
  const short = new RedisStore({ ...options, ttlSeconds: SHORT_TTL_MS / 1000 });
  stores.push(long, short);
  return { long, short, keyPrefix };
}

/** Waits until every record whose last write was short-lived has expired. */
async function shortRecordsExpired(store, history) {
  const shortLived = [...history].filter(([, ops]) => ops.at(-1).kind === 'set' && ops.at(-1).short).map(([id]) => id);
  await pollUntil(
    async () => (await Promise.all(shortLived.map((id) => store.get(id)))).every((r) => r === undefined),
    { timeoutMs: SHORT_TTL_MS + 3000, what: `${shortLived.length} short-lived records to expire` },
  );
  return shortLived.length;
}

/**
 * The mixed-TTL tolerance: the id's last write for `user` was short-lived
 * and its next operation ended late enough that the record could have expired
 * first (so nothing could take the id out of that user's index).
 */
function expiredStaleEntry(histories) {
  return (user, id) => {
    const ops = histories.flatMap((h) => h.get(id) ?? []);
    let last = -1;
    for (const [i, op] of ops.entries()) if (op.kind === 'set' && op.user === user) last = i;
    if (last < 0 || !ops[last].short) return false;
    const next = ops[last + 1];
    return next === undefined || next.end + 5 >= ops[last].start + SHORT_TTL_MS;
  };
}

describe('invariants under a concurrent random workload', () => {
  it('RedisStore: 3000 operations, 32 at a time: the layout and the listings stay consistent', async () => {
    const { long, short, keyPrefix } = redisStores();
    const ops = workload(0xc0ffee, OPS);
    const { problems, counts } = await run(ops, { long, short });
    assert.ok(counts.set > 1000 && counts.delete > 300 && counts.list > 600, JSON.stringify(counts));
    assert.deepEqual(problems, []);

    const snap = await snapshot(keyPrefix);
    assert.ok(snap.records.size > 10, `only ${snap.records.size} records left`);
    assert.deepEqual(checkLayout(snap), []);

    // Listings are exactly what the layout says, in ZREVRANGE order.
    const expected = expectedListings(snap);
    for (const user of USERS) {
      const listed = await long.listByUser(user, { limit: 1000 });
      assert.deepEqual(listed.map((r) => r.externalId), expected.get(user), `listing of ${user}`);
    }
    const api = await checkThroughApi(long);
    assert.deepEqual(api.problems, []);
    assert.equal(api.live, snap.records.size);
  });

  it('RedisStore with a short-TTL writer on the same keys: invariants hold across expiry', async () => {
    const { long, short, keyPrefix } = redisStores();
    // Two waves, and between them every short-lived record expires, so that
    // the second wave writes ids whose old index entries outlived them. The
    // second wave only writes (a listing prunes the foreign entries it finds,
    // which would hide a write that left one behind); the first one lists.
    const first = await run(workload(0xbeef, OPS / 2, { shortShare: 0.5 }), { long, short }, { serialiseIds: true });
    assert.ok(first.counts.shortSet > 50, JSON.stringify(first.counts));
    const expired = await shortRecordsExpired(long, first.history);
    assert.ok(expired > 0, 'some records expired between the waves');
    const second = await run(workload(0xfeed, OPS / 2, { shortShare: 0.15, listShare: 0 }), { long, short }, { serialiseIds: true });
    assert.deepEqual([...first.problems, ...second.problems], []);

    const snap = await snapshot(keyPrefix);
    assert.deepEqual(checkLayout(snap, expiredStaleEntry([first.history, second.history])), []);
    const api = await checkThroughApi(long);
    assert.deepEqual(api.problems, []);
  });

  it('MemoryStore: the same workload keeps every listing consistent with get', async () => {
    const store = new MemoryStore({ logger: null });
    stores.push(store);
    const { problems, counts } = await run(workload(0xc0ffee, OPS), { long: store, short: store });
    assert.ok(counts.set > 1000, JSON.stringify(counts));
    assert.deepEqual(problems, []);
    const api = await checkThroughApi(store);
    assert.deepEqual(api.problems, []);
    assert.ok(api.live > 10, `only ${api.live} live records`);
  });

  it('MemoryStore and RedisStore agree on the outcome of the same sequential workload', async () => {
    // Run one at a time, the two stores must end in the same state.
    const memory = new MemoryStore({ logger: null });
    stores.push(memory);
    const { long: redisStore } = redisStores();
    const ops = workload(0x5eed, 600).map((op) => (op.record && op.record.updatedAt === undefined
      ? { ...op, record: { ...op.record, updatedAt: new Date(BASE_TIME).toISOString() } }
      : op));
    for (const op of ops) {
      if (op.kind === 'set') {
        await memory.set(op.id, op.record);
        await redisStore.set(op.id, op.record);
      } else if (op.kind === 'delete') {
        await memory.delete(op.id);
        await redisStore.delete(op.id);
      } else {
        const a = await memory.listByUser(op.user, { limit: op.limit });
        const b = await redisStore.listByUser(op.user, { limit: op.limit });
        assert.deepEqual(b, a, `listByUser(${op.user}, { limit: ${op.limit} })`);
      }
    }
    for (const user of USERS) {
      assert.deepEqual(await redisStore.listByUser(user, { limit: 1000 }), await memory.listByUser(user, { limit: 1000 }));
    }
  });

  it('MemoryStore with a 1 s TTL: invariants hold across expiry', async () => {
    const store = new MemoryStore({ logger: null, ttlSeconds: SHORT_TTL_MS / 1000 });
    stores.push(store);
    const first = await run(workload(0xbeef, OPS / 2), { long: store, short: store }, { serialiseIds: true });
    assert.deepEqual(first.problems, []);
    await pollUntil(
      async () => (await Promise.all(USERS.map((u) => store.listByUser(u)))).every((l) => l.length === 0),
      { timeoutMs: SHORT_TTL_MS + 3000, what: 'every record to expire' },
    );
    const second = await run(workload(0xfeed, OPS / 2), { long: store, short: store }, { serialiseIds: true });
    assert.deepEqual(second.problems, []);
    const api = await checkThroughApi(store);
    assert.deepEqual(api.problems, []);
  });
});
