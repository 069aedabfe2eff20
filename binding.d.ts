
/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** The native half of `MemoryStore`: synchronous, `index.js` makes it async. */
export declare class NativeMemoryStore {
  constructor(options?: CommonOptions | undefined | null)
  get status(): string
  close(): void
  /** Nothing to measure in memory: 0, or STORE_CLOSED after close(). */
  ping(): number
  get excludedFields(): Array<string>
  get(id?: any | undefined | null): string | null
  set(id?: any | undefined | null, json?: string | undefined | null): void
  delete(id?: any | undefined | null): void
  listByUser(userId?: any | undefined | null, options?: ListOptions | undefined | null): string
  listByUserPairs(userId?: any | undefined | null, options?: ListOptions | undefined | null): Array<string>
}

/**
 * The native half of `RedisStore` (see index.js for the public class).
 * Each operation returns a promise settled through the store's one
 * [`Completer`]; arguments are checked on tokio, so a bad one rejects.
 */
export declare class NativeRedisStore {
  constructor(options: RedisOptions, log?: LogCallback | undefined | null)
  get status(): string
  get excludedFields(): Array<string>
  get redactedUrl(): string
  get(id?: any | undefined | null): Promise<string | null>
  /**
   * `json` is read as UTF-16 (a copy for V8) and turned into UTF-8 on
   * tokio, off the JS thread.
   */
  set(id?: any | undefined | null, json?: string | undefined | null): Promise<void>
  delete(id?: any | undefined | null): Promise<void>
  /**
   * The page as one JSON array text: one string and one `JSON.parse` on
   * the main thread, however many records.
   */
  listByUser(userId?: any | undefined | null, options?: ListOptions | undefined | null): Promise<string>
  /**
   * The page as `id, json, id, json, ...`, for when the array text does not
   * parse (a corrupt record) and each record must be read on its own.
   */
  listByUserPairs(userId?: any | undefined | null, options?: ListOptions | undefined | null): Promise<Array<string>>
  ping(): Promise<number>
  close(): void
}

/** Options shared by both stores. */
export interface CommonOptions {
  ttlSeconds?: number
  listLimit?: number
  excludeFields?: Array<string>
  maxRecordBytes?: number
  slidingExpiry?: boolean
}

/** Paging and shaping of `listByUser`. */
export interface ListOptions {
  limit?: number
  offset?: number
  fields?: Array<string>
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
}

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
