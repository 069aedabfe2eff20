'use strict';

// The same store as ioredis-store.js, written on node-redis (the `redis`
// package, the official client): what a team would write today instead of
// adopting this package. It is the benchmark's second peer, so it keeps the
// ioredis store's operations and round trips exactly (a pipelined
// SET EX + ZADD + EXPIRE per set, GET then a pipelined DEL + ZREM per delete,
// ZRANGE BYSCORE REV LIMIT then MGET per list) and its storage layout byte
// for byte. node-redis has no key-prefix client option, so the prefix is the
// store's own.

const { DEFAULT_TTL_SECONDS, indexTtlSeconds, conversationKey, userIndexKey } = require('./layout');

const LIST_LIMIT = 50;

class NodeRedisConversationStore {
  /**
   * @param {import('redis').RedisClientType} client a connected node-redis client
   * @param {{ ttlSeconds?: number, keyPrefix?: string, schema?: { parse(value: unknown): any } }} [options]
   */
  constructor(client, { ttlSeconds = DEFAULT_TTL_SECONDS, keyPrefix = '', schema } = {}) {
    this.client = client;
    this.ttlSeconds = ttlSeconds;
    this.keyPrefix = keyPrefix;
    this.schema = schema;
  }

  _deserialize(raw) {
    const obj = JSON.parse(raw);
    return this.schema ? this.schema.parse(obj) : obj;
  }

  async get(id) {
    const raw = await this.client.get(conversationKey(id, this.keyPrefix));
    if (raw === null) return undefined;
    return this._deserialize(raw);
  }

  async set(id, conversation) {
    // eslint-disable-next-line no-unused-vars
    const { sdkConversationRef, ...rest } = conversation;
    const indexKey = userIndexKey(conversation.userId, this.keyPrefix);
    // execAsPipeline: one round trip, no MULTI, as the ioredis store's pipeline.
    await this.client
      .multi()
      .set(conversationKey(id, this.keyPrefix), JSON.stringify(rest), {
        expiration: { type: 'EX', value: this.ttlSeconds },
      })
      .zAdd(indexKey, { score: Date.parse(conversation.updatedAt), value: id })
      .expire(indexKey, indexTtlSeconds(this.ttlSeconds))
      .execAsPipeline();
  }

  async delete(id) {
    const key = conversationKey(id, this.keyPrefix);
    const raw = await this.client.get(key);
    if (raw === null) return;
    const { userId } = JSON.parse(raw);
    await this.client.multi().del(key).zRem(userIndexKey(userId, this.keyPrefix), id).execAsPipeline();
  }

  /** Newest first by updatedAt, at most 50; expired ids are skipped, not pruned. */
  async listByUser(userId) {
    const ids = await this.client.zRange(userIndexKey(userId, this.keyPrefix), '+inf', '-inf', {
      BY: 'SCORE',
      REV: true,
      LIMIT: { offset: 0, count: LIST_LIMIT },
    });
    if (ids.length === 0) return [];
    const raws = await this.client.mGet(ids.map((id) => conversationKey(id, this.keyPrefix)));
    const conversations = [];
    for (const raw of raws) {
      if (raw !== null) conversations.push(this._deserialize(raw));
    }
    return conversations;
  }
}

module.exports = { NodeRedisConversationStore };
