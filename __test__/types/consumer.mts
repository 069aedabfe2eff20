// A strict TypeScript consumer shaped like the chat server (Express, NodeNext,
// ESM importing this CommonJS package). It is never run: `tsc --noEmit` over
// it is the test (see __test__/typings.test.js). Every `@ts-expect-error`
// line must really be an error, or tsc fails on the unused directive.

import { z } from 'zod';
import {
  RedisStore,
  MemoryStore,
  createConversationStore,
  isRedisError,
  RedisError,
  StoreInputError,
  StoreConfigError,
  StoreDataError,
  StoreConflictError,
  type ConversationStore as PkgStore,
  type StoreStatus,
  type ListOptions,
  type StoreLogger,
  type TlsOptions,
  type RedisStoreOptions,
  type MemoryStoreOptions,
  type StoredConversation as PkgStoredConversation,
  type RedisErrorCode,
  type StoreStats,
  type StoreOperation,
  type ReconnectingEvent,
  type OperationTraceContext,
  type CreateStoreOptions,
} from 'redis-conversation-store';
import diagnosticsChannel from 'node:diagnostics_channel';
// @ts-expect-error the shared base class is not part of the module
import type { StoreBase } from 'redis-conversation-store';

// --- What the server already has (as docs/contract.md describes it; not imported) ---

const MessageSchema = z.object({
  role: z.enum(['user', 'assistant', 'system']),
  content: z.string(),
});

const StoredConversationSchema = z.object({
  externalId: z.string().uuid(),
  sdkConversationRef: z.unknown().optional(),
  history: z.array(MessageSchema).default([]),
  userId: z.string().min(1),
  tenantId: z.string(),
  createdAt: z.string().datetime(),
  updatedAt: z.string().datetime(),
  status: z.enum(['active', 'completed', 'abandoned']).default('active'),
  workflowId: z.string().optional(),
  currentStep: z.string().optional(),
  stepData: z.record(z.unknown()).optional(),
  metadata: z.record(z.unknown()).optional(),
});
type StoredConversation = z.infer<typeof StoredConversationSchema>;

interface ConversationStore {
  get(id: string): Promise<StoredConversation | undefined>;
  set(id: string, conversation: StoredConversation): Promise<void>;
  delete(id: string): Promise<void>;
  listByUser(userId: string): Promise<StoredConversation[]>; // newest first, at most 50
}

// --- Construction with every option ---

const logger: StoreLogger = {
  info: (message) => console.info(message),
  warn: (message) => console.warn(message),
  error: (message) => console.error(message),
};
const tls: TlsOptions = {
  ca: Buffer.from('-----BEGIN CERTIFICATE-----\n...'),
  cert: '-----BEGIN CERTIFICATE-----\n...',
  key: Buffer.from('-----BEGIN PRIVATE KEY-----\n...'),
  servername: 'cache.example.net',
};

const a: ConversationStore = new RedisStore({
  url: process.env.REDIS_URL,
  ttlSeconds: 86_400,
  commandTimeoutMs: 5_000,
  connectTimeoutMs: 5_000,
  keyPrefix: 'chat:',
  allowPlaintext: false,
  tls,
  listLimit: 50,
  excludeFields: ['sdkConversationRef'],
  maxRecordBytes: 1_048_576,
  slidingExpiry: false,
  reconnectMinDelayMs: 100,
  reconnectMaxDelayMs: 5_000,
  heartbeatIntervalMs: 10_000,
  connectionName: 'chat-api-prod',
  waitReplicas: 1,
  waitTimeoutMs: 2_500,
  schema: StoredConversationSchema,
  logger,
});

// @ts-expect-error a connection name is a string
new RedisStore({ url: 'rediss://cache.example:6380', connectionName: true });

// The same class on a Redis Cluster: only the options change.
const onCluster: ConversationStore = new RedisStore({
  url: 'rediss://:pw@node-1.example:6380',
  cluster: true,
  clusterNodes: ['rediss://:pw@node-2.example:6380'],
  tls: { ca: tls.ca },
  schema: StoredConversationSchema,
});
void onCluster;

const b: ConversationStore = new MemoryStore({
  ttlSeconds: 3_600,
  listLimit: 20,
  excludeFields: ['sdkConversationRef'],
  maxRecordBytes: 65_536,
  slidingExpiry: true,
  schema: StoredConversationSchema,
  logger: null,
});

// No schema: the record type comes from the declared type alone.
const c: ConversationStore = new RedisStore({ url: 'rediss://cache.example.net:6380' });
const d: ConversationStore = new MemoryStore();
// The package's own interface and default record type.
const e: PkgStore = new MemoryStore({ logger: false });
const f: PkgStore<StoredConversation> = new RedisStore({ url: 'rediss://h', schema: StoredConversationSchema });
// An interface record type (no index signature) fits too.
interface Note {
  userId: string;
  updatedAt: string;
  text: string;
}
const g: PkgStore<Note> = new MemoryStore<Note>();
// An options object built elsewhere, and console as the logger.
const memoryOptions: MemoryStoreOptions<StoredConversation> = { schema: StoredConversationSchema, logger: console };
const redisOptions: RedisStoreOptions = { url: 'redis://localhost:6379', allowPlaintext: true, logger: console };
void [b, c, d, e, f, g, new MemoryStore(memoryOptions), new RedisStore(redisOptions)];

// --- Every method ---

export async function useStore(): Promise<void> {
  const store = new RedisStore({ url: 'rediss://h', schema: StoredConversationSchema });
  const record: StoredConversation = {
    externalId: '6f1c0d7e-1b7a-4a55-9d4a-3f1a2b3c4d5e',
    sdkConversationRef: { live: true },
    history: [{ role: 'user', content: 'hi' }],
    userId: 'u1',
    tenantId: 't1',
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    status: 'active',
  };
  await store.set(record.externalId, record);
  const got = await store.get(record.externalId);
  if (got) {
    const status: 'active' | 'completed' | 'abandoned' = got.status;
    void status;
  }
  // @ts-expect-error get may resolve undefined
  const sure: StoredConversation = await store.get('x');
  void sure;

  const all: StoredConversation[] = await store.listByUser('u1');
  const page: StoredConversation[] = await store.listByUser('u1', { limit: 10, offset: 20 });
  const light = await store.listByUser('u1', { fields: ['externalId', 'updatedAt', 'status'], limit: 5 });
  for (const item of light) {
    const id: string | undefined = item.externalId;
    void id;
    // @ts-expect-error a fields listing holds only the fields asked for
    void item.history;
  }
  // @ts-expect-error a fields listing is not whole records
  const notWhole: StoredConversation[] = await store.listByUser('u1', { fields: ['externalId'] });
  // @ts-expect-error only fields the record type has
  await store.listByUser('u1', { fields: ['nope'] });
  const listOptions: ListOptions<StoredConversation> = { limit: 1 };
  const mixed = await store.listByUser('u1', listOptions);
  void [all, page, notWhole, mixed];

  // Concurrent edits and per-call options.
  const appended = await store.update(
    record.externalId,
    async (current) => (current ? { ...current, history: [...current.history, { role: 'user', content: 'hi' }] } : undefined),
    { retries: 3, signal: AbortSignal.timeout(1000) },
  );
  // @ts-expect-error update may write nothing and resolve undefined
  const surelyWritten: StoredConversation = appended;
  void surelyWritten;
  await store.set(record.externalId, record, { ifUpdatedAt: record.updatedAt, timeoutMs: 200 });
  await store.set(record.externalId, record, { ifUpdatedAt: null });
  // @ts-expect-error ifUpdatedAt is the stored text or null
  await store.set(record.externalId, record, { ifUpdatedAt: new Date() });
  await store.get(record.externalId, { signal: new AbortController().signal });
  const lightCancellable = await store.listByUser('u1', { fields: ['externalId'], signal: AbortSignal.timeout(50) });
  // @ts-expect-error a fields listing with a signal is still not whole records
  const notWholeEither: StoredConversation[] = lightCancellable;
  void notWholeEither;
  // @ts-expect-error a timeout is a number of milliseconds
  await store.delete(record.externalId, { timeoutMs: '100' });

  await store.delete(record.externalId);

  const state: StoreStatus = store.status;
  const health: 'connected' | 'disconnected' = store.status === 'ready' ? 'connected' : 'disconnected';
  // @ts-expect-error not a status this store reports
  if (store.status === 'connected') console.log('never');
  const rtt: number = await store.ping();
  const shown: string = store.redactedUrl;
  await store.close();
  void [state, health, rtt, shown];

  const memory = new MemoryStore<StoredConversation>();
  const memoryStatus: StoreStatus = memory.status;
  await memory.ping();
  await memory.close();
  // @ts-expect-error MemoryStore has no URL
  void memory.redactedUrl;
  void memoryStatus;

  // @ts-expect-error ids are strings
  await store.set(42, record);
  // @ts-expect-error the record must match the store's type
  await store.set('x', { userId: 'u1' });
  // @ts-expect-error _native is internal
  void store._native;
}

// --- The factory ---

const fromEnv: ConversationStore = createConversationStore(process.env, { schema: StoredConversationSchema });
const fromEnvDefault = createConversationStore();
const fromEnvWithOptions = createConversationStore({ REDIS_URL: 'rediss://h', REDIS_TTL: '60' }, { logger, keyPrefix: 'x:' });
const defaultStore: PkgStore = fromEnvDefault;
const factoryStatus: StoreStatus = fromEnvWithOptions.status;
if (fromEnvDefault instanceof RedisStore) {
  const url: string = fromEnvDefault.redactedUrl;
  void url;
}
void [fromEnv, defaultStore, factoryStatus];

// --- Running in production: events, ready(), stats(), tracing, shutdown ---

export async function production(store: RedisStore<StoredConversation>, memory: MemoryStore<StoredConversation>) {
  store.on('ready', () => console.info('ready'));
  store.on('reconnecting', ({ attempt, delayMs, error }: ReconnectingEvent) => {
    const code: RedisErrorCode = error.code;
    void [attempt + delayMs, code];
  });
  store.on('error', (err) => {
    const code: RedisErrorCode = err.code;
    void code;
  });
  store.once('end', () => console.info('end'));
  memory.on('end', () => {});
  // @ts-expect-error 'ready' passes no argument
  store.on('ready', (x: string) => x);
  // @ts-expect-error not an event of the store
  store.on('connect', () => {});
  await store.ready();
  await memory.ready();
  const stats: StoreStats = store.stats();
  const op: StoreOperation = 'listByUser';
  const gets: number = stats.operations.get.started + stats.operations[op].failed;
  const since: number | null = stats.msSinceReady;
  const perCode: number | undefined = stats.failuresByCode.STORE_TIMEOUT;
  void [gets, since, perCode, stats.inFlight, stats.reconnections, memory.stats().inFlight];
  // @ts-expect-error not an operation
  void stats.operations.scan;
  const channel = diagnosticsChannel.tracingChannel<string, OperationTraceContext>('redis-conversation-store:operation');
  channel.subscribe({
    start: (context) => void context.operation,
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (context) => void context.result,
    error: (context) => void context.error,
  });
  const required: CreateStoreOptions<StoredConversation> = { required: true, schema: StoredConversationSchema };
  const guarded = createConversationStore(process.env, required);
  await store.close();
  store.destroy();
  const nothing: void = memory.destroy();
  void [guarded, nothing];
}

// --- Errors, as the route handlers map them ---

export function toHttpStatus(err: unknown): number {
  if (err instanceof RedisError && err.code === 'STORE_TIMEOUT') return 504;
  if (err instanceof RedisError && err.code === 'STORE_NOT_REPLICATED') return 503;
  if (isRedisError(err)) {
    const code: RedisErrorCode = err.code;
    const name: string = err.name;
    void [code, name];
    return 503;
  }
  if (err instanceof StoreInputError) {
    if (err.code === 'STORE_RECORD_TOO_LARGE') return 413;
    // @ts-expect-error not an input error code
    if (err.code === 'STORE_TIMEOUT') return 0;
    const asTypeError: TypeError = err;
    void asTypeError;
    return 400;
  }
  if (err instanceof StoreConfigError && err.code === 'STORE_INVALID_CONFIG') return 500;
  if (err instanceof StoreDataError && err.code === 'STORE_CORRUPT_RECORD') return 502;
  if (err instanceof StoreConflictError && err.code === 'STORE_CONFLICT') return 409;
  return 500;
}

// --- Wrong things are rejected ---

// @ts-expect-error ttlSeconds is a number
new RedisStore({ url: 'rediss://h', ttlSeconds: '86400' });
// @ts-expect-error waitReplicas is a number
new RedisStore({ url: 'rediss://h', waitReplicas: true });
// @ts-expect-error url is a string
new RedisStore({ url: 1 });
// @ts-expect-error RedisStore needs options (the url)
new RedisStore();
// @ts-expect-error Redis-only options are not MemoryStore options
new MemoryStore({ commandTimeoutMs: 5_000 });
// @ts-expect-error tls material is PEM text or a Buffer
new RedisStore({ url: 'rediss://h', tls: { ca: 42 } });
// @ts-expect-error a logger needs info/warn/error
new RedisStore({ url: 'rediss://h', logger: { debug: (m: string) => m } });
// @ts-expect-error schema must have parse()
new MemoryStore({ schema: { validate: (v: unknown) => v } });
// @ts-expect-error a store whose records are not the server's records
const wrong: ConversationStore = new MemoryStore<{ userId: string; other: number }>();
// @ts-expect-error record types need a userId
new MemoryStore<{ title: string }>();
// @ts-expect-error not a RedisError code
const badCode: RedisErrorCode = 'STORE_INVALID_ID';
// @ts-expect-error the default record type needs its required fields
const partialDefault: PkgStoredConversation = { userId: 'u1' };
void [wrong, badCode, partialDefault, a];
export type { StoreBase };
