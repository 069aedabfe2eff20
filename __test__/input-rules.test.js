'use strict';

// Excluded fields are dropped in one place, index.js, before JSON.stringify
// (the native side stores the JSON it gets byte for byte). These are the
// cases where that one place has to read the record as JSON.stringify
// would: a record with toJSON(), and an excludeFields list of its own.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { RedisStore, MemoryStore } = require('..');
const { startRedis } = require('../test-support');

class Conversation {
  constructor(id, userId) {
    this.id = id;
    this.userId = userId;
    this.updatedAt = '2024-05-01T12:00:00.000Z';
    this.sdk = { live: true };
  }

  // What it persists: its fields, with the SDK object under the excluded name.
  toJSON() {
    return { externalId: this.id, userId: this.userId, updatedAt: this.updatedAt, sdkConversationRef: this.sdk };
  }
}

describe('excluded fields', () => {
  let srv;
  const stores = {};

  before(async () => {
    srv = await startRedis();
    stores.MemoryStore = new MemoryStore({ logger: null });
    stores.RedisStore = new RedisStore({ url: srv.url, allowPlaintext: true, logger: null });
    stores.customMemory = new MemoryStore({ logger: null, excludeFields: ['secret', 'sdkConversationRef'] });
  });

  after(async () => {
    await Promise.all(Object.values(stores).map((store) => store.close()));
    if (srv) await srv.stop();
  });

  for (const name of ['MemoryStore', 'RedisStore']) {
    it(`${name}: a record with toJSON() is stored as toJSON() says, without the excluded field`, async () => {
      const store = stores[name];
      await store.set('tojson', new Conversation('tojson', 'u1'));
      assert.deepEqual(await store.get('tojson'), {
        externalId: 'tojson',
        userId: 'u1',
        updatedAt: '2024-05-01T12:00:00.000Z',
      });
      assert.deepEqual(
        (await store.listByUser('u1')).map((record) => record.externalId),
        ['tojson'],
      );
    });
  }

  it('every name of a custom excludeFields list is dropped, and only at the top level', async () => {
    const store = stores.customMemory;
    await store.set('custom', {
      userId: 'u2',
      secret: 'not stored',
      sdkConversationRef: { live: true },
      kept: { secret: 'nested, kept' },
    });
    assert.deepEqual(await store.get('custom'), { userId: 'u2', kept: { secret: 'nested, kept' } });
  });
});
