
/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/**
 * A call's own limits (`{ signal, timeoutMs }`): made by `index.js` only
 * for calls that pass them, so the common call carries nothing extra.
 */
export declare class NativeCallLimits {
  constructor(timeoutMs?: number | undefined | null)
  /**
   * The caller's signal aborted: the call stops waiting for its reply
   * (a reply that still arrives is matched to it and dropped).
   */
  abort(): void
}

/** The native half of `MemoryStore`: synchronous, `index.js` makes it async. */
export declare class NativeMemoryStore {
  constructor(options: CommonOptions | undefined | null)
  get status(): string
  close(): void
  /** Nothing to measure in memory: 0, or STORE_CLOSED after close(). */
  ping(): number
  get excludedFields(): Array<string>
  get(id: string): string | null
  set(id: string, json: string): void
  setIf(id: string, json: string, condition: string, updatedAt?: string | undefined | null): void
  delete(id: string): void
  listByUser(userId: string, options: ListOptions | undefined | null): Array<string>
  listByUserPairs(userId: string, options: ListOptions | undefined | null): Array<string>
}

/**
 * The native half of `RedisStore` (see index.js for the public class).
 * Each operation returns a promise settled through the store's one
 * [`Completer`]; arguments are checked on tokio, so a bad one rejects.
 */
export declare class NativeRedisStore {
  constructor(options: RedisOptions, log?: LogCallback | undefined | null, onEvent?: ((event: LinkEvent) => void) | undefined | null, providerKind?: 'streaming' | 'async' | undefined | null, requestCredentials?: ((arg: number) => void) | undefined | null, credentialsFailed?: ((arg: string) => void) | undefined | null)
  get status(): string
  get excludedFields(): Array<string>
  /** How long `ready()` waits before it rejects. */
  get connectTimeoutMs(): number
  /** Synchronous and cheap: a read of the link's state. */
  linkStats(): ConnectionStats
  get redactedUrl(): string
  get(id: string, limits: NativeCallLimits | undefined | null): Promise<string | null>
  /**
   * `json` is read as UTF-16 (a copy for V8) and turned into UTF-8 on
   * tokio, off the JS thread.
   */
  set(id: string, json: string, limits: NativeCallLimits | undefined | null): Promise<void>
  /**
   * `set` with `ifUpdatedAt`: `condition` is `absent`, `updatedAt` (then
   * `updatedAt` holds the text) or `noUpdatedAt`.
   */
  setIf(id: string, json: string, condition: string, updatedAt: string | undefined | null, limits: NativeCallLimits | undefined | null): Promise<void>
  delete(id: string, limits: NativeCallLimits | undefined | null): Promise<void>
  /**
   * The page's records as JSON texts, in order: a handle that
   * `takeRecords` turns into one string per record when JS reads it
   * (`completion::RecordPage`), which V8 makes in memory it has touched
   * already (see `page_records`).
   */
  listByUser(userId: string, options: ListOptions | undefined | null, limits: NativeCallLimits | undefined | null): Promise<object>
  /**
   * The page as `id, json, id, json, ...`, for when a record does not
   * parse (a corrupt record) and the bad ones must be named and skipped.
   */
  listByUserPairs(userId: string, options: ListOptions | undefined | null, limits: NativeCallLimits | undefined | null): Promise<Array<string>>
  ping(limits: NativeCallLimits | undefined | null): Promise<number>
  close(): void
  /**
   * @internal Credentials from the app's provider: the answer to
   * `request`, or (`null`) a streaming provider's initial credentials or
   * `onNext`. `index.js` has checked their types.
   */
  _provideCredentials(request: number | undefined | null, username: string | undefined | null, password: string): void
  /**
   * @internal The app's provider failed: the answer to `request`, or
   * (`null`) a streaming provider's `onError` or a failed `subscribe`.
   */
  _credentialsFailed(request: number | undefined | null, message: string): void
  /**
   * @internal Rejects with `StoreError::samples()[index]` through the
   * store's completer (the asynchronous path of `__test__/errors.test.js`).
   */
  _rejectWithSample(index: number): Promise<void>
}

/** @internal Every `StoreError` variant with its code and JS class. */
export declare function _errorSamples(): Array<ErrorSample>

/** @internal Counts across every environment (main thread and workers). */
export declare function _liveCounts(): LiveCounts

/**
 * @internal Throws `StoreError::samples()[index]` (the synchronous path of
 * `__test__/errors.test.js`).
 */
export declare function _throwErrorSample(index: number): void

/**
 * Above this many calls in flight the worker is not woken ahead (nor polls):
 * it is busy anyway. The JS side skips `expectCall` then.
 */
export declare const BUSY_POLL_MAX_IN_FLIGHT: number

/** Options shared by both stores. */
export interface CommonOptions {
  ttlSeconds?: number
  listLimit?: number
  excludeFields?: Array<string>
  maxRecordBytes?: number
  slidingExpiry?: boolean
}

/** The connection's part of `store.stats()`. */
export interface ConnectionStats {
  /** Times a connection came back after the first one. */
  reconnections: number
  /** Milliseconds since the store was last ready: 0 while it is, absent if it never was. */
  msSinceReady?: number
}

/** One `StoreError` of every variant, as the JS boundary test sees them. */
export interface ErrorSample {
  code: string
  /** The JS class `index.js` must build for `code`. */
  className: string
  message: string
}

/**
 * A write is on its way: the JS side calls this before encoding its
 * record, so the worker thread wakes meanwhile (`busy_poll::call_expected`).
 */
export declare function expectCall(): void

/** One event as JS receives it; `index.js` turns `code`/`message` into a `RedisError`. */
export interface LinkEvent {
  /** `ready`, `error` or `reconnecting`. */
  kind: string
  /**
   * `reconnecting`: the number of the attempt about to be made (1 for
   * the first attempt after a loss; the first connection was attempt 1).
   */
  attempt?: number
  /** `reconnecting`: how long until that attempt, in milliseconds. */
  delayMs?: number
  /** `error` and `reconnecting`: the failure's `StoreError` code and message. */
  code?: string
  message?: string
}

/** Paging and shaping of `listByUser`. */
export interface ListOptions {
  limit?: number
  offset?: number
  fields?: Array<string>
}

/** What a terminated worker could leak (for `__test__/worker-threads.test.js`). */
export interface LiveCounts {
  /** Calls started by any `NativeRedisStore` and not yet settled or abandoned. */
  calls: number
  /** `NativeRedisStore`s not yet dropped. */
  redisStores: number
  /** Whether the worker thread is busy polling (`busy_poll.rs`). */
  polling: boolean
}

/** Options of the Redis store (camelCase in JS; see index.d.ts). */
export interface RedisOptions {
  url?: string
  ttlSeconds?: number
  commandTimeoutMs?: number
  connectTimeoutMs?: number
  tls?: TlsOptions
  allowPlaintext?: boolean
  keyPrefix?: string
  listLimit?: number
  excludeFields?: Array<string>
  maxRecordBytes?: number
  slidingExpiry?: boolean
  reconnectMinDelayMs?: number
  reconnectMaxDelayMs?: number
  /** How often an idle connection is checked with a PING. */
  heartbeatIntervalMs?: number
  /** Treat `url` as a seed node of a Redis Cluster. */
  cluster?: boolean
  /** More seed nodes of the cluster (same scheme and credentials as `url`). */
  clusterNodes?: Array<string>
  /** Sentinel URLs; the store asks them for the primary (instead of `url`). */
  sentinels?: Array<string>
  /** The master group name the sentinels monitor. */
  sentinelName?: string
  /** The sentinels' password, when it differs from the data nodes' ('' = none). */
  sentinelPassword?: string
  /** The name every connection gets with CLIENT SETNAME ('' = none). */
  connectionName?: string
  /** Overrides the URL's user name (data nodes; sentinels too unless `sentinelPassword`). */
  username?: string
  /** Overrides the URL's password (data nodes; sentinels too unless `sentinelPassword`). */
  password?: string
  /** Replicas that must acknowledge each write (`WAIT`) before it resolves. */
  waitReplicas?: number
  /** How long `WAIT` may take, in ms (default: half of `commandTimeoutMs`). */
  waitTimeoutMs?: number
}

/**
 * Reads `REDIS_*` variables into `RedisStore` options, naming the variable
 * in any error; `url` is absent when `REDIS_URL` is not set.
 */
export declare function redisOptionsFromEnv(env: StoreEnv): RedisOptions

/** The environment variables `createConversationStore` reads. */
export interface StoreEnv {
  REDIS_URL?: string
  REDIS_TTL?: string
  REDIS_TIMEOUT?: string
  REDIS_CONNECT_TIMEOUT?: string
  REDIS_KEY_PREFIX?: string
  REDIS_ALLOW_PLAINTEXT?: string
  REDIS_CLUSTER?: string
  REDIS_SENTINELS?: string
  REDIS_SENTINEL_NAME?: string
  REDIS_CONNECTION_NAME?: string
  REDIS_REQUIRED?: string
  REDIS_USERNAME?: string
  REDIS_PASSWORD?: string
  REDIS_WAIT_REPLICAS?: string
  REDIS_WAIT_TIMEOUT?: string
}

/** One row of the option table, as `storeOptions()` hands it to JS. */
export interface StoreOption {
  name: string
  /** `both`, or `redis` for an option only `RedisStore` takes. */
  store: string
  /** Handled by index.js (never reaches the native store). */
  jsOnly: boolean
  /**
   * As the README's options table states it: code in backticks, or words.
   * Absent for an option whose fields carry the defaults.
   */
  default?: string
  /** The environment variable `createConversationStore` reads it from. */
  env?: string
  /** The keys of a nested options object (`tls`). */
  fields: Array<StoreOption>
}

/**
 * The option table: which store takes each option, its default and its
 * environment variable.
 */
export declare function storeOptions(): Array<StoreOption>

/**
 * The records of a page `NativeRedisStore.listByUser` resolved with, as
 * one string each, made now (`completion::RecordPage` says why); an empty
 * array when taken before.
 */
export declare function takeRecords(page: object): Array<string>

/** TLS material for `rediss://` connections. */
export interface TlsOptions {
  /** CA certificate(s), PEM. Default: the system's trusted roots. */
  ca?: string | Buffer
  /** Client certificate, PEM (mutual TLS). Needs `key`. */
  cert?: string | Buffer
  /** Client private key, PEM (mutual TLS). Needs `cert`. */
  key?: string | Buffer
  /** The name the server certificate must carry, when it differs from the URL's host. */
  servername?: string
}
