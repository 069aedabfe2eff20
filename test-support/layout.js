'use strict';

// The storage layout of the original ioredis store, which the native store
// keeps byte for byte (src/keys.rs is the native side):
//
//   <prefix>conv:<id>                       string: the record's JSON, EX ttl
//                                           (default 86400 s)
//   <prefix>user:<userId>:conversations     sorted set: ids scored by
//                                           Date.parse(updatedAt), EX ttl + 1 h
//
// With ioredis the prefix is the client's own `keyPrefix` option (the client
// adds it, so the reference store passes no prefix here); with the native
// store it is the `keyPrefix` option. Harnesses, the reference store and the
// bench build keys only through these helpers.

/** A record's TTL unless configured otherwise (both stores). */
const DEFAULT_TTL_SECONDS = 86_400;

/** A user index outlives the newest record it was written with by an hour. */
function indexTtlSeconds(recordTtlSeconds) {
  return recordTtlSeconds + 3600;
}

// A prefix that is not a string is a caller's mistake (e.g. `ids.map(conversationKey)`
// passing the array index): refuse it rather than build a key nobody reads.
function checkPrefix(prefix) {
  if (typeof prefix !== 'string') throw new TypeError(`key prefix must be a string, got ${typeof prefix}`);
  return prefix;
}

/** The record key of conversation `id`. */
function conversationKey(id, prefix = '') {
  return `${checkPrefix(prefix)}conv:${id}`;
}

/** The key of `userId`'s index (a sorted set of conversation ids). */
function userIndexKey(userId, prefix = '') {
  return `${checkPrefix(prefix)}user:${userId}:conversations`;
}

/**
 * Reads a key (without its prefix) back into what it names:
 * { kind: 'record', id } | { kind: 'index', userId } | null for any other key.
 */
function parseKey(key, prefix = '') {
  if (!key.startsWith(checkPrefix(prefix))) return null;
  const rest = key.slice(prefix.length);
  let match;
  if ((match = /^conv:(.*)$/s.exec(rest))) return { kind: 'record', id: match[1] };
  if ((match = /^user:(.*):conversations$/s.exec(rest))) return { kind: 'index', userId: match[1] };
  return null;
}

module.exports = { DEFAULT_TTL_SECONDS, indexTtlSeconds, conversationKey, userIndexKey, parseKey };
