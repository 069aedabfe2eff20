'use strict';
// The stores under test (ours and its peers: the same store written on
// ioredis and on node-redis), and a plain ioredis client that seeds and checks
// data off the clock (writing the layout every store shares, through the
// test-support key helpers).

const Redis = require('ioredis');
const { createClient } = require('redis');
const { RedisStore } = require('../..');
const {
  IoredisConversationStore,
  NodeRedisConversationStore,
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

/** What a team would write instead of adopting this package, by client. */
const PEER_LABELS = { ioredis: 'ioredis', nodeRedis: 'node-redis' };
const PEER_NAMES = Object.keys(PEER_LABELS);
const STORE_NAMES = ['ours', ...PEER_NAMES];
const STORE_LABELS = { ours: 'ours', ...PEER_LABELS };

/** Summary figures where more is better; for the others, less is. */
const HIGHER_IS_BETTER = new Set(['opsPerSec']);

/**
 * The best figure any peer reached, per figure (the most ops/s, the lowest
 * latency and CPU), and which peer reached it (`from`): ours must beat each
 * peer at its best, not an average of them.
 */
function bestOfPeers(cell) {
  const best = { from: {} };
  for (const key of Object.keys(cell[PEER_NAMES[0]])) {
    for (const peer of PEER_NAMES) {
      const value = cell[peer][key];
      if (!Number.isFinite(value)) continue;
      const better = !(key in best) || (HIGHER_IS_BETTER.has(key) ? value > best[key] : value < best[key]);
      if (better) {
        best[key] = value;
        best.from[key] = peer;
      }
    }
  }
  return best;
}

async function openStores(url) {
  const ours = new RedisStore({ url, allowPlaintext: true, logger: null });
  const ioredisClient = new Redis(url, IOREDIS_OPTIONS);
  // node-redis's defaults (it has no command timeout of its own), with the same connect timeout.
  const nodeRedisClient = createClient({ url, socket: { connectTimeout: COMMAND_TIMEOUT_MS } });
  const admin = new Redis(url, { commandTimeout: 60_000 });
  await Promise.all([ours.ping(), ioredisClient.ping(), nodeRedisClient.connect(), admin.ping()]);
  return {
    stores: {
      ours,
      ioredis: new IoredisConversationStore(ioredisClient),
      nodeRedis: new NodeRedisConversationStore(nodeRedisClient),
    },
    admin,
    async close() {
      await ours.close();
      ioredisClient.disconnect();
      nodeRedisClient.destroy();
      admin.disconnect();
    },
  };
}

/** Writes entries `{ id, userId, json, score }` as both stores would. */
async function seed(admin, entries) {
  await inBatches(entries, async (batch) => {
    const pipeline = admin.pipeline();
    const touched = new Set();
    for (const { id, userId, json, score } of batch) {
      pipeline.set(conversationKey(id), json, 'EX', DEFAULT_TTL_SECONDS);
      pipeline.zadd(userIndexKey(userId), score, id);
      touched.add(userId);
    }
    for (const userId of touched) pipeline.expire(userIndexKey(userId), indexTtlSeconds(DEFAULT_TTL_SECONDS));
    await execOrThrow(pipeline);
  });
}

/** Removes records (and their index entries) left over by a run. */
async function unseed(admin, entries) {
  await inBatches(entries, async (batch) => {
    const pipeline = admin.pipeline();
    for (const { id, userId } of batch) {
      pipeline.del(conversationKey(id));
      pipeline.zrem(userIndexKey(userId), id);
    }
    await execOrThrow(pipeline);
  });
}

/** How many of `ids` still have a record (in batches: a spread of a whole
 * run's ids would overflow the call stack). */
async function countExisting(admin, ids) {
  let existing = 0;
  await inBatches(ids, async (batch) => {
    existing += await admin.exists(...batch.map((id) => conversationKey(id)));
  });
  return existing;
}

/** `work` on each run of SEED_BATCH items, one after the other. */
async function inBatches(items, work) {
  for (let start = 0; start < items.length; start += SEED_BATCH) await work(items.slice(start, start + SEED_BATCH));
}

async function execOrThrow(pipeline) {
  for (const [err] of await pipeline.exec()) if (err) throw err;
}

module.exports = {
  openStores, seed, unseed, countExisting, bestOfPeers, STORE_NAMES, STORE_LABELS, PEER_NAMES, PEER_LABELS, IOREDIS_OPTIONS,
};
