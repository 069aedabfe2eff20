'use strict';
// The two stores under test, and a plain ioredis client that seeds and checks
// data off the clock (writing the layout both stores share, through the
// test-support key helpers).

const Redis = require('ioredis');
const { RedisStore } = require('../..');
const {
  IoredisConversationStore,
  DEFAULT_TTL_SECONDS,
  indexTtlSeconds,
  conversationKey,
  userIndexKey,
} = require('../../test-support');

const COMMAND_TIMEOUT_MS = 5000;
const SEED_BATCH = 200;

/**
 * The baseline's client options: ioredis defaults, plus the command timeout
 * the original store ran with (ours has the same 5 s default).
 */
const IOREDIS_OPTIONS = {
  commandTimeout: COMMAND_TIMEOUT_MS,
  connectTimeout: COMMAND_TIMEOUT_MS,
};

const STORE_NAMES = ['ours', 'ioredis'];

async function openStores(url) {
  const ours = new RedisStore({ url, allowPlaintext: true, logger: null });
  const baselineClient = new Redis(url, IOREDIS_OPTIONS);
  const ioredis = new IoredisConversationStore(baselineClient);
  const admin = new Redis(url, { commandTimeout: 60_000 });
  await Promise.all([ours.ping(), baselineClient.ping(), admin.ping()]);
  return {
    stores: { ours, ioredis },
    admin,
    async close() {
      await ours.close();
      baselineClient.disconnect();
      admin.disconnect();
    },
  };
}

/** Writes entries `{ id, userId, json, score }` as both stores would. */
async function seed(admin, entries) {
  for (let start = 0; start < entries.length; start += SEED_BATCH) {
    const pipeline = admin.pipeline();
    const touched = new Set();
    for (const { id, userId, json, score } of entries.slice(start, start + SEED_BATCH)) {
      pipeline.set(conversationKey(id), json, 'EX', DEFAULT_TTL_SECONDS);
      pipeline.zadd(userIndexKey(userId), score, id);
      touched.add(userId);
    }
    for (const userId of touched) pipeline.expire(userIndexKey(userId), indexTtlSeconds(DEFAULT_TTL_SECONDS));
    await execOrThrow(pipeline);
  }
}

/** Removes records (and their index entries) left over by a run. */
async function unseed(admin, entries) {
  for (let start = 0; start < entries.length; start += SEED_BATCH) {
    const pipeline = admin.pipeline();
    for (const { id, userId } of entries.slice(start, start + SEED_BATCH)) {
      pipeline.del(conversationKey(id));
      pipeline.zrem(userIndexKey(userId), id);
    }
    await execOrThrow(pipeline);
  }
}

async function countExisting(admin, ids) {
  if (ids.length === 0) return 0;
  return admin.exists(...ids.map((id) => conversationKey(id)));
}

async function execOrThrow(pipeline) {
  for (const [err] of await pipeline.exec()) if (err) throw err;
}

module.exports = { openStores, seed, unseed, countExisting, STORE_NAMES, IOREDIS_OPTIONS };
