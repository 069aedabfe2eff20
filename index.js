'use strict';
// The npm face of redis-conversation-store. The store itself (validation, key
// layout, scripts, TTLs, connection handling) lives in Rust; this layer only
// turns records into JSON text and back (one crossing per record), calls the
// user's schema and logger, and shapes native errors into JS error classes.

const native = require('./loader.js').loadBinding();

/** Redis was unreachable, slow, refused TLS or auth, or answered an error. */
class RedisError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'RedisError';
    this.code = code;
  }
}

/** The caller passed bad input; nothing was written. */
class StoreInputError extends TypeError {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'StoreInputError';
    this.code = code;
  }
}

/** The store was configured wrongly; raised at construction. */
class StoreConfigError extends TypeError {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'StoreConfigError';
    this.code = code;
  }
}

/** A stored record could not be read back (not JSON, or the schema rejected it). */
class StoreDataError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'StoreDataError';
    this.code = code;
  }
}

const ERROR_CLASSES = { RedisError, StoreInputError, StoreConfigError, StoreDataError };
const WIRE_ERROR = /^(RedisError|StoreInputError|StoreConfigError|StoreDataError)\|(STORE_[A-Z_]+)\|([\s\S]*)$/;

/**
 * Native errors travel as `<class>|<code>|<message>`. Anything else came from
 * napi's argument conversion (a value of the wrong type), reported as
 * `fallback` with its own code.
 */
function shapeError(err, fallback = StoreInputError, fallbackCode = 'STORE_INVALID_ARGUMENT') {
  const match = err instanceof Error ? WIRE_ERROR.exec(err.message) : null;
  if (!match) {
    const message = err instanceof Error ? err.message : String(err);
    return new fallback(fallbackCode, message, { cause: err });
  }
  const shaped = new ERROR_CLASSES[match[1]](match[2], match[3]);
  // Point the stack at the caller's await, not at the napi glue.
  if (err.stack) shaped.stack = `${shaped.name}: ${shaped.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
  return shaped;
}

/**
 * A value napi could not even convert (a function, a symbol, NaN...) in
 * place of the id or userId: name the argument, as the store does for the
 * other wrong types.
 */
function argumentError(method, first, err) {
  const shaped = shapeError(err);
  if (shaped.code !== 'STORE_INVALID_ARGUMENT' || typeof first === 'string') return shaped;
  const [name, code] = method.startsWith('listByUser') ? ['userId', 'STORE_INVALID_USER_ID'] : ['id', 'STORE_INVALID_ID'];
  const got = first === null ? 'null' : typeof first;
  return new StoreInputError(code, `${name} must be a non-empty string, got ${got}`, { cause: err });
}

const REDIS_ERROR_NAMES = new Set([
  'RedisError',
  'ReplyError',
  'AbortError',
  'InterruptError',
  'ParserError',
  'MaxRetriesPerRequestError',
  'ClusterAllFailedError',
]);

/** The chat server's own check: true for store-unavailable failures (answer 503). */
function isRedisError(err) {
  return (
    err instanceof Error &&
    (REDIS_ERROR_NAMES.has(err.name) || /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND/.test(err.message))
  );
}

function makeLog(logger) {
  if (logger === null || logger === false) return () => {};
  const target = logger ?? console;
  return (level, line) => {
    try {
      (target[level] ?? target.log ?? console.log).call(target, line);
    } catch {
      // A throwing logger must not break the store.
    }
  };
}

function checkOptions(options, storeName) {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new StoreConfigError('STORE_INVALID_CONFIG', `${storeName} options must be an object`);
  }
  const { schema, logger } = options;
  if (schema !== undefined && (schema === null || typeof schema.parse !== 'function')) {
    throw new StoreConfigError('STORE_INVALID_CONFIG', 'schema must have a parse(value) method (e.g. a Zod schema)');
  }
  if (logger != null && logger !== false && typeof logger !== 'object') {
    throw new StoreConfigError('STORE_INVALID_CONFIG', 'logger must be an object with info/warn/error methods, or null');
  }
  return options;
}

function construct(build) {
  try {
    return build();
  } catch (err) {
    throw shapeError(err, StoreConfigError, 'STORE_INVALID_CONFIG');
  }
}

function rethrowShaped(err) {
  throw shapeError(err, RedisError, 'STORE_REPLY');
}

function nothing() {}

function identity(value) {
  return value;
}

/** What both stores share: encoding records, decoding them, the schema. */
class StoreBase {
  #native;
  #schema;
  #log;
  #excluded;

  constructor(nativeStore, schema, log) {
    this.#native = nativeStore;
    this.#schema = schema;
    this.#log = log;
    this.#excluded = nativeStore.excludedFields;
  }

  /** @internal */
  get _native() {
    return this.#native;
  }

  // Fields never persisted (e.g. a live SDK object) are dropped before
  // JSON.stringify ever sees them; the rest is kept exactly as it is.
  #encode(id, record) {
    let value = record;
    if (record !== null && typeof record === 'object' && !Array.isArray(record)) {
      for (const field of this.#excluded) {
        if (Object.prototype.hasOwnProperty.call(record, field)) {
          value = { ...record };
          for (const excluded of this.#excluded) delete value[excluded];
          break;
        }
      }
    }
    try {
      return JSON.stringify(value);
    } catch (err) {
      throw new StoreInputError(
        'STORE_INVALID_RECORD',
        `conversation ${JSON.stringify(String(id))} cannot be stored as JSON: ${err.message}`,
        { cause: err },
      );
    }
  }

  #decode(id, text, { useSchema = true } = {}) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new StoreDataError('STORE_CORRUPT_RECORD', `stored conversation ${JSON.stringify(id)} is not valid JSON: ${err.message}`, {
        cause: err,
      });
    }
    if (!useSchema || !this.#schema) return value;
    try {
      return this.#schema.parse(value);
    } catch (err) {
      throw new StoreDataError(
        'STORE_CORRUPT_RECORD',
        `stored conversation ${JSON.stringify(id)} does not match the schema: ${err.message}`,
        { cause: err },
      );
    }
  }

  // Starts a native call and chains `then` onto it, shaping its failure: one
  // promise per call on top of the native one (the memory store answers at
  // once). Plain chains, not nested async functions: this is on every call's path.
  #call(method, first, second, then = identity) {
    let result;
    try {
      result = this.#native[method](first, second);
    } catch (err) {
      return Promise.reject(argumentError(method, first, err));
    }
    return Promise.resolve(result).then(then, rethrowShaped);
  }

  get(id) {
    return this.#call('get', id, undefined, (text) => (text == null ? undefined : this.#decode(id, text)));
  }

  set(id, conversation) {
    let json;
    try {
      json = this.#encode(id, conversation);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call('set', id, json, nothing);
  }

  delete(id) {
    return this.#call('delete', id, undefined, nothing);
  }

  async listByUser(userId, options) {
    const useSchema = Boolean(this.#schema) && !(options && options.fields);
    let records;
    try {
      // The common case: the whole page is one JSON array text, parsed once.
      records = JSON.parse(await this.#call('listByUser', userId, options));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      return this.#listOneByOne(userId, options, useSchema);
    }
    if (!useSchema) return records;
    try {
      return records.map((record) => this.#schema.parse(record));
    } catch {
      return this.#listOneByOne(userId, options, useSchema);
    }
  }

  // Some stored record is not JSON, or the schema rejects one: read each
  // record on its own, and skip the bad ones with a warning naming them.
  async #listOneByOne(userId, options, useSchema) {
    const pairs = await this.#call('listByUserPairs', userId, options);
    const records = [];
    for (let i = 0; i < pairs.length; i += 2) {
      try {
        records.push(this.#decode(pairs[i], pairs[i + 1], { useSchema }));
      } catch (err) {
        this.#log('warn', `[STORE] listByUser(${JSON.stringify(userId)}): skipped a record: ${err.message}`);
      }
    }
    return records;
  }
}

/** The Redis-backed store. */
class RedisStore extends StoreBase {
  constructor(options) {
    const { schema, logger, ...nativeOptions } = checkOptions(options, 'RedisStore');
    const log = makeLog(logger);
    super(
      construct(() => new native.NativeRedisStore(nativeOptions, log)),
      schema,
      log,
    );
  }

  /** `connecting` | `ready` | `reconnecting` | `closed`, read synchronously. */
  get status() {
    return this._native.status;
  }

  /** One round trip to Redis; resolves its duration in milliseconds. */
  async ping() {
    try {
      return await this._native.ping();
    } catch (err) {
      throw shapeError(err, RedisError, 'STORE_REPLY');
    }
  }

  /** The Redis URL with any password replaced by `***`. */
  get redactedUrl() {
    return this._native.redactedUrl;
  }

  /** Ends the connection; later calls reject with `STORE_CLOSED`. */
  async close() {
    this._native.close();
  }
}

/** The same contract in process memory (development, tests, no REDIS_URL). */
class MemoryStore extends StoreBase {
  constructor(options) {
    const { schema, logger, ...nativeOptions } = checkOptions(options, 'MemoryStore');
    super(
      construct(() => new native.NativeMemoryStore(nativeOptions)),
      schema,
      makeLog(logger),
    );
  }

  /** `ready`, or `closed` after close(). */
  get status() {
    return this._native.status;
  }

  /** Resolves 0 (no round trip); rejects with STORE_CLOSED after close(). */
  async ping() {
    try {
      return this._native.ping();
    } catch (err) {
      throw shapeError(err);
    }
  }

  async close() {
    this._native.close();
  }
}

/**
 * The factory: `REDIS_URL` set → a `RedisStore` configured from `REDIS_*`
 * variables; absent → a `MemoryStore`. Malformed values are refused here,
 * naming the variable.
 */
function createConversationStore(env = process.env, options = {}) {
  const overrides = checkOptions(options ?? undefined, 'createConversationStore');
  const fromEnv = construct(() => native.redisOptionsFromEnv(env ?? {}));
  const log = makeLog(overrides.logger);
  const settings = { ...fromEnv, ...overrides };
  if (settings.url) {
    const store = new RedisStore(settings);
    log('info', `[STORE] using RedisStore (${store.redactedUrl})`);
    return store;
  }
  log('info', '[STORE] REDIS_URL is not set: using MemoryStore (conversations live in this process only)');
  const { url, ...memoryOptions } = settings;
  return new MemoryStore(memoryOptions);
}

module.exports = {
  RedisStore,
  MemoryStore,
  createConversationStore,
  isRedisError,
  RedisError,
  StoreInputError,
  StoreConfigError,
  StoreDataError,
};
