/**
 * redis-conversation-store — a Redis-backed conversation store for Node.js chat
 * servers, written in Rust (napi-rs). It is a drop-in replacement for an
 * ioredis-based `ConversationStore` (same key layout, byte-compatible data):
 * atomic writes, bounded timeouts, self-healing connections, and errors a
 * route handler can map to 503 with `isRedisError`.
 *
 * - `RedisStore`: the Redis store; `rediss://` (TLS, verified) unless plaintext is opted into.
 * - `MemoryStore`: the same contract in process memory, for development and tests.
 * - `createConversationStore(env)`: `REDIS_URL` set → `RedisStore`, else `MemoryStore`.
 *
 * These typings are hand-written for the CommonJS module `index.js`; they work
 * from `require` and from ESM (`import { RedisStore } from 'redis-conversation-store'`,
 * `module: NodeNext`).
 */

/// <reference types="node" />

import { EventEmitter } from 'node:events';

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/**
 * The default record shape: the chat server's `StoredConversation`. Fields the
 * store does not know are allowed and kept as they are.
 *
 * Most apps pass their own type instead, usually by giving a Zod schema as the
 * `schema` option (the record type is then `z.infer<typeof schema>`).
 */
export interface StoredConversation {
  /** The conversation's public id (a uuid). */
  externalId: string;
  /** A live SDK object. Never persisted (see `excludeFields`): absent on records read back. */
  sdkConversationRef?: unknown;
  /** The messages. */
  history: unknown[];
  /** The owner; the store indexes records by it. Required, non-empty. */
  userId: string;
  tenantId: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601; orders `listByUser` (newest first). Missing means "now" when written. */
  updatedAt: string;
  status: string;
  workflowId?: string;
  currentStep?: string;
  stepData?: unknown;
  metadata?: unknown;
  /** Any other field is stored and read back unchanged. */
  [field: string]: unknown;
}

/**
 * What every record type must have: a `userId` (the store indexes by it) and,
 * optionally, an `updatedAt` (an ISO 8601 string, or a `Date`, which JSON
 * turns into one). A type alias such as `z.infer<typeof Schema>` or an
 * interface both fit; no index signature is needed.
 */
export interface ConversationRecord {
  userId: string;
  updatedAt?: string | Date;
}

/**
 * The interface the chat server already declares. `RedisStore<T>` and
 * `MemoryStore<T>` are assignable to it.
 */
export interface ConversationStore<T = StoredConversation> {
  get(id: string): Promise<T | undefined>;
  set(id: string, conversation: T): Promise<void>;
  delete(id: string): Promise<void>;
  /** Newest first, at most the list limit (default 50). */
  listByUser(userId: string): Promise<T[]>;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/**
 * Connection state, read synchronously (e.g. by a `/health` route).
 * `reconnecting`: the connection was lost and attempts continue, or a call
 * got no answer (timeout, I/O error) and a PING is checking the connection
 * (back to `ready` as soon as it answers).
 */
export type StoreStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed';

/** Where `[STORE]` lines go. `console` fits; so do pino and winston loggers. */
export interface StoreLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Anything with `parse(value)` that returns the record or throws, e.g. a Zod schema. */
export interface RecordSchema<T> {
  parse(value: unknown): T;
}

/** TLS material for `rediss://` connections. PEM text, as a string or a Buffer. */
export interface TlsOptions {
  /** CA certificate(s), PEM. Default: the system's trusted roots. */
  ca?: string | Buffer | undefined;
  /** Client certificate, PEM (mutual TLS). Needs `key`. Default: none. */
  cert?: string | Buffer | undefined;
  /** Client private key, PEM (mutual TLS). Needs `cert`. Default: none. */
  key?: string | Buffer | undefined;
  /** The name the server certificate must carry, when it differs from the URL's host. Default: the URL's host. */
  servername?: string | undefined;
}

/** Options both stores take. */
export interface MemoryStoreOptions<T = StoredConversation> {
  /** Seconds a record lives after its last write (the user index: this + 3600). Default `86400`. Env: `REDIS_TTL`. */
  ttlSeconds?: number | undefined;
  /** Most records `listByUser` returns when no `limit` is given (1–1000). Default `50`. */
  listLimit?: number | undefined;
  /** Top-level fields never persisted. Default `['sdkConversationRef']`. Cannot contain `userId` or `updatedAt`. */
  excludeFields?: readonly string[] | undefined;
  /** Largest record, in bytes of JSON, `set` accepts. Default `1048576` (1 MiB). */
  maxRecordBytes?: number | undefined;
  /** Refresh a record's TTL when it is read. Default `false`. */
  slidingExpiry?: boolean | undefined;
  /** Applied to every record read back by `get` and `listByUser` (not to `fields` listings). Default: none. */
  schema?: RecordSchema<T> | undefined;
  /** Where `[STORE]` lines go; `null` or `false` silences them. Default `console`. */
  logger?: StoreLogger | null | false | undefined;
}

/** Options of `RedisStore`. Every one is checked at construction (`StoreConfigError`). */
export interface RedisStoreOptions<T = StoredConversation> extends MemoryStoreOptions<T> {
  /**
   * `rediss://[user:password@]host[:port][/db]`. Plain `redis://` is
   * refused unless `allowPlaintext` is `true`. Not with `sentinels`.
   * Default: required unless `sentinels`. Env: `REDIS_URL`.
   */
  url?: string | undefined;
  /** Every command settles (or rejects with `STORE_TIMEOUT`) within this many ms. Default `5000`. Env: `REDIS_TIMEOUT`. */
  commandTimeoutMs?: number | undefined;
  /** Time allowed to open a connection, in ms. Default `5000`. Env: `REDIS_CONNECT_TIMEOUT`. */
  connectTimeoutMs?: number | undefined;
  /** TLS material for `rediss://` (CA, client cert and key, server name). Default: system roots, no client cert. */
  tls?: TlsOptions | undefined;
  /** Allow plaintext `redis://` URLs (e.g. a local development server). Default `false`. Env: `REDIS_ALLOW_PLAINTEXT`. */
  allowPlaintext?: boolean | undefined;
  /** Prepended to every key (`<prefix>conv:<id>`, `<prefix>user:<userId>:conversations`). Default `''`. Env: `REDIS_KEY_PREFIX`. */
  keyPrefix?: string | undefined;
  /** First reconnection delay, in ms; later ones double (with jitter). Default `100`. */
  reconnectMinDelayMs?: number | undefined;
  /** Longest reconnection delay, in ms. Reconnection never gives up. Default `5000`. */
  reconnectMaxDelayMs?: number | undefined;
  /**
   * How often a quiet connection is checked with a PING, in ms (one cut while
   * idle, e.g. by a cloud load balancer, is replaced before a call needs it).
   * Default `10000`.
   */
  heartbeatIntervalMs?: number | undefined;
  /**
   * The name every connection gets with `CLIENT SETNAME` (cluster nodes and
   * the primary the sentinels name included), as `CLIENT LIST` and a cloud's
   * connection metrics show it: printable ASCII without spaces; `''` sends
   * none. Default `'redis-conversation-store'`. Env: `REDIS_CONNECTION_NAME`.
   */
  connectionName?: string | undefined;
  /**
   * Treat `url` as a seed node of a Redis Cluster (see the README for the
   * consistency each operation keeps there). Default `false`.
   * Env: `REDIS_CLUSTER=true` (then `REDIS_URL` may list seeds, comma-separated).
   */
  cluster?: boolean | undefined;
  /** More seed nodes of the cluster, same scheme and credentials as `url`. Needs `cluster: true`. Default `[]`. */
  clusterNodes?: string[] | undefined;
  /**
   * Redis Sentinel: the URLs of the sentinels to ask for the primary, instead
   * of `url` (`redis://` or `rediss://`, all the same scheme). Their
   * credentials, db and TLS apply to the data nodes too. A sentinel that is
   * down is skipped. Not with `url` or `cluster`. Default: none.
   * Env: `REDIS_SENTINELS` (comma-separated).
   */
  sentinels?: string[] | undefined;
  /** The master group name the sentinels monitor (e.g. `mymaster`). Default: required with `sentinels`. Env: `REDIS_SENTINEL_NAME`. */
  sentinelName?: string | undefined;
  /**
   * The sentinels' password when it differs from the data nodes' (the one in
   * the sentinel URLs); `''` when the sentinels need none.
   * Default: the password in the sentinel URLs.
   */
  sentinelPassword?: string | undefined;
  /**
   * Redis ACL user name; overrides the one in the URL(s). Not with
   * `credentialsProvider`. Default: the URL's user. Env: `REDIS_USERNAME`.
   */
  username?: string | undefined;
  /**
   * Password; overrides the one in the URL(s), and is redacted like it
   * everywhere. Not with `credentialsProvider`. Default: the URL's password.
   * Env: `REDIS_PASSWORD`.
   */
  password?: string | undefined;
  /**
   * Credentials that rotate, in the shapes `@redis/client` defines (an
   * `@redis/entraid` provider is passed unchanged). An async provider is asked
   * for every new connection; a streaming one is subscribed to once, and each
   * `onNext` re-authenticates the live connections in place (every cluster
   * node). `close()` disposes the subscription. Default: none.
   */
  credentialsProvider?: CredentialsProvider | undefined;
  /**
   * Every write (`set`, conditional `set`, `update`, `delete`) resolves only
   * once this many replicas have it: `WAIT` follows the write in the same
   * round trip, and fewer acknowledgements reject with `STORE_NOT_REPLICATED`.
   * `0` sends no `WAIT`. Default `0`. Env: `REDIS_WAIT_REPLICAS`.
   */
  waitReplicas?: number | undefined;
  /**
   * How long a write waits for `waitReplicas` replicas, in ms; at most nine
   * tenths of `commandTimeoutMs` (a call's `timeoutMs` caps it at half of that).
   * Default: half of `commandTimeoutMs`. Env: `REDIS_WAIT_TIMEOUT`.
   */
  waitTimeoutMs?: number | undefined;
}

/** Credentials a provider gives: `username` defaults to the `default` user. */
export interface BasicAuth {
  username?: string | undefined;
  password?: string | undefined;
}

/** `@redis/client`'s async provider: asked once per new connection. */
export interface AsyncCredentialsProvider {
  readonly type: 'async-credentials-provider';
  credentials: () => Promise<BasicAuth>;
}

/** What a streaming provider calls with new credentials, or on a failed refresh. */
export interface StreamingCredentialsListener<T> {
  onNext: (credentials: T) => void;
  onError: (error: Error) => void;
}

/** Ends a streaming provider's subscription. */
export interface Disposable {
  dispose: () => void;
}

/** `@redis/client`'s streaming provider: subscribed to once, pushes each rotation. */
export interface StreamingCredentialsProvider {
  readonly type: 'streaming-credentials-provider';
  subscribe: (listener: StreamingCredentialsListener<BasicAuth>) => Promise<[BasicAuth, Disposable]>;
  /** Called with each failure: `onError`, a rejected `subscribe`, an `AUTH` the server refused. */
  onReAuthenticationError?: ((error: Error) => void) | undefined;
}

export type CredentialsProvider = AsyncCredentialsProvider | StreamingCredentialsProvider;

/**
 * Per-call options, the last argument of every method (`listByUser` takes
 * them in its options object).
 */
export interface CallOptions {
  /**
   * Aborts the call: one already aborted rejects at once with
   * `signal.reason` and sends nothing; an abort in flight rejects at once
   * (an aborted write may still have been applied).
   */
  signal?: AbortSignal | undefined;
  /** Replaces `commandTimeoutMs` for this call (`STORE_TIMEOUT`), 1–2147483647 ms. */
  timeoutMs?: number | undefined;
}

/** Options of a conditional `set`. */
export interface SetOptions extends CallOptions {
  /**
   * Write only if the stored record's `updatedAt` is exactly this text, or,
   * with `null`, only if no record is stored; otherwise reject with
   * `StoreConflictError` and write nothing.
   */
  ifUpdatedAt?: string | null | undefined;
}

/** Options of `update`. */
export interface UpdateOptions extends CallOptions {
  /** How many times to read again and call `fn` again after a conflict. Default `5`. */
  retries?: number | undefined;
}

/** Paging and shaping of `listByUser`. */
export interface ListOptions<T = StoredConversation> extends CallOptions {
  /** Most records to return (1–1000). Default: the store's `listLimit` (50). */
  limit?: number | undefined;
  /** Records to skip, newest first. Default `0`. */
  offset?: number | undefined;
  /**
   * Only these top-level fields of each record (a light listing). The schema is
   * not applied to such partial records, so each field may be missing.
   */
  fields?: ReadonlyArray<keyof T & string> | undefined;
}

// ---------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------

/** The public operations, as `stats()` and the trace context name them. */
export type StoreOperation = 'get' | 'set' | 'update' | 'delete' | 'listByUser' | 'ping';

/** What `store.stats()` returns: counters for a `/metrics` or `/health` route. */
export interface StoreStats {
  /** Calls started and failed (rejected), per operation (`update` counts once, not per read and write). */
  operations: Record<StoreOperation, { started: number; failed: number }>;
  /** Failed calls per error `code` (else the error's `name`, e.g. `AbortError`). */
  failuresByCode: Record<string, number>;
  /** Calls started and not yet settled. */
  inFlight: number;
  /** Times the connection came back after being lost (the first connection is not counted). */
  reconnections: number;
  /** Milliseconds since the store was last ready: `0` while it is, `null` if it never was. */
  msSinceReady: number | null;
}

/** The payload of `'reconnecting'`. */
export interface ReconnectingEvent {
  /** The attempt about to be made: 1 for the first attempt after a loss (the first connection was attempt 1). */
  attempt: number;
  /** Milliseconds until that attempt. */
  delayMs: number;
  /** The failure that led to it. */
  error: RedisError;
}

/** The events a store emits, with their arguments. */
export interface StoreEvents {
  /**
   * A connection became usable: the first and every reconnection, and a
   * connection that stopped answering once it answers again (`RedisStore` only).
   */
  ready: [];
  /** Before each retry (`RedisStore` only). */
  reconnecting: [event: ReconnectingEvent];
  /**
   * A connection-level failure: lost, refused, TLS, auth (`RedisStore` only).
   * With no listener it is not thrown: it never crashes the process.
   */
  error: [error: RedisError];
  /** Once, after `close()` or `destroy()`; nothing is emitted after it. */
  end: [];
}

/**
 * The context published on the `diagnostics_channel` TracingChannel
 * `redis-conversation-store:operation` for every operation (`tracePromise`:
 * `start`, `end`, `asyncStart`, `asyncEnd`, `error`). `result` or `error`
 * are added when the call settles.
 */
export interface OperationTraceContext {
  operation: StoreOperation;
  /** `get`, `set`, `update`, `delete`. */
  id?: unknown;
  /** `listByUser`. */
  userId?: unknown;
  /** The store's URL with any password replaced by `***` (`undefined` for a `MemoryStore`). */
  redactedUrl: string | undefined;
  result?: unknown;
  error?: unknown;
}

declare abstract class StoreBase<T> extends EventEmitter implements ConversationStore<T> {
  on<K extends keyof StoreEvents>(event: K, listener: (...args: StoreEvents[K]) => void): this;
  once<K extends keyof StoreEvents>(event: K, listener: (...args: StoreEvents[K]) => void): this;
  off<K extends keyof StoreEvents>(event: K, listener: (...args: StoreEvents[K]) => void): this;
  addListener<K extends keyof StoreEvents>(event: K, listener: (...args: StoreEvents[K]) => void): this;
  removeListener<K extends keyof StoreEvents>(event: K, listener: (...args: StoreEvents[K]) => void): this;
  emit<K extends keyof StoreEvents>(event: K, ...args: StoreEvents[K]): boolean;
  /**
   * Resolves once the store is ready (at once if it is). A `RedisStore`
   * rejects with a `RedisError` if it is not ready within `connectTimeoutMs`
   * (it keeps trying), and with `STORE_CLOSED` once closing.
   */
  ready(): Promise<void>;
  /** Counters, read synchronously and cheaply. */
  stats(): StoreStats;
  /**
   * Graceful: new calls reject with `STORE_CLOSED` at once; resolves once the
   * calls in flight have settled (each within its own timeout) and the
   * connection is closed; then `'end'` is emitted. Idempotent.
   */
  close(): Promise<void>;
  /** Immediate: calls in flight reject with `STORE_CLOSED` at once; `'end'` follows. */
  destroy(): void;
  /**
   * The record, or `undefined` when it is missing or expired. Rejects with
   * `StoreDataError` when the stored record is not JSON or the schema rejects it.
   */
  get(id: string, options?: CallOptions): Promise<T | undefined>;
  /**
   * Writes the record and its user-index entry atomically (fields in
   * `excludeFields` are dropped). Rejects with `StoreInputError` on bad input,
   * writing nothing. With `ifUpdatedAt`, writes only over that version
   * (else `StoreConflictError`, nothing written).
   */
  set(id: string, conversation: T, options?: SetOptions): Promise<void>;
  /**
   * Reads the record, calls `fn(current)` (`undefined` when there is none;
   * may be async) and writes what it returns only if the record did not
   * change meanwhile; on a conflict, reads and calls `fn` again, up to
   * `retries` times, then rejects with `StoreConflictError`. The written
   * record gets a fresh `updatedAt`, strictly later than the one read, unless
   * `fn` sets its own. Resolves the record written, or `undefined` when `fn`
   * returned `undefined` (nothing written).
   */
  update(id: string, fn: (current: T | undefined) => T | undefined | Promise<T | undefined>, options?: UpdateOptions): Promise<T | undefined>;
  /** Removes the record and its index entry; idempotent. */
  delete(id: string, options?: CallOptions): Promise<void>;
  /**
   * The user's records, newest first by `updatedAt`. Unreadable records are
   * skipped with a `[STORE]` warning.
   */
  listByUser(userId: string, options?: ListOptions<T> & { fields?: undefined }): Promise<T[]>;
  /** With `fields`: only those fields of each record, unvalidated by the schema. */
  listByUser<K extends keyof T & string>(
    userId: string,
    options: ListOptions<T> & { fields: readonly K[] },
  ): Promise<Array<Partial<Pick<T, K>>>>;
  listByUser(userId: string, options?: ListOptions<T>): Promise<Array<T | Partial<T>>>;
  /** Measures one round trip, in milliseconds. */
  ping(options?: CallOptions): Promise<number>;
}

/**
 * The Redis-backed store. Connects in the background at construction; bad
 * options throw `StoreConfigError` right away.
 *
 * @example
 * const store: ConversationStore = new RedisStore({ url: process.env.REDIS_URL, schema: StoredConversationSchema });
 */
export declare class RedisStore<T extends ConversationRecord = StoredConversation> extends StoreBase<T> {
  constructor(options: RedisStoreOptions<T>);
  /**
   * `connecting` | `ready` | `reconnecting` | `closed`, read synchronously;
   * `reconnecting` also while a connection that left a call unanswered is
   * being checked.
   */
  get status(): StoreStatus;
  /** The Redis URL with any password replaced by `***`. */
  get redactedUrl(): string;
  /** One round trip to Redis (`PING`); resolves its duration in milliseconds. */
  ping(options?: CallOptions): Promise<number>;
}

/** The same contract in process memory (same TTL, index and ordering rules). */
export declare class MemoryStore<T extends ConversationRecord = StoredConversation> extends StoreBase<T> {
  constructor(options?: MemoryStoreOptions<T>);
  /** `ready`, or `closed` after `close()`. */
  get status(): StoreStatus;
  /** Resolves `0`. */
  ping(options?: CallOptions): Promise<number>;
}

/** The factory's options: a store's, and `required`. */
export interface CreateStoreOptions<T = StoredConversation> extends RedisStoreOptions<T> {
  /**
   * Throw `StoreConfigError` instead of falling back to `MemoryStore` when
   * neither `REDIS_URL` nor `REDIS_SENTINELS` is set (as `REDIS_REQUIRED=true`
   * does). Recommended in production.
   */
  required?: boolean;
}

/**
 * The factory: `REDIS_URL` (or `REDIS_SENTINELS` with `REDIS_SENTINEL_NAME`)
 * set → a `RedisStore` configured from them, `REDIS_TTL`, `REDIS_TIMEOUT`,
 * `REDIS_CONNECT_TIMEOUT`, `REDIS_KEY_PREFIX`, `REDIS_ALLOW_PLAINTEXT`,
 * `REDIS_CLUSTER`, `REDIS_CONNECTION_NAME` (then `options`, which win); neither set → a
 * `MemoryStore` (with `REDIS_TTL`, then `options`; Redis-only options are then
 * ignored, `url` included), unless `REDIS_REQUIRED=true` or `required: true`,
 * which throw `StoreConfigError` instead. Logs its choice with the `[STORE]` prefix. A
 * malformed variable throws `StoreConfigError` naming it.
 *
 * @param env Default `process.env`.
 */
export declare function createConversationStore<T extends ConversationRecord = StoredConversation>(
  env?: Readonly<Record<string, string | undefined>> | null,
  options?: CreateStoreOptions<T>,
): RedisStore<T> | MemoryStore<T>;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Why Redis failed. */
export type RedisErrorCode =
  /** Unreachable: refused, reset, DNS, still reconnecting, or a demoted primary (`READONLY`). */
  | 'STORE_UNAVAILABLE'
  /** No answer within `commandTimeoutMs` (or the call's `timeoutMs`). */
  | 'STORE_TIMEOUT'
  /** Authentication or authorization refused (password, ACL). */
  | 'STORE_AUTH'
  /** The TLS handshake failed (e.g. certificate not trusted). */
  | 'STORE_TLS'
  /** Redis answered with an error. */
  | 'STORE_REPLY'
  /** The store was closed. */
  | 'STORE_CLOSED'
  /** `waitReplicas`: applied on the primary, but fewer replicas confirmed it within `waitTimeoutMs`. */
  | 'STORE_NOT_REPLICATED';

/** What was wrong with the caller's input. */
export type StoreInputErrorCode =
  | 'STORE_INVALID_ID'
  | 'STORE_INVALID_USER_ID'
  | 'STORE_INVALID_UPDATED_AT'
  | 'STORE_INVALID_RECORD'
  | 'STORE_RECORD_TOO_LARGE'
  | 'STORE_INVALID_ARGUMENT';

export type StoreConfigErrorCode = 'STORE_INVALID_CONFIG';

export type StoreDataErrorCode = 'STORE_CORRUPT_RECORD' | 'STORE_RESPONSE_TOO_LARGE';

export type StoreConflictErrorCode = 'STORE_CONFLICT';

/** Any `code` the store's errors carry. */
export type StoreErrorCode =
  | RedisErrorCode
  | StoreInputErrorCode
  | StoreConfigErrorCode
  | StoreDataErrorCode
  | StoreConflictErrorCode;

/** Redis was unreachable, slow, refused TLS or auth, or answered an error (answer 503). */
export declare class RedisError extends Error {
  constructor(code: RedisErrorCode, message: string, options?: { cause?: unknown });
  name: 'RedisError';
  code: RedisErrorCode;
}

/** The caller passed bad input; nothing was written (answer 4xx). */
export declare class StoreInputError extends TypeError {
  constructor(code: StoreInputErrorCode, message: string, options?: { cause?: unknown });
  name: 'StoreInputError';
  code: StoreInputErrorCode;
}

/** The store was configured wrongly; thrown at construction. */
export declare class StoreConfigError extends TypeError {
  constructor(code: StoreConfigErrorCode, message: string, options?: { cause?: unknown });
  name: 'StoreConfigError';
  code: StoreConfigErrorCode;
}

/** A stored record could not be read back (not JSON, or the schema rejected it); the message names the id. */
export declare class StoreDataError extends Error {
  constructor(code: StoreDataErrorCode, message: string, options?: { cause?: unknown });
  name: 'StoreDataError';
  code: StoreDataErrorCode;
}

/**
 * A conditional write (`set` with `ifUpdatedAt`, or `update` out of retries)
 * found the record changed by another writer; nothing was written. Not a
 * `RedisError` (answer 409).
 */
export declare class StoreConflictError extends Error {
  constructor(code: StoreConflictErrorCode, message: string, options?: { cause?: unknown });
  name: 'StoreConflictError';
  code: StoreConflictErrorCode;
}

/**
 * The chat server's own check: true for store-unavailable failures (answer
 * 503) — any `Error` named `RedisError` (or an ioredis error name), or whose
 * message names a network errno (`ECONNREFUSED`, `ETIMEDOUT`, ...).
 *
 * The guard narrows to `RedisError`, the only such error this package throws;
 * an ioredis error that also matches has no `code` of this package's union.
 */
export declare function isRedisError(err: unknown): err is RedisError;

// Only the declarations marked `export` above are part of the module.
export {};
