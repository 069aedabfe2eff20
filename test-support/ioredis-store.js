'use strict';

// A faithful re-implementation of the ioredis-based RedisStore that
// redis-conversation-store replaces. It is the compatibility reference (the
// storage layout the native store must read and write byte for byte) and the
// benchmark baseline, so it keeps the original's semantics, weaknesses
// included:
//   - set() is a plain pipeline (SET EX, ZADD, EXPIRE), not a transaction: a
//     reader can see the record before its index entry, and a failing ZADD
//     (e.g. an unparseable updatedAt scoring NaN) leaves the record written;
//   - a userId change leaves the id in the old user's index;
//   - delete() reads the record, then deletes (two round trips, not atomic);
//   - listByUser() never prunes expired ids from the index, so they still take
//     up slots in the LIMIT 0 50 window;
//   - no input validation; errors are whatever ioredis throws (a command
//     timeout is a plain Error('Command timed out')).
// It is not a strawman either: one round trip per write, MGET for lists, no
// extra work, as the original.
//
// The key prefix is ioredis's own `keyPrefix` client option, as in the
// original: `new Redis(url, { keyPrefix: 'app:' })`.

const { DEFAULT_TTL_SECONDS, indexTtlSeconds, conversationKey, userIndexKey } = require('./layout');

const LIST_LIMIT = 50;

class IoredisConversationStore {
  /**
   * @param {import('ioredis').Redis} redis a connected (or connecting) ioredis client
   * @param {{ ttlSeconds?: number, schema?: { parse(value: unknown): any } }} [options]
   */
  constructor(redis, { ttlSeconds = DEFAULT_TTL_SECONDS, schema } = {}) {
    this.redis = redis;
    this.ttlSeconds = ttlSeconds;
    this.schema = schema;
  }

  /** JSON.parse, then the schema (which fills defaults) when one is given. */
  _deserialize(raw) {
    const obj = JSON.parse(raw);
    return this.schema ? this.schema.parse(obj) : obj;
  }

  async get(id) {
    const raw = await this.redis.get(conversationKey(id));
    if (raw === null) return undefined;
    return this._deserialize(raw);
  }

  async set(id, conversation) {
    // The live SDK object is never persisted.
    // eslint-disable-next-line no-unused-vars
    const { sdkConversationRef, ...rest } = conversation;
    const indexKey = userIndexKey(conversation.userId);
    const pipeline = this.redis.pipeline();
    pipeline.set(conversationKey(id), JSON.stringify(rest), 'EX', this.ttlSeconds);
    pipeline.zadd(indexKey, Date.parse(conversation.updatedAt), id);
    pipeline.expire(indexKey, indexTtlSeconds(this.ttlSeconds));
    const results = await pipeline.exec();
    if (results) {
      for (const [err] of results) {
        if (err) throw err;
      }
    }
  }

  async delete(id) {
    const key = conversationKey(id);
    // Read first to find the owner's index (read-then-write, not atomic).
    const raw = await this.redis.get(key);
    if (raw === null) return;
    const { userId } = JSON.parse(raw);
    const pipeline = this.redis.pipeline();
    pipeline.del(key);
    pipeline.zrem(userIndexKey(userId), id);
    const results = await pipeline.exec();
    if (results) {
      for (const [err] of results) {
        if (err) throw err;
      }
    }
  }

  /** Newest first by updatedAt, at most 50; expired ids are skipped, not pruned. */
  async listByUser(userId) {
    const ids = await this.redis.zrevrangebyscore(
      userIndexKey(userId), '+inf', '-inf', 'LIMIT', 0, LIST_LIMIT,
    );
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => conversationKey(id)));
    const conversations = [];
    for (const raw of raws) {
      if (raw !== null) conversations.push(this._deserialize(raw));
    }
    return conversations;
  }
}

module.exports = { IoredisConversationStore };
