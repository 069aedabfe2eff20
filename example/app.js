'use strict';
// An Express 5 app shaped like the chat server this package serves: the same
// routes, the same /health report and the same error handler. It takes any
// store with get/set/delete/listByUser (a RedisStore or a MemoryStore).
//
//   const { createApp } = require('./example/app');
//   createApp(store).listen(3000, '127.0.0.1');

const { randomUUID } = require('node:crypto');
const express = require('express');
// In your own app: require('redis-conversation-store').
const { RedisStore, MemoryStore } = require('..');

// ---------------------------------------------------------------------------
// The chat server's own check, copied verbatim from its source (not the
// package's helper): store failures must be recognised by the code that is
// already there.
// ---------------------------------------------------------------------------

const REDIS_ERROR_NAMES = new Set(['RedisError', 'ReplyError', 'AbortError',
  'InterruptError', 'ParserError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const isRedisError = (e) => e instanceof Error &&
  (REDIS_ERROR_NAMES.has(e.name) || /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND/.test(e.message));

/** A 4xx the app itself raises (bad query string, a body that is not an object). */
class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
  }
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The JSON body as a conversation object, or a 400. */
function conversationBody(req) {
  if (!isPlainObject(req.body)) {
    throw new HttpError(400, 'BAD_REQUEST', 'the request body must be a JSON object (Content-Type: application/json)');
  }
  return req.body;
}

/** A single query-string value (`?limit=5`), or undefined when absent. */
function queryValue(req, name) {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, 'BAD_REQUEST', `${name} must be given at most once`);
  return value;
}

/**
 * `?limit=&offset=&fields=a,b` as listByUser options. The numbers are passed
 * on as numbers (NaN for garbage) and the store checks them: a bad value is a
 * StoreInputError, so a 400.
 */
function listOptions(req) {
  const options = {};
  const limit = queryValue(req, 'limit');
  const offset = queryValue(req, 'offset');
  const fields = queryValue(req, 'fields');
  if (limit !== undefined) options.limit = limit.trim() === '' ? Number.NaN : Number(limit);
  if (offset !== undefined) options.offset = offset.trim() === '' ? Number.NaN : Number(offset);
  if (fields !== undefined) options.fields = fields.split(',').map((f) => f.trim());
  return options;
}

/** One chat message from the request body, or a 400. */
function messageBody(req) {
  const message = conversationBody(req);
  if (typeof message.role !== 'string' || typeof message.content !== 'string') {
    throw new HttpError(400, 'BAD_REQUEST', 'a message needs a string role and a string content');
  }
  return message;
}

/**
 * Per-call options whose signal aborts when the client goes away before its
 * answer is sent: the store stops waiting for Redis on its behalf.
 */
function untilClientLeaves(res) {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new Error('the client disconnected'));
  });
  return { signal: controller.signal };
}

/** What /health reports about the store, read synchronously. */
function storeHealth(store) {
  if (store instanceof MemoryStore) return { redis: 'not_configured', store: 'MemoryStore' };
  const name = store instanceof RedisStore ? 'RedisStore' : (store.constructor?.name ?? 'unknown');
  return { redis: store.status === 'ready' ? 'connected' : 'disconnected', store: name };
}

/**
 * @param {{ get: Function, set: Function, update: Function, delete: Function, listByUser: Function, status?: string }} store
 * @returns {import('express').Express}
 */
function createApp(store) {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '2mb' }));

  // Create or update. The client sends the whole conversation; the server
  // stamps updatedAt (and createdAt, for a record that has none).
  app.put('/conversations/:id', async (req, res) => {
    const body = conversationBody(req);
    const now = new Date().toISOString();
    const conversation = {
      ...body,
      externalId: body.externalId ?? req.params.id,
      createdAt: body.createdAt ?? now,
      updatedAt: now,
    };
    await store.set(req.params.id, conversation, untilClientLeaves(res));
    res.status(204).end();
  });

  // Create with a server-chosen id.
  app.post('/conversations', async (req, res) => {
    const body = conversationBody(req);
    const id = randomUUID();
    const now = new Date().toISOString();
    const conversation = { ...body, externalId: id, createdAt: body.createdAt ?? now, updatedAt: now };
    await store.set(id, conversation, untilClientLeaves(res));
    // Echo the record without the live SDK object, which the store never
    // persists (and which JSON may not even be able to encode).
    const { sdkConversationRef, ...echo } = conversation; // eslint-disable-line no-unused-vars
    res.status(201).location(`/conversations/${id}`).json(echo);
  });

  // Append one message. Two appends at once (a double-sent message, two
  // tabs) both land: update re-reads and retries when the other got in
  // first, and answers 409 only when it keeps losing.
  app.post('/conversations/:id/messages', async (req, res) => {
    const message = messageBody(req);
    const written = await store.update(
      req.params.id,
      (current) => current && { ...current, history: [...(current.history ?? []), message] },
      untilClientLeaves(res),
    );
    if (written === undefined) {
      res.status(404).json({ error: 'conversation not found', code: 'NOT_FOUND' });
      return;
    }
    res.status(201).json({ updatedAt: written.updatedAt, messages: written.history.length });
  });

  app.get('/conversations/:id', async (req, res) => {
    const conversation = await store.get(req.params.id, untilClientLeaves(res));
    if (conversation === undefined) {
      res.status(404).json({ error: 'conversation not found', code: 'NOT_FOUND' });
      return;
    }
    res.json(conversation);
  });

  app.get('/users/:userId/conversations', async (req, res) => {
    res.json(await store.listByUser(req.params.userId, { ...listOptions(req), ...untilClientLeaves(res) }));
  });

  app.delete('/conversations/:id', async (req, res) => {
    await store.delete(req.params.id, untilClientLeaves(res));
    res.status(204).end();
  });

  // Synchronous: no round trip, so /health answers at once even while Redis hangs.
  app.get('/health', (req, res) => {
    const { redis, store: storeName } = storeHealth(store);
    const status = redis === 'disconnected' ? 'degraded' : 'ok';
    res.status(status === 'ok' ? 200 : 503).json({ status, redis, store: storeName });
  });

  // Counters for a scraper or a dashboard, read synchronously: calls started
  // and failed per operation, failures per code, calls in flight,
  // reconnections, and how long since the store was last ready.
  app.get('/metrics', (req, res) => {
    const stats = typeof store.stats === 'function' ? store.stats() : null;
    res.json({ status: store.status ?? 'unknown', stats });
  });

  app.use((req, res) => {
    res.status(404).json({ error: 'not found', code: 'NOT_FOUND' });
  });

  // The chat server's mapping: store unavailable → 503, bad input → 400, a
  // concurrent edit that kept winning → 409, anything else → 500. Express 5
  // forwards rejected promises from async handlers here.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    // The client left (its call was aborted): nobody is there to answer.
    if (res.destroyed) return;
    if (isRedisError(err)) {
      res.status(503).json({ error: 'store unavailable', code: err.code });
      return;
    }
    if (err.name === 'StoreInputError') {
      res.status(400).json({ error: err.message, code: err.code });
      return;
    }
    if (err.name === 'StoreConflictError') {
      res.status(409).json({ error: err.message, code: err.code });
      return;
    }
    // The app's own 4xx, and body-parser's (malformed JSON 400, too large 413).
    const status = err.status ?? err.statusCode;
    if (Number.isInteger(status) && status >= 400 && status < 500) {
      res.status(status).json({ error: err.expose === false ? 'bad request' : err.message, code: err.code ?? err.type });
      return;
    }
    console.error(`[APP] ${req.method} ${req.originalUrl} failed:`, err);
    res.status(500).json({ error: 'internal error' });
  });

  return app;
}

module.exports = { createApp };
