// The same package from a CommonJS TypeScript file (compiled to `require`).
// Type-checked only, with consumer.mts.

import store = require('redis-conversation-store');

const memory: store.ConversationStore = new store.MemoryStore({ logger: console });
const redis = store.createConversationStore(process.env);
const status: store.StoreStatus = redis.status;

async function check(err: unknown): Promise<number> {
  await memory.set('id', { externalId: 'id', history: [], userId: 'u', tenantId: 't', createdAt: '', updatedAt: '', status: 'active' });
  if (store.isRedisError(err) && err.code === 'STORE_UNAVAILABLE') return 503;
  // @ts-expect-error no such export
  void store._native;
  return status === 'ready' ? 200 : 503;
}

export = check;
