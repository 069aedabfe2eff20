'use strict';

// Records with non-ASCII text reach JS as two-byte strings. While calls
// overlap, large records (in a page or alone) are handed to V8 without a
// copy (external strings, freed by a native finalizer when V8 collects
// them); small ones, and any record of a call alone, are copied
// (src/completion.rs, `JsText::into_js`). Both paths must give back exactly
// what was stored, across collections, with the finalizers running while
// other calls convert new records. A listByUser page settles as a handle
// whose strings are made only when JS reads it (`RecordPage`).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const v8 = require('node:v8');
const vm = require('node:vm');

const { RedisStore } = require('..');
const { startRedis, conversation, pollUntil } = require('../test-support');

const TEXT = 'café naïve — “quoted” 東京 👍 ';

/** A record of about `bytes` of UTF-8, non-ASCII throughout. */
function bigRecord(id, userId, bytes, turn) {
  const content = `${turn} ${TEXT.repeat(Math.ceil(bytes / Buffer.byteLength(TEXT)))}`;
  return conversation(id, userId, { history: [{ role: 'user', content }], updatedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, turn)).toISOString() });
}

describe('records handed to V8 with and without a copy', () => {
  let srv;
  let store;
  before(async () => {
    srv = await startRedis();
    store = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null });
  });
  after(async () => {
    await store?.close();
    await srv?.stop();
  });

  // Strings made when the promise settles would all be alive at once for
  // every page settled in the same wake of the JS thread; made when read,
  // each page's die with its parse.
  it('a page settles as a handle whose records become strings when taken, once', async () => {
    const native = require('../loader.js').loadBinding();
    const raw = new native.NativeRedisStore({ url: srv.url, allowPlaintext: true, keyPrefix: 'raw:' }, null);
    try {
      const record = bigRecord('raw-1', 'raw-user', 1024, 1);
      await raw.set('raw-1', JSON.stringify(record));
      const page = await raw.listByUser('raw-user', null, null);
      assert.ok(!Array.isArray(page) && typeof page === 'object', 'a handle, not the strings');
      assert.deepEqual(native.takeRecords(page).map((text) => JSON.parse(text)), [record]);
      assert.deepEqual(native.takeRecords(page), [], 'taken once');
    } finally {
      raw.close();
    }
  });

  // Node runs promise continuations once a native callback returns: had
  // the pages (or large records) that reached the JS thread together been
  // settled in one callback, every one would be parsed before any caller
  // had used (and dropped) its own, all alive at once. Each is settled in a
  // callback of its own instead, and its caller runs before the next is
  // parsed (src/completion.rs, `parsed_alone`).
  describe('outcomes that reach the JS thread together', () => {
    let events;
    let store;
    before(async () => {
      const schema = { parse: (record) => (events.push(`parsed ${record.userId}`), record) };
      store = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null, schema });
    });
    after(async () => {
      await store?.close();
    });

    /**
     * Starts `calls` (each named by the userId its records carry), holds the
     * JS thread while their replies arrive so that they wait for it
     * together, and checks that each outcome's records were parsed and its
     * caller ran before the next outcome's parse.
     */
    async function checkOneAtATime(calls, recordsPerCall) {
      events = [];
      let turn = 0; // event-loop turns, to tell which outcomes reached JS in the same one
      let turning = true;
      const count = () => {
        turn += 1;
        if (turning) setImmediate(count);
      };
      setImmediate(count);
      const consumedIn = [];
      const running = calls.map(([userId, call]) =>
        call().then(() => {
          consumedIn.push(turn);
          events.push(`consumed ${userId}`);
        }),
      );
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      await Promise.all(running);
      turning = false;
      assert.ok(new Set(consumedIn).size < consumedIn.length, `some reached JS together (turns ${consumedIn})`);
      const expected = [];
      for (const event of events.filter((e) => e.startsWith('consumed'))) {
        const userId = event.slice('consumed '.length);
        expected.push(...Array(recordsPerCall).fill(`parsed ${userId}`), event);
      }
      assert.deepEqual(events, expected);
    }

    it("pages: each page's caller runs before the next page is parsed", async () => {
      const users = Array.from({ length: 6 }, (_, i) => `together-${i}`);
      for (const [i, userId] of users.entries()) {
        for (let j = 0; j < 3; j += 1) await store.set(`${userId}-${j}`, bigRecord(`${userId}-${j}`, userId, 1024, i * 3 + j));
      }
      const calls = users.map((userId) => [userId, () => store.listByUser(userId).then((page) => assert.equal(page.length, 3))]);
      await checkOneAtATime(calls, 3);
    });

    it("records of 64 KB: each get's caller runs before the next record is parsed", async () => {
      const users = Array.from({ length: 6 }, (_, i) => `large-${i}`);
      for (const [i, userId] of users.entries()) await store.set(userId, bigRecord(userId, userId, 64 * 1024, i));
      const calls = users.map((userId) => [userId, () => store.get(userId).then((record) => assert.equal(record.userId, userId))]);
      await checkOneAtATime(calls, 1);
    });
  });

  it('read back intact, alone and overlapping, across garbage collections', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    const stored = new Map();
    // 64 KB records are past the size from which a record is handed over
    // while calls overlap; 4 KB ones are always copied.
    for (let i = 0; i < 24; i += 1) {
      const record = bigRecord(`h-${i}`, i % 2 ? 'h-large' : 'h-small', i % 2 ? 64 * 1024 : 4 * 1024, i);
      await store.set(record.externalId, record);
      stored.set(record.externalId, record);
    }
    const newestFirst = (userId) => [...stored.values()].filter((r) => r.userId === userId).reverse();
    for (let round = 0; round < 4; round += 1) {
      // Alone: one call at a time.
      assert.deepEqual(await store.get('h-1'), stored.get('h-1'));
      assert.deepEqual(await store.listByUser('h-small'), newestFirst('h-small'));
      // Overlapping: every read in flight at once, twice over.
      const reads = [];
      for (let copy = 0; copy < 2; copy += 1) {
        for (const id of stored.keys()) reads.push(store.get(id).then((got) => assert.deepEqual(got, stored.get(id))));
        reads.push(store.listByUser('h-large').then((page) => assert.deepEqual(page, newestFirst('h-large'))));
        reads.push(store.listByUser('h-small').then((page) => assert.deepEqual(page, newestFirst('h-small'))));
      }
      await Promise.all(reads);
      gc();
      // Native finalizers may run on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
    }

    // Handed-over buffers count as V8's external memory until collected:
    // overlapping reads of large records raise it, a collection frees them.
    const large = [...stored.values()].filter((r) => r.userId === 'h-large');
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const before = process.memoryUsage().external;
    await Promise.all(large.map((r) => store.get(r.externalId)));
    const raised = process.memoryUsage().external - before;
    assert.ok(raised >= 512 * 1024, `external memory rose by ${raised} bytes for ${large.length} records of 64 KB`);
    await pollUntil(async () => {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
      return process.memoryUsage().external - before < 256 * 1024;
    }, { timeoutMs: 5000, what: 'the handed-over buffers to be freed' });
  });
});
