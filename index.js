'use strict';
// The npm face of redis-conversation-store. The store itself (validation, key
// layout, scripts, TTLs, connection handling) lives in Rust; this layer only
// checks the JS types of the arguments, turns records into JSON text and back
// (one crossing per record), calls the user's schema and logger, and gives
// native errors (which carry their `code`) their JS error class.

const { EventEmitter } = require('node:events');
const diagnosticsChannel = require('node:diagnostics_channel');

const native = require('./loader.js').loadBinding();

/**
 * Every public operation is published here, following `tracePromise`'s
 * lifecycle (start, end, asyncStart, asyncEnd, error), for OpenTelemetry or
 * any APM. Nobody subscribed: the call goes straight through (no context).
 */
const operationChannel = diagnosticsChannel.tracingChannel('redis-conversation-store:operation');

/** The public operations, as `stats()` and the trace context name them. */
const OPERATIONS = ['get', 'set', 'update', 'delete', 'listByUser', 'ping'];

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
  ['STORE_NOT_REPLICATED', RedisError],
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

/** Calls in flight up to which a write wakes the native worker ahead (#encodeForWrite). */
const WAKE_AHEAD_MAX_IN_FLIGHT = native.BUSY_POLL_MAX_IN_FLIGHT;
/** The per-call options of each method (listByUser's values are checked with its paging, natively). */
const CALL_OPTIONS = ['signal', 'timeoutMs'];
const SET_OPTIONS = ['ifUpdatedAt', ...CALL_OPTIONS];
const UPDATE_OPTIONS = ['retries', ...CALL_OPTIONS];
const LIST_OPTIONS = ['limit', 'offset', 'fields', ...CALL_OPTIONS];

/**
 * A call's `{ signal, timeoutMs }`, checked (and no key but `known`):
 * `undefined` when it has neither (the common call, which then costs nothing more).
 */
function callLimitsOf(options, what, known = CALL_OPTIONS) {
  if (options === undefined || options === null) return undefined;
  if (!isPlainOptions(options)) throw invalidArgument(`${what} options must be an object, got ${describeType(options)}`, callLimitsOf);
  // A misspelt ifUpdatedAt must not turn a conditional write into a plain one.
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw invalidArgument(`${what}: unknown option ${JSON.stringify(key)} (known: ${known.join(', ')})`, callLimitsOf);
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

/** The rejection of a call made once `close()` or `destroy()` was called. */
function closedError(operation, caller) {
  const err = new RedisError('STORE_CLOSED', `${operation}: the store is closed; create a new store to talk to Redis again`);
  Error.captureStackTrace(err, caller);
  return err;
}

/** A failure's key in `stats().failuresByCode`: its `code`, else its class name. */
function failureCode(err) {
  if (err !== null && typeof err === 'object') {
    if (typeof err.code === 'string') return err.code;
    if (typeof err.name === 'string') return err.name;
  }
  return 'UNKNOWN';
}

/**
 * What both stores share: encoding records, decoding them, the schema; the
 * operations' counters and tracing; closing (graceful or not) and 'end'.
 */
class StoreBase extends EventEmitter {
  #native;
  #schema;
  #log;
  #excluded;
  #redactedUrl;
  /** Per operation: `{ started, failed, onFailure }` (the handler made once). */
  #counters;
  #failuresByCode = new Map();
  #inFlight = 0;
  /** Whether writes wake the native worker ahead (the Redis store's calls run there). */
  #wakesWorker;
  /** Set by close()/destroy(): new calls reject with STORE_CLOSED at once. */
  #closing = false;
  /** close()'s promise, once closing started (destroy() shares it). */
  #closed;
  /** Resolves close()'s wait when the last call in flight settles. */
  #drained;
  #ended = false;

  constructor(nativeStore, schema, log, redactedUrl) {
    super();
    this.#native = nativeStore;
    this.#schema = schema;
    this.#log = log;
    this.#excluded = nativeStore.excludedFields;
    this.#wakesWorker = nativeStore instanceof native.NativeRedisStore;
    this.#redactedUrl = redactedUrl;
    this.#counters = {};
    for (const operation of OPERATIONS) {
      const counter = { started: 0, failed: 0, onFailure: null, onNativeFailure: null };
      counter.onFailure = (err) => this.#failed(counter, err);
      counter.onNativeFailure = (err) => this.#failed(counter, shapeError(err));
      this.#counters[operation] = counter;
    }
  }

  // ---- operations: counted, traced, refused once closing ------------------

  get(id, options) {
    return this.#operation('get', 'id', this.#get, id, options);
  }

  /**
   * Writes the record; with `ifUpdatedAt` (a string, or null for "no record
   * stored"), only if the stored record's `updatedAt` is exactly that, in
   * one atomic step, else rejects with StoreConflictError.
   */
  set(id, conversation, options) {
    return this.#operation('set', 'id', this.#set, id, conversation, options);
  }

  delete(id, options) {
    return this.#operation('delete', 'id', this.#delete, id, options);
  }

  /**
   * Reads the record, calls `fn(current)` and writes what it returns only if
   * the record was not changed meanwhile; on a conflict, reads again and
   * calls `fn` again (up to `retries` times). Resolves the record written,
   * or undefined when `fn` returned undefined (nothing written).
   */
  update(id, fn, options) {
    return this.#operation('update', 'id', this.#updateCounted, id, fn, options);
  }

  listByUser(userId, options) {
    return this.#operation('listByUser', 'userId', this.#listByUserCounted, userId, options);
  }

  /** One round trip (0 for the memory store); resolves its duration in milliseconds. */
  ping(options) {
    return this.#operation('ping', undefined, this.#pingCounted, options);
  }

  // `run` is the operation's implementation: a method of this class that
  // returns a promise (never throws) and reports its settling to the
  // counter it is given last. With no tracing subscriber this allocates
  // nothing beyond the call itself.
  #operation(operation, keyName, run, first, second, third) {
    if (this.#closing) return Promise.reject(closedError(operation, this[operation]));
    if (!operationChannel.hasSubscribers) return this.#counted(operation, run, first, second, third);
    const context = { operation, redactedUrl: this.#redactedUrl };
    if (keyName !== undefined) context[keyName] = first;
    return operationChannel.tracePromise(this.#counted, context, this, operation, run, first, second, third);
  }

  #counted(operation, run, first, second, third) {
    const counter = this.#counters[operation];
    counter.started++;
    this.#inFlight++;
    return run.call(this, first, second, third, counter);
  }

  // Where a call settles, it is counted: one reaction on its promise, with
  // handlers made once per store. The common calls (get, set, delete
  // without options) are counted in the reaction that shapes their outcome
  // instead (#call), which spares a promise per call.
  #track(promise, counter) {
    return promise.then(this.#settledWith, counter.onFailure);
  }

  #settledWith = (value) => {
    this.#settled();
    return value;
  };

  #succeeded(counter, then, value, first) {
    let outcome;
    try {
      outcome = then(value, first);
    } catch (err) {
      this.#failed(counter, err);
    }
    this.#settled();
    return outcome;
  }

  #failed(counter, err) {
    this.#countFailure(counter, err);
    throw err;
  }

  #refused(counter, err) {
    if (counter !== undefined) this.#countFailure(counter, err);
    return Promise.reject(err);
  }

  #countFailure(counter, err) {
    counter.failed++;
    const code = failureCode(err);
    this.#failuresByCode.set(code, (this.#failuresByCode.get(code) ?? 0) + 1);
    this.#settled();
  }

  #settled() {
    if (--this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  // ---- counters ------------------------------------------------------------

  /**
   * Counters for a /metrics or /health route, read synchronously: calls
   * started and failed per operation, failures per error code, calls in
   * flight, reconnections, and milliseconds since the store was last ready
   * (0 while it is, null if it never was).
   */
  stats() {
    const operations = {};
    for (const operation of OPERATIONS) {
      const { started, failed } = this.#counters[operation];
      operations[operation] = { started, failed };
    }
    const { reconnections, msSinceReady } = this._connectionStats();
    return {
      operations,
      failuresByCode: Object.fromEntries(this.#failuresByCode),
      inFlight: this.#inFlight,
      reconnections,
      msSinceReady: msSinceReady ?? null,
    };
  }

  // ---- closing -------------------------------------------------------------

  /**
   * Graceful: new calls reject with STORE_CLOSED at once; the calls in
   * flight settle as they would (each within its own timeout); then the
   * connection ends and 'end' is emitted. Idempotent.
   */
  close() {
    return this.#shutdown();
  }

  /**
   * Immediate: the connection ends now and the calls in flight reject with
   * STORE_CLOSED at once; 'end' follows when they have settled.
   */
  destroy() {
    this.#closing = true;
    this.#native.close();
    this.#shutdown();
  }

  #shutdown() {
    if (this.#closed !== undefined) return this.#closed;
    this.#closing = true;
    this._closing();
    const drained = this.#inFlight === 0 ? Promise.resolve() : new Promise((resolve) => (this.#drained = resolve));
    this.#closed = drained.then(() => {
      this.#native.close();
      this._closed();
      this.#ended = true;
      this.emit('end');
    });
    return this.#closed;
  }

  /** @internal True once close() or destroy() was called. */
  get _isClosing() {
    return this.#closing;
  }

  /** @internal True once 'end' was emitted: nothing is emitted after it. */
  get _hasEnded() {
    return this.#ended;
  }

  /** @internal Called once when closing starts (RedisStore rejects its ready() waiters). */
  _closing() {}

  /** @internal Called once the connection has ended (RedisStore lets go of its credentials provider). */
  _closed() {}

  /** @internal The connection's part of stats(). */
  _connectionStats() {
    return { reconnections: 0, msSinceReady: null };
  }

  /** @internal */
  get _native() {
    return this.#native;
  }

  #pingCounted(options, _second, _third, counter) {
    return this.#track(this.#ping(options), counter);
  }

  #ping(options) {
    let limits;
    try {
      limits = callLimitsOf(options, 'ping');
    } catch (err) {
      return Promise.reject(err);
    }
    if (limits !== undefined) return this.#callWithin(limits, 'ping', undefined, undefined, []);
    try {
      // The memory store answers at once (a number), Redis with a promise.
      return Promise.resolve(this.#native.ping()).then(identity, rethrowShaped);
    } catch (err) {
      return Promise.reject(shapeError(err));
    }
  }

  // A write's record, encoded; while few calls are in flight, the native
  // worker thread is woken first, so that its wake-up (tens of µs on a VM)
  // overlaps the JSON.stringify instead of following it (set 64 KB at
  // concurrency 1: 1,769 -> 2,121 ops/s). Under load it is awake anyway.
  #encodeForWrite(id, record) {
    if (this.#wakesWorker && this.#inFlight <= WAKE_AHEAD_MAX_IN_FLIGHT) native.expectCall();
    return this.#encode(id, record);
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
  // path. `first` is the id or userId (`argument` says which). With a
  // `counter`, the call is counted where it settles (see #track).
  #call(method, argument, first, second, then = identity, counter = undefined) {
    if (typeof first !== 'string') return this.#refused(counter, notAString(argument, first));
    let result;
    try {
      result = this.#native[method](first, second);
    } catch (err) {
      return this.#refused(counter, shapeError(err));
    }
    if (counter === undefined) return Promise.resolve(result).then(then, rethrowShaped);
    return Promise.resolve(result).then((value) => this.#succeeded(counter, then, value, first), counter.onNativeFailure);
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

  #get(id, options, _unused, counter) {
    if (options === undefined) return this.#call('get', ID, id, undefined, this.#decodeFound, counter);
    return this.#track(this.#getWithin(id, options, (text) => this.#decodeFound(text, id)), counter);
  }

  // `get`'s outcome: made once per store (a closure per call is measurable).
  #decodeFound = (text, id) => (text == null ? undefined : this.#decode(id, text));

  #getWithin(id, options, decode) {
    let limits;
    try {
      limits = callLimitsOf(options, 'get');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#callWithin(limits, 'get', ID, id, [], decode);
  }

  #set(id, conversation, options, counter) {
    let json;
    try {
      json = this.#encodeForWrite(id, conversation);
    } catch (err) {
      return this.#refused(counter, err);
    }
    if (options === undefined) return this.#call('set', ID, id, json, nothing, counter);
    return this.#track(this.#setWithin(id, json, options), counter);
  }

  #setWithin(id, json, options) {
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

  #delete(id, options, _unused, counter) {
    if (options === undefined) return this.#call('delete', ID, id, undefined, nothing, counter);
    return this.#track(this.#deleteWithin(id, options), counter);
  }

  #deleteWithin(id, options) {
    let limits;
    try {
      limits = callLimitsOf(options, 'delete');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#callWithin(limits, 'delete', ID, id, [], nothing);
  }

  #updateCounted(id, fn, options, counter) {
    return this.#track(this.#update(id, fn, options), counter);
  }

  async #update(id, fn, options = {}) {
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
        await this.#setIf(id, this.#encodeForWrite(id, written), condition, stored?.updatedAt, limits);
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

  #listByUserCounted(userId, options, _unused, counter) {
    return this.#track(this.#listByUser(userId, options), counter);
  }

  async #listByUser(userId, options) {
    const useSchema = Boolean(this.#schema) && !(options && options.fields);
    const limits = callLimitsOf(options, 'listByUser', LIST_OPTIONS);
    const page = await this.#list('listByUser', userId, options, limits);
    // Redis resolves a handle whose strings are made only now, so that a
    // page's strings die with its parse (src/completion.rs, RecordPage).
    const texts = Array.isArray(page) ? page : native.takeRecords(page);
    let records;
    try {
      // One string per record (the native side says why): parsed in order.
      records = texts.map((text) => JSON.parse(text));
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

const PROVIDER_KINDS = {
  'streaming-credentials-provider': 'streaming',
  'async-credentials-provider': 'async',
};

/** The kind of a node-redis credentials provider, or a configuration error. */
function providerKind(provider, nativeOptions) {
  if (provider === undefined || provider === null) return null;
  const kind = PROVIDER_KINDS[provider?.type];
  const method = kind === 'streaming' ? 'subscribe' : 'credentials';
  if (kind === undefined || typeof provider[method] !== 'function') {
    throw new StoreConfigError(
      'STORE_INVALID_CONFIG',
      "credentialsProvider must be { type: 'async-credentials-provider', credentials() } or " +
        "{ type: 'streaming-credentials-provider', subscribe(listener) } (the @redis/client shapes)",
    );
  }
  if (nativeOptions.username != null || nativeOptions.password != null) {
    throw new StoreConfigError(
      'STORE_INVALID_CONFIG',
      'username/password and credentialsProvider cannot be used together: the provider supplies the credentials',
    );
  }
  return kind;
}

function failureText(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The bridge between the app's provider and the native store, which decides
 * when credentials are needed and what to do with them (credentials.rs).
 */
class CredentialsBridge {
  #provider;
  #native;
  #disposable;
  #closed = false;

  #onFailure;

  constructor(provider, onFailure) {
    this.#provider = provider;
    this.#onFailure = onFailure;
  }

  /** Async provider: native asks (one request per new connection). */
  request = (id) => {
    Promise.resolve()
      .then(() => this.#provider.credentials())
      .then(
        (credentials) => this.#deliver(id, credentials),
        (err) => this.#native?._credentialsFailed(id, failureText(err)),
      );
  };

  #deliver(id, credentials) {
    const { username, password } = credentials ?? {};
    if (typeof password !== 'string' || (username != null && typeof username !== 'string')) {
      this.#native?._credentialsFailed(id, 'the provider gave no { username?: string, password: string }');
      return;
    }
    this.#native?._provideCredentials(id, username ?? null, password);
  }

  /**
   * Every credentials failure, as the native side announces it (after its
   * `[STORE]` warning): handed to the provider's `onReAuthenticationError`,
   * as node-redis does.
   */
  failed = (message) => {
    try {
      this.#provider.onReAuthenticationError?.(new Error(message));
    } catch {
      // The app's handler failing must not break the store.
    }
    this.#onFailure(message);
  };

  /** Streaming provider: subscribe once; retried while it rejects. */
  start(nativeStore, kind) {
    this.#native = nativeStore;
    if (kind === 'streaming') this.#subscribe(1000);
  }

  #subscribe(retryMs) {
    const listener = {
      onNext: (credentials) => this.#deliver(null, credentials),
      onError: (err) => this.#native._credentialsFailed(null, failureText(err)),
    };
    Promise.resolve()
      .then(() => this.#provider.subscribe(listener))
      .then(
        ([initial, disposable]) => {
          this.#disposable = disposable;
          if (this.#closed) this.dispose();
          else this.#deliver(null, initial);
        },
        (err) => {
          if (this.#closed) return;
          this.#native._credentialsFailed(null, `subscribe: ${failureText(err)} (retrying in ${retryMs} ms)`);
          setTimeout(() => this.#closed || this.#subscribe(Math.min(retryMs * 2, 30_000)), retryMs).unref();
        },
      );
  }

  dispose() {
    this.#closed = true;
    const disposable = this.#disposable;
    this.#disposable = undefined;
    try {
      disposable?.dispose();
    } catch {
      // The store is closing: a provider that fails to let go changes nothing here.
    }
  }
}

/** The Redis-backed store. */
class RedisStore extends StoreBase {
  /** `ready()` calls waiting for the connection: `{ resolve, reject, timer }`. */
  #readyWaiters = new Set();
  /** The last connection-level failure, for ready()'s rejection. */
  #lastLinkError;
  /**
   * 'ready' was emitted and no failure since. The native status changes
   * first (events cross threads after it): ready() waits for the event too,
   * so that once it resolves, that connection's 'ready' is behind it.
   */
  #readyEmitted = false;
  /** The credentials provider's adapter, when one was given. */
  #credentials;

  constructor(options) {
    const { schema, logger, credentialsProvider, ...nativeOptions } = checkOptions(options, 'RedisStore');
    const log = makeLog(logger);
    // Events come from tokio through a weak threadsafe function; it holds the
    // store weakly, so an abandoned store can still be collected (and closed).
    const relay = { store: undefined };
    const onEvent = (event) => relay.store?.deref()?.#onLinkEvent(event);
    const kind = construct(() => providerKind(credentialsProvider, nativeOptions));
    const bridge =
      kind === null
        ? undefined
        : new CredentialsBridge(credentialsProvider, (message) => relay.store?.deref()?.#onCredentialsFailed(message));
    const nativeStore = construct(
      () =>
        new native.NativeRedisStore(
          nativeOptions,
          log,
          onEvent,
          kind,
          kind === 'async' ? bridge.request : null,
          bridge?.failed ?? null,
        ),
    );
    super(nativeStore, schema, log, nativeStore.redactedUrl);
    relay.store = new WeakRef(this);
    bridge?.start(nativeStore, kind);
    this.#credentials = bridge;
  }

  /** `connecting` | `ready` | `reconnecting` | `closed`, read synchronously. */
  get status() {
    return this._native.status;
  }

  /** The Redis URL with any password replaced by `***`. */
  get redactedUrl() {
    return this._native.redactedUrl;
  }

  /**
   * Resolves once the store is ready (at once if it is). Rejects with a
   * RedisError (the last connection failure's code, else STORE_UNAVAILABLE)
   * if it is not ready within `connectTimeoutMs`; the store keeps trying.
   */
  ready() {
    if (this._isClosing) return Promise.reject(closedError('ready', this.ready));
    if (this.#readyEmitted && this._native.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timeoutMs = this._native.connectTimeoutMs;
      const waiter = { resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.#readyWaiters.delete(waiter);
        // A 'ready' event still queued behind a busy event loop: the status knows.
        if (this._native.status === 'ready') {
          resolve();
          return;
        }
        const cause = this.#lastLinkError;
        const detail = cause ? `; last error: ${cause.message}` : '';
        const err = new RedisError(
          cause?.code ?? 'STORE_UNAVAILABLE',
          `ready(): not connected to Redis at ${this.redactedUrl} within ${timeoutMs} ms (connectTimeoutMs)${detail}; still trying in the background`,
          cause ? { cause } : undefined,
        );
        reject(err);
      }, timeoutMs);
      this.#readyWaiters.add(waiter);
    });
  }

  #onLinkEvent(event) {
    if (this._hasEnded) return;
    switch (event.kind) {
      case 'ready':
        this.#readyEmitted = true;
        this.#lastLinkError = undefined;
        for (const waiter of this.#readyWaiters) {
          clearTimeout(waiter.timer);
          waiter.resolve();
        }
        this.#readyWaiters.clear();
        this.emit('ready');
        break;
      case 'error': {
        const ErrorClass = ERROR_CLASS_BY_CODE.get(event.code) ?? RedisError;
        this.#readyEmitted = false;
        this.#lastLinkError = new ErrorClass(event.code, event.message);
        // Unlike a plain EventEmitter, an 'error' nobody listens to is not thrown:
        // a connection failure must never crash the app (calls report it too).
        if (this.listenerCount('error') > 0) this.emit('error', this.#lastLinkError);
        break;
      }
      case 'reconnecting': {
        // The error event just before it carried the same failure: one object for both.
        const last = this.#lastLinkError;
        const error =
          last?.code === event.code && last?.message === event.message ? last : new RedisError(event.code, event.message);
        this.emit('reconnecting', { attempt: event.attempt, delayMs: event.delayMs, error });
        break;
      }
      default:
        break;
    }
  }

  /** @internal */
  _closing() {
    for (const waiter of this.#readyWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(closedError('ready', this.ready));
    }
    this.#readyWaiters.clear();
  }

  /** @internal */
  _connectionStats() {
    return this._native.linkStats();
  }

  /**
   * A credentials failure (the provider failed, or the server refused a
   * re-AUTH): the store serves on with its connections; operators hear it as
   * an 'error' (STORE_AUTH), never thrown without a listener.
   */
  #onCredentialsFailed(message) {
    if (this._hasEnded || this.listenerCount('error') === 0) return;
    this.emit('error', new RedisError('STORE_AUTH', `credentials: ${message}`));
  }

  /** @internal The connection has ended: a streaming provider's subscription goes too. */
  _closed() {
    this.#credentials?.dispose();
  }
}

/** The same contract in process memory (development, tests, no REDIS_URL). */
class MemoryStore extends StoreBase {
  #closedAt;

  constructor(options) {
    const { schema, logger, ...nativeOptions } = checkOptions(options, 'MemoryStore');
    super(
      construct(() => new native.NativeMemoryStore(nativeOptions)),
      schema,
      makeLog(logger),
      undefined,
    );
  }

  /** `ready`, or `closed` after close(). */
  get status() {
    return this._native.status;
  }

  /** Resolves at once (rejects with STORE_CLOSED once closing). */
  ready() {
    return this._isClosing ? Promise.reject(closedError('ready', this.ready)) : Promise.resolve();
  }

  /** @internal */
  _closing() {
    this.#closedAt = performance.now();
  }

  /** @internal Always ready until closed. */
  _connectionStats() {
    const msSinceReady = this.#closedAt === undefined ? 0 : Math.round(performance.now() - this.#closedAt);
    return { reconnections: 0, msSinceReady };
  }
}

// Options only RedisStore takes (from the native option table): the factory
// drops them when it falls back to MemoryStore, which would refuse them.
const REDIS_ONLY_OPTIONS = native.storeOptions().filter((option) => option.store === 'redis').map((option) => option.name);

/**
 * The factory: `REDIS_URL` set → a `RedisStore` configured from `REDIS_*`
 * variables; absent → a `MemoryStore`, unless `REDIS_REQUIRED=true` or
 * `{ required: true }` (production), which refuse to fall back. Malformed
 * values are refused here, naming the variable.
 */
function createConversationStore(env = process.env, options = {}) {
  const { required, ...overrides } = checkOptions(options ?? undefined, 'createConversationStore');
  if (required !== undefined && typeof required !== 'boolean') {
    throw new StoreConfigError('STORE_INVALID_CONFIG', `required must be true or false, got ${describeType(required)}`);
  }
  // REDIS_REQUIRED=true without REDIS_URL is refused here, naming the variable.
  const fromEnv = construct(() => native.redisOptionsFromEnv(env ?? {}));
  const log = makeLog(overrides.logger);
  const settings = { ...fromEnv, ...overrides };
  if (!(settings.url || settings.sentinels) && required === true) {
    throw new StoreConfigError(
      'STORE_INVALID_CONFIG',
      'createConversationStore: required is true but neither REDIS_URL nor REDIS_SENTINELS (nor a url or sentinels option) is set: refusing to fall back to MemoryStore',
    );
  }
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
