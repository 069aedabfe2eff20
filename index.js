'use strict';
// The npm face of redis-conversation-store. The store itself (validation, key
// layout, scripts, TTLs, connection handling) lives in Rust; this layer only
// checks the JS types of the arguments, turns records into JSON text and back
// (one crossing per record), calls the user's schema and logger, and gives
// native errors (which carry their `code`) their JS error class.

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

/**
 * The JS class of every `code` the native side sets (one per `StoreError`
 * variant in src/error.rs; __test__/errors.test.js checks this table
 * against the native list).
 */
const ERROR_CLASS_BY_CODE = new Map([
  ['STORE_INVALID_ID', StoreInputError],
  ['STORE_INVALID_USER_ID', StoreInputError],
  ['STORE_INVALID_UPDATED_AT', StoreInputError],
  ['STORE_INVALID_RECORD', StoreInputError],
  ['STORE_RECORD_TOO_LARGE', StoreInputError],
  ['STORE_INVALID_ARGUMENT', StoreInputError],
  ['STORE_INVALID_CONFIG', StoreConfigError],
  ['STORE_CORRUPT_RECORD', StoreDataError],
  ['STORE_UNAVAILABLE', RedisError],
  ['STORE_TIMEOUT', RedisError],
  ['STORE_AUTH', RedisError],
  ['STORE_TLS', RedisError],
  ['STORE_REPLY', RedisError],
  ['STORE_CLOSED', RedisError],
]);

/**
 * A native error, as the class its `code` names. The stack keeps the native
 * error's frames (the caller's, on synchronous paths), not this function's.
 * An error without a store code (a failure of N-API itself) is left as it is.
 */
function shapeError(err) {
  const ErrorClass = err instanceof Error ? ERROR_CLASS_BY_CODE.get(err.code) : undefined;
  if (ErrorClass === undefined) return err;
  const shaped = new ErrorClass(err.code, err.message);
  if (err.stack) shaped.stack = `${shaped.name}: ${shaped.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
  return shaped;
}

/** How a wrong argument is named in its error: `a number`, `null`, `an array`... */
function describeType(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return type === 'object' ? 'an object' : `a ${type}`;
}

/** The string arguments: what their errors call them, and their code. */
const ID = { name: 'id', code: 'STORE_INVALID_ID' };
const USER_ID = { name: 'userId', code: 'STORE_INVALID_USER_ID' };

/**
 * The error for an id or userId that is not a string. This is the one check
 * of their JS type: the binding takes them as strings and checks their
 * content (empty, too long) in src/record.rs.
 */
function notAString(argument, value) {
  const err = new StoreInputError(argument.code, `${argument.name} must be a non-empty string, got ${describeType(value)}`);
  Error.captureStackTrace(err, notAString); // the stack starts at the store's method
  return err;
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
    throw shapeError(err);
  }
}

function rethrowShaped(err) {
  throw shapeError(err);
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

  // Fields never persisted (e.g. a live SDK object) are dropped here, and
  // only here, before JSON.stringify ever sees them; the rest is kept exactly
  // as it is. A record with toJSON() is read through it first, as
  // JSON.stringify would, so what it returns is what loses the fields.
  #encode(id, record) {
    let json;
    try {
      let value = record;
      if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') value = value.toJSON('');
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) value = this.#withoutExcluded(value);
      json = JSON.stringify(value);
    } catch (err) {
      throw new StoreInputError(
        'STORE_INVALID_RECORD',
        `conversation ${JSON.stringify(String(id))} cannot be stored as JSON: ${err.message}`,
        { cause: err },
      );
    }
    if (json === undefined) {
      // undefined, a function or a symbol: JSON.stringify has no text for it.
      throw new StoreInputError('STORE_INVALID_RECORD', `conversation ${JSON.stringify(String(id))} must be a plain object, got undefined`);
    }
    return json;
  }

  #withoutExcluded(record) {
    for (const field of this.#excluded) {
      if (Object.prototype.hasOwnProperty.call(record, field)) {
        const copy = { ...record };
        for (const excluded of this.#excluded) delete copy[excluded];
        return copy;
      }
    }
    return record;
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
  // once). Plain chains, not nested async functions: this is on every call's
  // path. `first` is the id or userId (`argument` says which).
  #call(method, argument, first, second, then = identity) {
    if (typeof first !== 'string') return Promise.reject(notAString(argument, first));
    let result;
    try {
      result = this.#native[method](first, second);
    } catch (err) {
      return Promise.reject(shapeError(err));
    }
    return Promise.resolve(result).then(then, rethrowShaped);
  }

  get(id) {
    return this.#call('get', ID, id, undefined, (text) => (text == null ? undefined : this.#decode(id, text)));
  }

  set(id, conversation) {
    let json;
    try {
      json = this.#encode(id, conversation);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call('set', ID, id, json, nothing);
  }

  delete(id) {
    return this.#call('delete', ID, id, undefined, nothing);
  }

  async listByUser(userId, options) {
    const useSchema = Boolean(this.#schema) && !(options && options.fields);
    let records;
    try {
      // The common case: the whole page is one JSON array text, parsed once.
      records = JSON.parse(await this.#call('listByUser', USER_ID, userId, options));
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
    const pairs = await this.#call('listByUserPairs', USER_ID, userId, options);
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
      throw shapeError(err);
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

// Options only RedisStore takes (from the native option table): the factory
// drops them when it falls back to MemoryStore, which would refuse them.
const REDIS_ONLY_OPTIONS = native.storeOptions().filter((option) => option.store === 'redis').map((option) => option.name);

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
  if (settings.url || settings.sentinels) {
    const store = new RedisStore(settings);
    log('info', `[STORE] using RedisStore (${store.redactedUrl})`);
    return store;
  }
  log('info', '[STORE] REDIS_URL is not set: using MemoryStore (conversations live in this process only)');
  const memoryOptions = { ...settings };
  for (const name of REDIS_ONLY_OPTIONS) delete memoryOptions[name];
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
