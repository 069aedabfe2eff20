'use strict';

// Conversation records for tests and scripts: one builder with fixed,
// readable defaults that a caller overrides field by field, a live SDK object
// that must never be serialised, and a seeded PRNG for reproducible
// workloads. (The bench builds its realistic, sized records in
// bench/lib/records.js on top of seededRandom.)

/** The default timestamps: createdAt is an hour before updatedAt. */
const BASE_TIME_MS = Date.parse('2024-03-01T12:00:00.000Z');

/** An ISO timestamp `minutes` after (or before, when negative) the base time. */
function isoAtMinute(minutes) {
  return new Date(BASE_TIME_MS + minutes * 60_000).toISOString();
}

/**
 * A StoredConversation-like record of `userId` with id `id`:
 *   { externalId, history: [one user message], userId, tenantId: 'tenant-1',
 *     createdAt, updatedAt, status: 'active', ...fields }
 * Every field can be overridden (or set to undefined) through `fields`.
 */
function conversation(id, userId, fields = {}) {
  return {
    externalId: id,
    history: [{ role: 'user', content: `hello from ${id}` }],
    userId,
    tenantId: 'tenant-1',
    createdAt: isoAtMinute(-60),
    updatedAt: isoAtMinute(0),
    status: 'active',
    ...fields,
  };
}

/**
 * A stand-in for the live SDK object a chat server keeps on a conversation
 * (`sdkConversationRef`): circular, and it throws if anything tries to
 * serialise it. A store must drop it, never stringify it.
 */
function liveSdkObject() {
  const ref = { connected: true };
  ref.self = ref; // circular, like a real client
  ref.toJSON = () => {
    throw new Error('sdkConversationRef must never be serialised');
  };
  return ref;
}

/**
 * mulberry32, a small seeded PRNG: the same seed gives the same sequence on
 * every run. Returns `rand()` in [0, 1), with `rand.int(n)` in [0, n) and
 * `rand.pick(list)`.
 */
function seededRandom(seed) {
  let state = seed >>> 0;
  const rand = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  rand.int = (n) => Math.floor(rand() * n);
  rand.pick = (list) => list[rand.int(list.length)];
  return rand;
}

module.exports = { BASE_TIME_MS, isoAtMinute, conversation, liveSdkObject, seededRandom };
