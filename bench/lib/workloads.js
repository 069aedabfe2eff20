'use strict';
// The measured operations. Each workload gives, per store, the call to time
// (`op(i)`), any seeding it needs before a run (off the clock) and any
// cleaning after it; and the bare JSON work the same records cost on the main
// thread (the floor for any store that hands back plain objects).

const assert = require('node:assert/strict');
const { makeConversations, freshId, pick } = require('./records');
const { seed, unseed, countExisting } = require('./stores');

/** Records the set/get/delete workloads cycle through, per size. */
const POOL_SIZE = 256;
/** Owners of the pool records (small user indexes, as in a real app). */
const POOL_USERS = 32;
/** The list user's conversation count (the store's default page). */
const LIST_COUNT = 50;
/** What a sidebar needs of each conversation. */
const LIST_FIELDS = ['externalId', 'userId', 'updatedAt', 'status'];

let sink; // keeps floor results observable so no JIT can drop the work

/** Seeds a size's records and returns what the workloads read. */
async function setupSize(size, admin, seedBase) {
  const users = Array.from({ length: POOL_USERS }, (_, k) => `bench-${size.name}-user-${k}`);
  const pool = makeConversations(size, { count: POOL_SIZE, users, seed: seedBase + 1 });
  const listUser = `bench-${size.name}-lister`;
  const listed = makeConversations(size, { count: LIST_COUNT, users: [listUser], seed: seedBase + 2 });
  await seed(admin, [...pool, ...listed]);
  return {
    size,
    admin,
    pool,
    listUser,
    listedJson: listed.map((entry) => entry.json),
    projectedJson: listed.map((entry) => JSON.stringify(pick(entry.record, LIST_FIELDS))),
    expectedFirst: pool[0],
  };
}

const entryAt = (ctx, i) => ctx.pool[i % ctx.pool.length];

const set = {
  name: 'set',
  floorKind: 'stringify',
  floor: (ctx) => (i) => {
    sink = JSON.stringify(entryAt(ctx, i).record);
  },
  prepare(ctx, _storeName, store) {
    return {
      op: (i) => {
        const entry = entryAt(ctx, i);
        return store.set(entry.id, entry.record);
      },
    };
  },
};

const get = {
  name: 'get',
  floorKind: 'parse',
  floor: (ctx) => (i) => {
    sink = JSON.parse(entryAt(ctx, i).json);
  },
  prepare(ctx, _storeName, store) {
    return {
      op: async (i) => {
        if ((await store.get(entryAt(ctx, i).id)) === undefined) throw new Error('get: a seeded record is missing');
      },
    };
  },
};

function parseAll(texts) {
  for (const text of texts) sink = JSON.parse(text);
}

const list = {
  name: 'list',
  floorKind: '50× parse',
  floor: (ctx) => () => parseAll(ctx.listedJson),
  prepare(ctx, _storeName, store) {
    return { op: () => store.listByUser(ctx.listUser) };
  },
};

/** Ours lists with `fields`; the baseline can only list whole records. */
const listFields = {
  name: 'listFields',
  floorKind: '50× parse of the picked fields',
  sizes: ['64k'],
  floor: (ctx) => () => parseAll(ctx.projectedJson),
  prepare(ctx, storeName, store) {
    const options = { fields: LIST_FIELDS };
    return {
      op: storeName === 'ours' ? () => store.listByUser(ctx.listUser, options) : () => store.listByUser(ctx.listUser),
    };
  },
};

/** Each run deletes records seeded for it (seeding is off the clock). */
const del = {
  name: 'delete',
  floorKind: 'none (no record crosses)',
  floor: null,
  async prepare(ctx, _storeName, store, count) {
    const victims = [];
    for (let i = 0; i < count; i++) {
      const { userId, json, score } = entryAt(ctx, i);
      victims.push({ id: freshId(), userId, json, score });
    }
    await seed(ctx.admin, victims);
    return {
      op: (i) => store.delete(victims[i].id),
      async finish(done) {
        const deleted = victims.slice(0, done);
        const left = await countExisting(ctx.admin, deleted.map((v) => v.id));
        if (left !== 0) throw new Error(`delete: ${left} of ${done} deleted records still exist`);
        await unseed(ctx.admin, victims.slice(done));
      },
    };
  },
};

const WORKLOADS = { set, get, list, listFields, delete: del };
const OP_ORDER = ['set', 'get', 'list', 'listFields', 'delete'];

/** Checks that both stores read the seeded data as expected before timing them. */
async function checkStores(ctx, stores) {
  const expected = ctx.expectedFirst;
  for (const [name, store] of Object.entries(stores)) {
    assert.deepEqual(await store.get(expected.id), expected.record, `${name}: get returns the seeded record`);
    const listed = await store.listByUser(ctx.listUser);
    assert.equal(listed.length, LIST_COUNT, `${name}: listByUser returns ${LIST_COUNT} records`);
    assert.ok(Array.isArray(listed[0].history), `${name}: listed records are whole`);
  }
  const light = await stores.ours.listByUser(ctx.listUser, { fields: LIST_FIELDS });
  assert.equal(light.length, LIST_COUNT, 'ours: listByUser with fields returns every record');
  assert.deepEqual(Object.keys(light[0]).sort(), [...LIST_FIELDS].sort(), 'ours: fields picks only the named fields');
}

function floorSink() {
  return sink;
}

module.exports = { WORKLOADS, OP_ORDER, LIST_FIELDS, LIST_COUNT, setupSize, checkStores, floorSink };
