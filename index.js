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
 * A conditional write (`set` with `ifUpdatedAt`, or `update`) found the
 * record changed by another writer; nothing was written. Not a RedisError:
 * answer 409 and let the client retry.
 */
class StoreConflictError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'StoreConflictError';
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
  ['STORE_RESPONSE_TOO_LARGE', StoreDataError],
  ['STORE_UNAVAILABLE', RedisError],
  ['STORE_TIMEOUT', RedisError],
  ['STORE_AUTH', RedisError],
  ['STORE_TLS', RedisError],
  ['STORE_REPLY', RedisError],
  ['STORE_CLOSED', RedisError],
  ['STORE_CONFLICT', StoreConflictError],
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

function invalidArgument(message, caller) {
  const err = new StoreInputError('STORE_INVALID_ARGUMENT', message);
  Error.captureStackTrace(err, caller);
  return err;
}

function isPlainOptions(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The per-call options of each method (listByUser's are checked with its paging options). */
const CALL_OPTIONS = ['signal', 'timeoutMs'];
const SET_OPTIONS = ['ifUpdatedAt', ...CALL_OPTIONS];
const UPDATE_OPTIONS = ['retries', ...CALL_OPTIONS];

/**
 * A call's `{ signal, timeoutMs }`, checked (and no key but `known`; `null`
 * for no check): `undefined` when it has neither
 * (the common call, which then costs nothing more).
 */
function callLimitsOf(options, what, known = CALL_OPTIONS) {
  if (options === undefined || options === null) return undefined;
  if (!isPlainOptions(options)) throw invalidArgument(`${what} options must be an object, got ${describeType(options)}`, callLimitsOf);
  if (known !== null) {
    // A misspelt ifUpdatedAt must not turn a conditional write into a plain one.
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) {
        throw invalidArgument(`${what}: unknown option ${JSON.stringify(key)} (known: ${known.join(', ')})`, callLimitsOf);
      }
    }
  }
  const { signal, timeoutMs } = options;
  if (signal === undefined && timeoutMs === undefined) return undefined;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgument(`signal must be an AbortSignal, got ${describeType(signal)}`, callLimitsOf);
  }
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= 2147483647)) {
    throw invalidArgument(`timeoutMs must be a whole number of milliseconds from 1 to 2147483647, got ${describeType(timeoutMs) === 'a number' ? timeoutMs : describeType(timeoutMs)}`, callLimitsOf);
  }
  return { signal, timeoutMs };
}

/**
 * `settled`, or a rejection with the signal's reason as soon as it aborts
 * (`native` is told to stop waiting; its late outcome is ignored).
 */
function untilAborted(settled, signal, nativeLimits) {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      nativeLimits?.abort();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    settled.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** An `updatedAt` strictly later than `read` (an ISO text, or undefined). */
function laterThan(read) {
  const readMs = typeof read === 'string' ? Date.parse(read) : NaN;
  const now = Date.now();
  return new Date(Number.isNaN(readMs) ? now : Math.max(now, readMs + 1)).toISOString();
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

  /** @internal A call with no id (ping) within its limits. */
  _callWithin(limits, method) {
    return this.#callWithin(limits, method, undefined, undefined, []);
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
    return useSchema ? this.#parseWithSchema(id, value) : value;
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

  // The same for a call with `{ signal, timeoutMs }` (`limits`, checked) or
  // more arguments (`args`, after `first`). A signal already aborted rejects
  // with its reason and sends nothing; one that aborts in flight rejects at
  // once, and the native call stops waiting for its reply.
  #callWithin(limits, method, argument, first, args, then = identity) {
    if (first !== undefined && typeof first !== 'string') return Promise.reject(notAString(argument, first));
    const signal = limits?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let nativeLimits;
    let result;
    try {
      // The memory store answers at once: nothing to time out or abort.
      if (limits !== undefined && this.#native instanceof native.NativeRedisStore) {
        nativeLimits = new native.NativeCallLimits(limits.timeoutMs ?? null);
      }
      const nativeArgs = first === undefined ? args : [first, ...args];
      result = this.#native[method](...nativeArgs, nativeLimits);
    } catch (err) {
      return Promise.reject(shapeError(err));
    }
    const settled = Promise.resolve(result).then(then, rethrowShaped);
    return signal === undefined ? settled : untilAborted(settled, signal, nativeLimits);
  }

  get(id, options) {
    const decode = (text) => (text == null ? undefined : this.#decode(id, text));
    if (options === undefined) return this.#call('get', ID, id, undefined, decode);
    let limits;
    try {
      limits = callLimitsOf(options, 'get');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#callWithin(limits, 'get', ID, id, [], decode);
  }

  /**
   * Writes the record; with `ifUpdatedAt` (a string, or null for "no record
   * stored"), only if the stored record's `updatedAt` is exactly that, in
   * one atomic step, else rejects with StoreConflictError.
   */
  set(id, conversation, options) {
    let json;
    try {
      json = this.#encode(id, conversation);
    } catch (err) {
      return Promise.reject(err);
    }
    if (options === undefined) return this.#call('set', ID, id, json, nothing);
    let limits;
    try {
      limits = callLimitsOf(options, 'set', SET_OPTIONS);
      const { ifUpdatedAt } = options ?? {};
      if (ifUpdatedAt === undefined) return this.#callWithin(limits, 'set', ID, id, [json], nothing);
      if (ifUpdatedAt !== null && typeof ifUpdatedAt !== 'string') {
        throw invalidArgument(`ifUpdatedAt must be a string or null, got ${describeType(ifUpdatedAt)}`, this.set);
      }
      return this.#setIf(id, json, ifUpdatedAt === null ? 'absent' : 'updatedAt', ifUpdatedAt ?? undefined, limits);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #setIf(id, json, condition, updatedAt, limits) {
    return this.#callWithin(limits, 'setIf', ID, id, [json, condition, updatedAt ?? null], nothing);
  }

  delete(id, options) {
    if (options === undefined) return this.#call('delete', ID, id, undefined, nothing);
    let limits;
    try {
      limits = callLimitsOf(options, 'delete');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#callWithin(limits, 'delete', ID, id, [], nothing);
  }

  /**
   * Reads the record, calls `fn(current)` and writes what it returns only if
   * the record was not changed meanwhile; on a conflict, reads again and
   * calls `fn` again (up to `retries` times). Resolves the record written,
   * or undefined when `fn` returned undefined (nothing written).
   */
  async update(id, fn, options = {}) {
    if (typeof id !== 'string') throw notAString(ID, id);
    if (typeof fn !== 'function') throw invalidArgument(`update needs a function, got ${describeType(fn)}`, this.update);
    if (!isPlainOptions(options)) throw invalidArgument(`update options must be an object, got ${describeType(options)}`, this.update);
    const { retries = 5 } = options;
    if (!(Number.isInteger(retries) && retries >= 0 && retries <= 1000)) {
      throw invalidArgument(`retries must be a whole number from 0 to 1000, got ${retries}`, this.update);
    }
    const limits = callLimitsOf(options, 'update', UPDATE_OPTIONS);
    const signal = limits?.signal;
    for (let attempt = 0; ; attempt++) {
      // The raw text, so the condition is the stored updatedAt even when a
      // schema turns it into something else (a Date).
      const text = await this.#callWithin(limits, 'get', ID, id, []);
      const stored = text == null ? undefined : this.#decode(id, text, { useSchema: false });
      const current = stored === undefined ? undefined : this.#parseWithSchema(id, stored);
      const next = await fn(current);
      signal?.throwIfAborted();
      if (next === undefined) return undefined;
      const written = this.#stamped(next, current, stored);
      let condition = 'absent';
      if (stored !== undefined) condition = typeof stored.updatedAt === 'string' ? 'updatedAt' : 'noUpdatedAt';
      try {
        await this.#setIf(id, this.#encode(id, written), condition, stored?.updatedAt, limits);
        return written;
      } catch (err) {
        if (!(err instanceof StoreConflictError) || attempt >= retries) throw err;
      }
    }
  }

  // What update writes: fn's record with a fresh updatedAt, strictly later
  // than the one read, unless fn set one of its own.
  #stamped(next, current, stored) {
    if (!isPlainOptions(next)) return next; // #encode names what is wrong with it
    const own = next.updatedAt !== undefined && next.updatedAt !== current?.updatedAt;
    return own ? next : { ...next, updatedAt: laterThan(stored?.updatedAt) };
  }

  #parseWithSchema(id, value) {
    if (!this.#schema) return value;
    try {
      return this.#schema.parse(value);
    } catch (err) {
      throw new StoreDataError('STORE_CORRUPT_RECORD', `stored conversation ${JSON.stringify(id)} does not match the schema: ${err.message}`, {
        cause: err,
      });
    }
  }

  async listByUser(userId, options) {
    const useSchema = Boolean(this.#schema) && !(options && options.fields);
    const limits = callLimitsOf(options, 'listByUser', null);
    let records;
    try {
      // The common case: the whole page is one JSON array text, parsed once.
      records = JSON.parse(await this.#list('listByUser', userId, options, limits));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      return this.#listOneByOne(userId, options, useSchema, limits);
    }
    if (!useSchema) return records;
    try {
      return records.map((record) => this.#schema.parse(record));
    } catch {
      return this.#listOneByOne(userId, options, useSchema, limits);
    }
  }

  #list(method, userId, options, limits) {
    if (limits === undefined) return this.#call(method, USER_ID, userId, options);
    return this.#callWithin(limits, method, USER_ID, userId, [options]);
  }

  // Some stored record is not JSON, or the schema rejects one: read each
  // record on its own, and skip the bad ones with a warning naming them.
  async #listOneByOne(userId, options, useSchema, limits) {
    const pairs = await this.#list('listByUserPairs', userId, options, limits);
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
  async ping(options) {
    const limits = callLimitsOf(options, 'ping');
    if (limits !== undefined) return this._callWithin(limits, 'ping');
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
  async ping(options) {
    const limits = callLimitsOf(options, 'ping');
    if (limits !== undefined) return this._callWithin(limits, 'ping');
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
  StoreConflictError,
};
