'use strict';
// Reading `perf script` output: each sample is charged to a thread group (the
// main JS thread, the store's tokio worker, Node's V8/libuv helper threads,
// redis-server) and to a cost category. bench/perf-summary.js (a summary of
// any recording) and bench/profiles.js (the per-operation profiles) both use
// this module.
//
// A sample's category is that of the first frame, leaf first, that a rule
// recognizes, so kernel, libc and V8 runtime time lands on the caller that
// caused it. Frames that are on most stacks of their thread (JS not known
// by its file, a tokio worker's run loop, `uv_run`) are tried only when no
// frame of the sample names more specific work. The addon is built without
// frame pointers, so a sample inside libc (memcpy, malloc) called from Rust
// code has no caller on its stack: those show as "malloc/free/memcpy
// (caller unknown)".

const path = require('node:path');
const readline = require('node:readline');

/** The package's own JS files (its `index.js` wrapper), whatever checkout runs the profile. */
const ROOT = path.join(__dirname, '..', '..');
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const OWN_JS = new RegExp(`JS:.*${escapeRegExp(ROOT)}/(index|loader|binding)\\.js:`);

/** The `perf script` fields this module reads (pass as `-F`). */
const PERF_SCRIPT_FIELDS = 'comm,pid,tid,time,period,ip,sym,dso';

/**
 * Rules that name work: for each frame (leaf first), the first rule matching
 * it names the category. `napi_` is matched only at a word start (the
 * kernel's `__napi_poll` is network code, not Node-API).
 */
const RULES = [
  // V8 and the strings that cross into or out of JS.
  [/JsonParser|Builtin_JsonParse|Builtins_JsonParse/, 'JSON.parse'],
  [/JsonStringifier|Builtin_JsonStringify|Builtins_JsonStringify/, 'JSON.stringify'],
  [/\bnapi_create_string|NewFromUtf8|NewFromTwoByte|NewExternalTwoByte|NewExternalOneByte|Utf8Decoder|String::NewFrom|StringBytes::Encode/,
    'strings into JS (decode + copy)'],
  [/\bnapi_get_value_string|WriteUtf8|Utf8Length|String::Utf8Length|String::WriteOneByte|String::Write\b|StringBytes::Write/,
    'strings out of JS (encode + copy)'],
  [/Scavenge|MarkCompact|Heap::|GCTracer|ConcurrentMarking|MinorMC|Sweeper|MemoryAllocator|PagedSpace|NewSpace/, 'V8 GC / heap'],
  [/\bnapi_(create|release|call|acquire|ref|unref)_threadsafe_function|ThreadSafeFunction|ThreadsafeFunction|napi::threadsafe_function/,
    'napi threadsafe function'],
  [/\bnapi_(create_promise|resolve_deferred|reject_deferred)|JsDeferred/, 'napi promise'],
  // The store's Rust code, by module.
  [/redis_conversation_store::text|JsText|simdutf8|utf8_to_utf16|encoding_rs::/, 'store: text conversion (UTF-8 ⇄ UTF-16)'],
  [/redis_conversation_store::json_scan/, 'store: json_scan'],
  [/redis_conversation_store::(record|keys|listing)/, 'store: records, keys, listing'],
  [/redis_conversation_store::completion/, 'store: completion (settling promises)'],
  [/redis_conversation_store::binding|\bnapi_|napi::|bindgen_runtime|bindgen_prelude/, 'napi glue / argument conversion'],
  [/redis_conversation_store::/, 'store: operations (Rust)'],
  // redis-rs.
  [/redis::parser|combine::|redis::types::|FromRedisValue|ValueCodec/, 'redis-rs: reply parsing'],
  [/redis::cmd|redis::Cmd|redis::pipeline|redis::Pipeline|write_packed|get_packed|redis::script|itoa::|write_command|args_len|RedisWrite/,
    'redis-rs: command encoding'],
  // JS by where it comes from (V8 runtime work it calls counts for it).
  [OWN_JS, 'store JS wrapper (index.js)'],
  [/JS:.*node_modules\/(@redis|redis)\//, 'node-redis (JS)'],
  [/JS:.*node_modules\/(ioredis|redis-parser|standard-as-callback|denque|cluster-key-slot)\//, 'ioredis (JS)'],
  [/JS:.*\/test-support\//, 'peer store (JS)'],
  [/JS:.*\/bench\//, 'bench harness (JS)'],
  [/Builtins_(Promise|RunMicrotasks|JSRunMicrotasks|AsyncFunction|PerformPromiseThen|ResolvePromise|FulfillPromise|RejectPromise)|MicrotaskQueue|JSPromise::/,
    'promises & microtasks (V8)'],
  // Kernel and runtime work near the leaf.
  [/asm_exc_page_fault|handle_mm_fault|do_anonymous_page|clear_page/, 'page faults (first touch of memory)'],
  [/tcp_|__sys_(send|recv)|sock_(read|write|recvmsg|sendmsg)|ip_(output|rcv|queue|finish|local)|__libc_(recv|send)|\bwritev|__GI___writev|net_rx_action|netif_|__dev_queue_xmit|skb_/,
    'socket I/O (kernel TCP)'],
  [/futex|epoll|finish_task_switch|__schedule\b|\bschedule\b|try_to_wake_up|eventfd|uv_async_send|uv__async_send|uv__wake|pthread_cond/,
    'thread wake-ups and sleeps (futex, epoll, context switch)'],
  [/LibuvStreamWrap|StreamBase|uv__read|uv__write|uv_try_write|node::.*Write|TCPWrap/, 'socket I/O (Node streams)'],
];

/**
 * Rules for frames that are on most stacks of their thread (any JS or V8
 * frame, redis-rs's connection task, a tokio worker's run loop): tried only
 * when no frame of the sample matched a rule above.
 */
const GENERIC_RULES = [
  [/JS:|Builtins_|Interpreter|Runtime_|v8::internal::|v8::/, 'JS / V8 (other)'],
  [/redis::/, 'redis-rs: connection (multiplexed)'],
  [/tokio::|mio::|parking_lot|futures_util|futures_channel|futures_core|crossbeam/, 'tokio scheduling'],
];

/** Tried last: libc with no known caller, the event loops themselves. */
const LIBC_MEMORY = /malloc|free|memmove|memcpy|memset|memcmp|realloc|calloc|cfree|_int_|arena_|tcache|unlink_chunk|memalign/;
const EVENT_LOOP = /uv_|uv__|node::/;

function firstMatch(frames, rules) {
  for (const frame of frames) {
    for (const [pattern, name] of rules) if (pattern.test(frame)) return name;
  }
  return null;
}

/** The cost category of one sample's frames (leaf first). */
function categorize(frames) {
  const named = firstMatch(frames, RULES) ?? firstMatch(frames, GENERIC_RULES);
  if (named) return named;
  if (LIBC_MEMORY.test(frames[0] ?? '')) return 'malloc/free/memcpy (caller unknown)';
  if (frames.some((frame) => EVENT_LOOP.test(frame))) return 'Node / libuv (other)';
  return frames[0]?.includes('[kernel') ? 'kernel (other)' : 'other';
}

/** A frame line of `perf script` without its address, offset and (with -F dso) library. */
function frameName(line) {
  return line.trim().replace(/^[0-9a-f]+\s+/, '').replace(/\+0x[0-9a-f]+/, '');
}

/** `comm pid/tid [cpu] time: period event:` in any of the layouts `perf script` prints. */
const HEADER = /^(.*?)\s+(\d+)(?:\/(\d+))?\s+(?:\[\d+\]\s+)?(?:(\d+\.\d+):)?\s*(\d+)?/;

function parseHeader(line) {
  const match = HEADER.exec(line);
  if (!match) return { comm: '?', pid: 0, tid: 0, time: NaN, period: 1 };
  const [, comm, first, second, time, period] = match;
  return {
    comm: comm.trim(),
    pid: second === undefined ? NaN : Number(first),
    tid: Number(second ?? first),
    time: time === undefined ? NaN : Number(time),
    period: period === undefined ? 1 : Number(period),
  };
}

/**
 * Samples `{ comm, pid, tid, time (s), period, frames }` from `perf script`
 * text (an async iterable of lines). `period` is nanoseconds of CPU for a
 * cpu-clock recording printed with the period field, else 1 per sample.
 */
async function* readSamples(lines) {
  let header = null;
  let frames = [];
  for await (const line of lines) {
    if (line.trim() === '') {
      if (header) yield { ...header, frames };
      header = null;
      frames = [];
    } else if (!line.startsWith('\t') && !line.startsWith(' ')) {
      if (header) yield { ...header, frames };
      header = parseHeader(line);
      frames = [];
    } else {
      frames.push(frameName(line));
    }
  }
  if (header) yield { ...header, frames };
}

const add = (map, key, value) => map.set(key, (map.get(key) ?? 0) + value);

/** A leaf frame, short enough for a table. */
function leafName(frames) {
  return (frames[0] ?? '?').replace(/\s*\(.*\)$/, '').slice(0, 90);
}

/**
 * Sums samples per thread, with each thread's categories and leaf
 * functions. Only samples with `from <= time <= to` (seconds, the clock perf
 * recorded with) count when a window is given.
 * @returns {Promise<Map<number, { comm, pid, tid, samples, weight, categories: Map, leaves: Map, categoryLeaves: Map }>>}
 */
async function summarizeThreads(lines, { from = -Infinity, to = Infinity } = {}) {
  const threads = new Map();
  for await (const sample of readSamples(lines)) {
    if (Number.isFinite(sample.time) && (sample.time < from || sample.time > to)) continue;
    let thread = threads.get(sample.tid);
    if (!thread) {
      thread = {
        comm: sample.comm, pid: sample.pid, tid: sample.tid, samples: 0, weight: 0,
        categories: new Map(), leaves: new Map(), categoryLeaves: new Map(),
      };
      threads.set(sample.tid, thread);
    }
    const category = categorize(sample.frames);
    const leaf = leafName(sample.frames);
    thread.samples += 1;
    thread.weight += sample.period;
    add(thread.categories, category, sample.period);
    add(thread.leaves, leaf, sample.period);
    if (!thread.categoryLeaves.has(category)) thread.categoryLeaves.set(category, new Map());
    add(thread.categoryLeaves.get(category), leaf, sample.period);
  }
  return threads;
}

/** The thread groups a profile reports, in order. */
const GROUPS = [
  ['main', 'main JS thread'],
  ['tokio', 'store worker (tokio)'],
  ['helpers', 'V8/libuv helpers'],
  ['redis', 'redis-server'],
  ['other', 'other processes'],
];

/** The store's tokio worker threads: `redis-conversation-store`, cut to 15 characters by Linux. */
const TOKIO_COMM = /^redis-conversat/;

/**
 * Groups threads. `nodePid` is the profiled Node process (its thread with
 * tid = pid is the main JS thread); without it, the busiest `node` thread is
 * taken as the main thread. `redisPid` is redis-server's process; without
 * it, threads named like redis-server's are.
 */
function groupThreads(threads, { nodePid, redisPid } = {}) {
  const all = [...threads.values()];
  const main = nodePid
    ? all.find((t) => t.tid === nodePid)
    : all.filter((t) => t.comm === 'node').sort((a, b) => b.weight - a.weight)[0];
  const mainPid = nodePid ?? main?.pid;
  const groups = Object.fromEntries(GROUPS.map(([key, label]) => [key, {
    key, label, samples: 0, weight: 0, threads: [], categories: new Map(), leaves: new Map(), categoryLeaves: new Map(),
  }]));
  for (const thread of all) {
    let key;
    if (thread === main) key = 'main';
    else if (TOKIO_COMM.test(thread.comm)) key = 'tokio';
    else if (redisPid ? thread.pid === redisPid : /^(redis-server|bio_|io_thd_)/.test(thread.comm)) key = 'redis';
    else if (Number.isFinite(mainPid) ? thread.pid === mainPid : thread.comm === 'node') key = 'helpers';
    else key = 'other';
    const group = groups[key];
    group.samples += thread.samples;
    group.weight += thread.weight;
    group.threads.push(thread);
    for (const [name, value] of thread.categories) add(group.categories, name, value);
    for (const [name, value] of thread.leaves) add(group.leaves, name, value);
    for (const [category, leaves] of thread.categoryLeaves) {
      if (!group.categoryLeaves.has(category)) group.categoryLeaves.set(category, new Map());
      for (const [name, value] of leaves) add(group.categoryLeaves.get(category), name, value);
    }
  }
  return groups;
}

/** Entries of a Map of weights, heaviest first, as `{ name, share }`. */
function ranked(map, total) {
  return [...map].sort((a, b) => b[1] - a[1]).map(([name, value]) => ({ name, share: total ? value / total : 0 }));
}

/** Lines of `perf script` from a readable stream. */
function linesOf(stream) {
  return readline.createInterface({ input: stream, crlfDelay: Infinity });
}

module.exports = { PERF_SCRIPT_FIELDS, RULES, GENERIC_RULES, GROUPS, categorize, readSamples, summarizeThreads, groupThreads, ranked, linesOf };
