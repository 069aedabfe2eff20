'use strict';
// Realistic StoredConversation-like records of a chosen size: a chat
// conversation with metadata and a history of messages (short user turns,
// longer assistant turns, a little non-ASCII text as real chats have).
// Deterministic (seeded) so every run stores the same bytes.

const crypto = require('node:crypto');

const { seededRandom } = require('../../test-support');

/** Record sizes the bench knows, by name. */
const SIZES = {
  '4k': { name: '4k', bytes: 4 * 1024, messages: 20 },
  '64k': { name: '64k', bytes: 64 * 1024, messages: 120 },
};

const ALL_WORDS = (
  'the a to of and in is for that it with on as you can this be are or your not by we if from at an ' +
  'request server response cache redis conversation message token model stream timeout retry error ' +
  'function value string object array config deploy build test index query result user assistant ' +
  'please could would should here there what when which how why because then also just like more ' +
  'café naïve résumé — “quoted” über déjà-vu 東京 👍'
).split(' ');
const ASCII_WORDS = ALL_WORDS.filter((word) => /^[\x20-\x7e]+$/.test(word));
let WORDS = ALL_WORDS;

/** ASCII-only text (`--ascii`): shows what the non-ASCII characters of real chats cost. */
function useAsciiText(ascii) {
  WORDS = ascii ? ASCII_WORDS : ALL_WORDS;
}

const STATUSES = ['active', 'active', 'active', 'idle', 'archived'];
const MODELS = ['gpt-4o', 'claude-3-5-sonnet', 'llama-3.1-70b'];
const BASE_TIME_MS = Date.parse('2024-05-01T12:00:00.000Z');
/** A user turn gets this share of an exchange's text; the assistant the rest. */
const USER_SHARE = 0.25;

/** A UUID v4 drawn from the seeded PRNG (stable across runs). */
function seededUuid(rand) {
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) bytes[i] = Math.floor(rand() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Prose of about `bytes` UTF-8 bytes. */
function prose(rand, bytes) {
  const words = [];
  let length = 0;
  while (length < bytes) {
    const word = WORDS[Math.floor(rand() * WORDS.length)];
    words.push(word);
    length += Buffer.byteLength(word) + 1;
  }
  return words.join(' ');
}

function isoAt(offsetMs) {
  return new Date(BASE_TIME_MS + offsetMs).toISOString();
}

// Keys in the order of the chat server's StoredConversation schema (a Zod
// parse returns them so): the history comes before userId, which decides how
// much of a stored record the store's scripts read to find its owner.
function skeleton(rand, { id, userId, ordinal }) {
  const createdMs = ordinal * 60_000;
  return {
    externalId: id,
    history: [],
    userId,
    tenantId: `tenant-${Math.floor(rand() * 20)}`,
    createdAt: isoAt(createdMs),
    updatedAt: isoAt(createdMs + 3_600_000 + Math.floor(rand() * 1000)),
    status: STATUSES[Math.floor(rand() * STATUSES.length)],
    metadata: {
      title: prose(rand, 40),
      model: MODELS[Math.floor(rand() * MODELS.length)],
      channel: 'web',
      locale: 'en-US',
      tags: ['support', 'billing', 'beta'].slice(0, 1 + Math.floor(rand() * 3)),
      tokenCount: Math.floor(rand() * 100_000),
    },
  };
}

/**
 * One conversation whose JSON is about `size.bytes` bytes, with
 * `size.messages` messages.
 */
function makeConversation(size, { id, userId, ordinal, seed }) {
  const rand = seededRandom(seed);
  const record = skeleton(rand, { id, userId, ordinal });
  const emptyTurn = { role: 'assistant', content: '', timestamp: record.createdAt };
  const fixedBytes =
    Buffer.byteLength(JSON.stringify(record)) + size.messages * (Buffer.byteLength(JSON.stringify(emptyTurn)) + 1);
  const perExchange = (2 * Math.max(0, size.bytes - fixedBytes)) / size.messages;
  for (let i = 0; i < size.messages; i++) {
    const role = i % 2 === 0 ? 'user' : 'assistant';
    const share = role === 'user' ? USER_SHARE : 1 - USER_SHARE;
    record.history.push({
      role,
      content: prose(rand, Math.max(1, Math.round(perExchange * share) - 1)),
      timestamp: isoAt(ordinal * 60_000 + i * 15_000),
    });
  }
  return record;
}

/** `count` conversations spread round-robin over the given users. */
function makeConversations(size, { count, users, seed }) {
  const rand = seededRandom(seed);
  const out = [];
  for (let i = 0; i < count; i++) {
    const id = seededUuid(rand);
    const userId = users[i % users.length];
    const record = makeConversation(size, { id, userId, ordinal: i, seed: seed * 7919 + i });
    out.push({ id, userId, record, json: JSON.stringify(record), score: Date.parse(record.updatedAt) });
  }
  return out;
}

/** A fresh random id (for records created during a run). */
function freshId() {
  return crypto.randomUUID();
}

/** The named top-level fields of a record, as a listing with `fields` returns them. */
function pick(record, fields) {
  const out = {};
  for (const field of fields) if (Object.prototype.hasOwnProperty.call(record, field)) out[field] = record[field];
  return out;
}

module.exports = { useAsciiText, SIZES, makeConversation, makeConversations, freshId, pick, seededUuid };
