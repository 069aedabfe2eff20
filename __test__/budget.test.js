'use strict';

// The per-call byte budget: one call reads at most 64 x maxRecordBytes of
// records (64 MiB at the default). A listByUser or get over it fails whole
// with STORE_RESPONSE_TOO_LARGE; nothing is half-returned.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore, StoreDataError } = require('..');
const { startRedis, sendCommands, conversation, conversationKey, userIndexKey, isoAtMinute: iso } = require('../test-support');

const MIB = 1 << 20;

let srv;
let prefixCounter = 0;
let opened = [];

before(async () => {
  srv = await startRedis();
});

afterEach(async () => {
  const stores = opened;
  opened = [];
  await Promise.all(stores.map((s) => s.close()));
});

after(async () => {
  await srv?.stop();
});

function open(options = {}) {
  const keyPrefix = `b${++prefixCounter}:`;
  const store = new RedisStore({ url: srv.url, allowPlaintext: true, keyPrefix, logger: null, ...options });
  opened.push(store);
  return { store, keyPrefix };
}

/** `count` records of u1 of about `bytes` bytes each, written raw in one pipeline. */
async function writeRecords(keyPrefix, count, bytes) {
  const commands = [];
  for (let i = 0; i < count; i++) {
    const id = `c${String(i).padStart(4, '0')}`;
    const record = conversation(id, 'u1', { updatedAt: iso(i), title: 'x'.repeat(bytes - 200) });
    commands.push(['SET', conversationKey(id, keyPrefix), JSON.stringify(record)]);
    commands.push(['ZADD', userIndexKey('u1', keyPrefix), String(Date.parse(iso(i))), id]);
  }
  await sendCommands({ port: srv.port }, commands, 30_000);
}

async function rejection(promise) {
  return promise.then(
    () => assert.fail('resolved'),
    (err) => err,
  );
}

describe('per-call byte budget', () => {
  it('a listByUser of 1 MiB records over 64 MiB fails whole at the default maxRecordBytes', async () => {
    const { store, keyPrefix } = open();
    await writeRecords(keyPrefix, 70, MIB);
    const err = await rejection(store.listByUser('u1', { limit: 1000 }));
    assert.ok(err instanceof StoreDataError, `${err.name}: ${err.message}`);
    assert.equal(err.code, 'STORE_RESPONSE_TOO_LARGE');
    assert.match(err.message, /listByUser\("u1"\) read \d+ bytes of records, over the per-call budget of 67108864 bytes/);
    // A page within the budget (10 records and 16 read ahead) is listed in full.
    const page = await store.listByUser('u1', { limit: 10 });
    assert.equal(page.length, 10);
    assert.equal(page[0].externalId, 'c0069');
  });

  it('scales with maxRecordBytes, and bounds get too', async () => {
    const { store, keyPrefix } = open({ maxRecordBytes: 4096 });
    const budget = 64 * 4096;
    await writeRecords(keyPrefix, 80, 4000);
    // 30 asked + 16 read ahead = 46 records of ~4 KB: within 256 KiB.
    assert.equal((await store.listByUser('u1', { limit: 30 })).length, 30);
    const err = await rejection(store.listByUser('u1', { limit: 80 }));
    assert.equal(err.code, 'STORE_RESPONSE_TOO_LARGE');
    assert.ok(err.message.includes(`budget of ${budget} bytes`), err.message);
    // A value bigger than the whole budget (no store wrote it) at one key.
    await sendCommands({ port: srv.port }, [['SET', conversationKey('huge', keyPrefix), 'y'.repeat(budget + 1)]]);
    const getErr = await rejection(store.get('huge'));
    assert.equal(getErr.code, 'STORE_RESPONSE_TOO_LARGE');
    assert.ok(getErr.message.includes(conversationKey('huge', keyPrefix)), getErr.message);
    // The store still serves what fits.
    assert.equal((await store.get('c0000')).externalId, 'c0000');
    await store.set('small', conversation('small', 'u2'));
    assert.equal((await store.listByUser('u2')).length, 1);
  });
});
